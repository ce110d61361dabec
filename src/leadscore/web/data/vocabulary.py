"""What the store holds, for the rule builder's pickers: attribute names and their frequent values, event
names, property names and their frequent values, page paths.

Every query is bounded so the builder stays fast on a large store: names are read from the newest
``SAMPLE`` leads or events (a name nobody has used lately is not worth offering), values are grouped over
the same sample or over a type's newest ``SAMPLE`` events of the last ``RECENT_DAYS`` days (the ``type, ts``
index), and each answer is the ``LIMIT`` most frequent. Fields are read through the scoring query's own resolvers,
so a picked value is spelled exactly as a condition on it compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, select, text

from leadscore.compile.query import event_resolver, lead_resolver
from leadscore.compile.sources import ACCOUNT_FIELDS, LEAD_FIELDS
from leadscore.model.rules import EVENT_TYPES
from leadscore.store.schema import accounts, events, leads

SAMPLE = 5000
RECENT_DAYS = 90
LIMIT = 50
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Vocabulary:
    """The pickers' choices, most frequent first."""

    attributes: list[str]
    event_types: tuple[str, ...]
    event_names: list[str]
    properties: list[str]
    paths: list[str]


def _json_keys(conn: Connection, table: str, column: str, order: str) -> list[str]:
    """The keys of a JSON object column over the newest ``SAMPLE`` rows, most frequent first."""
    # table, column and order are names from this module, never from a request
    sample = f"SELECT {column} AS doc FROM {table} ORDER BY {order} DESC LIMIT :sample"
    if conn.dialect.name == "postgresql":
        sql = (
            f"SELECT k, count(*) FROM ({sample}) s, jsonb_object_keys(s.doc) k "
            "WHERE jsonb_typeof(s.doc) = 'object' GROUP BY k ORDER BY 2 DESC, k LIMIT :limit"
        )
    else:
        sql = (
            f"SELECT j.key, count(*) FROM ({sample}) s, json_each(s.doc) j "
            "WHERE json_type(s.doc) = 'object' GROUP BY j.key ORDER BY 2 DESC, j.key LIMIT :limit"
        )
    rows = conn.execute(text(sql), {"sample": SAMPLE, "limit": LIMIT})
    return [str(k) for k, _ in rows]


def _recent_values(conn: Connection, event_type: str, value: Any, now_ms: int) -> list[str]:
    """The most frequent values among a type's newest ``SAMPLE`` events of the last ``RECENT_DAYS`` days
    (``value`` an expression on the events table; the sample walks the ``type, ts`` index backwards)."""
    sample = (
        select(value.label("value"))
        .where(events.c.type == event_type, events.c.ts > now_ms - RECENT_DAYS * DAY_MS, value.is_not(None))
        .order_by(events.c.ts.desc())
        .limit(SAMPLE)
        .subquery("sample_events")
    )
    query = (
        select(sample.c.value, func.count())
        .group_by(sample.c.value)
        .order_by(func.count().desc(), sample.c.value)
        .limit(LIMIT)
    )
    return [str(v) for v, _ in conn.execute(query)]


def vocabulary(conn: Connection, now_ms: int) -> Vocabulary:
    """Every picker's choices at once (the model page asks for them when it shows the builder)."""
    lead_keys = _json_keys(conn, "leads", "attributes", "id")
    account_keys = _json_keys(conn, "accounts", "attributes", "id")
    attributes = [
        *LEAD_FIELDS,
        "company",
        *(f"account.{f}" for f in ACCOUNT_FIELDS),
        *(k for k in lead_keys if k not in LEAD_FIELDS),
        *(f"account.{k}" for k in account_keys),
    ]
    return Vocabulary(
        attributes=list(dict.fromkeys(attributes)),
        event_types=EVENT_TYPES,
        event_names=_recent_values(conn, "track", events.c.name, now_ms),
        properties=_json_keys(conn, "events", "properties", "id"),
        paths=_recent_values(conn, "page", events.c.path, now_ms),
    )


def attribute_values(conn: Connection, name: str) -> list[str]:
    """The most frequent values of a lead (or ``account.``) field over the newest leads."""
    sample = select(leads).order_by(leads.c.id.desc()).limit(SAMPLE).subquery("sample_leads")
    value = lead_resolver(sample, accounts)(name).text()
    query = (
        select(value.label("value"), func.count())
        .select_from(sample.outerjoin(accounts, accounts.c.id == sample.c.account_id))
        .where(value.is_not(None))
        .group_by(value)
        .order_by(func.count().desc(), value)
        .limit(LIMIT)
    )
    return [str(v) for v, _ in conn.execute(query)]


def property_values(conn: Connection, name: str, event_type: str, now_ms: int) -> list[str]:
    """The most frequent values of an event field or property among a type's events of recent days."""
    value = event_resolver(events)(name).text()
    return _recent_values(conn, event_type, value, now_ms)
