"""Leads as they were known at a time: the attributes a history row is scored with.

A lead's attributes are stored as they are now, each with the time it was observed (``attribute_ts``);
the traits of every identify message stay in the event log. The value of attribute ``k`` at time ``t`` is
the current value if it was observed at or before ``t``, else the value of the latest identify at or
before ``t`` that set it, else missing. That depends on the set of messages, not on the order or batches
they arrived in, so history rows scored with it do not either. (E-mail, names, company and account are
read as they are now.)

The compiled query reads these leads through ``Sources`` whose ``leads`` and ``identities`` relations
come from one bound JSON parameter (``as_known``: ``[[point id, lead id, as-of, attributes], ...]``),
which is also the targets, so the statement is compiled once per model, like ``run.score_points``; each
(lead, time) point is scored as a lead of its own, the point id.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import orjson
from sqlalchemy import BigInteger, Connection, Select, Text, bindparam, cast, func, select, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import JSON

from leadscore.compile import Ledger, Sources, compile_model, read_ledger
from leadscore.compile.dialects import computed_once
from leadscore.ingest.apply import split_traits
from leadscore.model import ScoringModel
from leadscore.scoring.run import POINTS_CHUNK, bound_statement
from leadscore.store.id_lists import in_list
from leadscore.store.schema import events, identities, leads

PARAM = "as_known"

_IDENTIFIES = (
    select(identities.c.lead_id, events.c.ts, events.c.message_id, events.c.context)
    .join(events, events.c.person_key == identities.c.key)
    .where(in_list(identities.c.lead_id, "ids"), events.c.type == "identify")
    .order_by(identities.c.lead_id, events.c.ts, events.c.message_id)
)
_CURRENT = select(leads.c.id, leads.c.attributes, leads.c.attribute_ts).where(in_list(leads.c.id, "ids"))


class Known:
    """What is known about some leads' attributes over time: answers ``attributes(lead, t)``."""

    def __init__(self, conn: Connection, lead_ids: Sequence[int]) -> None:
        ids = sorted(set(lead_ids))
        self.current: dict[int, tuple[dict[str, Any], dict[str, int]]] = {
            int(r.id): (dict(r.attributes or {}), dict(r.attribute_ts or {}))
            for r in conn.execute(_CURRENT, {"ids": ids})
        }
        self.observed: dict[int, list[tuple[int, dict[str, Any]]]] = {}
        for r in conn.execute(_IDENTIFIES, {"ids": ids}):
            traits = (r.context or {}).get("traits") or {}
            if isinstance(traits, dict) and traits:
                _, _, attributes = split_traits(traits)
                self.observed.setdefault(int(r.lead_id), []).append((int(r.ts), attributes))

    def attributes(self, lead_id: int, at_ms: int) -> dict[str, Any]:
        now, stamps = self.current.get(lead_id, ({}, {}))
        out: dict[str, Any] = {}
        for ts, attributes in self.observed.get(lead_id, []):  # in time order: the latest wins
            if ts > at_ms:
                break
            out.update({k: v for k, v in attributes.items() if v not in (None, "")})
        for key, value in now.items():
            stamp = stamps.get(key)
            if stamp is None or int(stamp) <= at_ms:
                out[key] = value
        return out


def score_as_known(
    conn: Connection, model: ScoringModel, sources: Sources, points: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], Ledger]:
    """Score (lead, time) points with each lead's attributes as known at that time."""
    if not points:
        return {}
    known = Known(conn, [lead for lead, _ in points])
    dialect = conn.dialect.name
    pit = as_known_sources(sources, dialect)
    query = bound_statement(model, pit, dialect, _compile)
    out: dict[tuple[int, int], Ledger] = {}
    for start in range(0, len(points), POINTS_CHUNK):
        chunk = points[start : start + POINTS_CHUNK]
        versions = [[n, lead, at, known.attributes(lead, at)] for n, (lead, at) in enumerate(chunk)]
        rows = conn.execute(query, {PARAM: orjson.dumps(versions).decode()}).mappings()
        for row in rows:
            ledger = read_ledger(model, dict(row))
            lead, at = chunk[ledger.lead_id]
            out[(lead, at)] = replace(ledger, lead_id=lead)
    return out


_SOURCES: dict[tuple[Sources, str], Sources] = {}
_TARGETS: dict[Sources, Select[Any]] = {}
_SOURCES_LOCK = threading.Lock()


def _compile(model: ScoringModel, sources: Sources, targets: Select[Any], dialect: str) -> Select[Any]:
    """The scoring query over the points themselves as targets (``targets``, bound pairs, go unused)."""
    return compile_model(model, sources, _TARGETS[sources], engine=dialect)


def as_known_sources(sources: Sources, dialect: str) -> Sources:
    """``sources`` with leads and identities read from the bound points (one object per sources and
    dialect, so the statement compiled over it is cached: ``run.bound_statement``)."""
    key = (sources, dialect)
    with _SOURCES_LOCK:
        hit = _SOURCES.get(key)
        if hit is not None:
            return hit
    if dialect == "postgresql":
        element = func.jsonb_array_elements(cast(bindparam(PARAM, type_=Text), JSONB)).table_valued("value")

        def number(i: int) -> Any:
            return cast(type_coerce(element.c.value.op("->>")(i), Text), BigInteger)

        point_id, lead_id, as_of = number(0), number(1), number(2)
        attributes: Any = type_coerce(element.c.value.op("->")(3), JSONB)
    else:
        element = func.json_each(bindparam(PARAM, type_=Text)).table_valued("value")

        def number(i: int) -> Any:
            return type_coerce(func.json_extract(element.c.value, f"$[{i}]"), BigInteger)

        point_id, lead_id, as_of = number(0), number(1), number(2)
        attributes = type_coerce(func.json_extract(element.c.value, "$[3]"), JSON)
    # computed once: the JSON is parsed once, and SQLite indexes the result for the joins on point id
    points = computed_once(
        select(
            point_id.label("point_id"),
            lead_id.label("lead_id"),
            as_of.label("as_of"),
            attributes.label("attributes"),
        ).cte("as_known")
    )
    base = sources.leads
    known_leads = (
        select(
            points.c.point_id.label("id"),
            *(base.c[name] for name in ("email", "email_domain", "first_name", "last_name", "company")),
            base.c.account_id,
            points.c.attributes,
        )
        .join_from(points, base, base.c.id == points.c.lead_id)
        .subquery("known_leads")
    )
    ids = sources.identities
    known_ids = (
        select(ids.c.key, points.c.point_id.label("lead_id"))
        .join_from(points, ids, ids.c.lead_id == points.c.lead_id)
        .subquery("known_identities")
    )
    made = Sources(events=sources.events, identities=known_ids, leads=known_leads, accounts=sources.accounts)
    with _SOURCES_LOCK:
        _SOURCES[key] = made
        _TARGETS[made] = select(points.c.point_id.label("lead_id"), points.c.as_of)
    return made
