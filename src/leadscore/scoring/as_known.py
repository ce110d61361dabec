"""Leads as they were known at a time: the attributes a history row is scored with.

A lead's attributes are stored as they are now, each with the time it was observed (``attribute_ts``);
the traits of every identify message stay in the event log. The value of attribute ``k`` at time ``t`` is
the current value if it was observed at or before ``t``, else the value of the latest identify at or
before ``t`` that set it, else missing. A removal (PostHog's ``$unset``: ``context.traits_unset``) is an
observation too: the lead's stamp of a name without a value, and an identify that removes it, make it
missing from that time on, until a later value. That depends on the set of messages, not on the order or batches
they arrived in, so history rows scored with it do not either. (E-mail, names, company and account are
read as they are now.)

The compiled query reads these leads through ``Sources`` whose ``leads`` relation takes the attributes
from a temporary table, the targets being bound as for ``run.score_points``, so the statement is
compiled once per model. A query holds one attribute set per lead; points with other attribute sets go
in the next query. Every other lead (an account-scope rule's colleagues) is read with its attributes as
they are now: a colleague's consent is today's, as the current score reads it.
"""

from __future__ import annotations

import contextlib
import threading
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    MetaData,
    Table,
    event,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import JSON

from leadscore.compile import Ledger, Sources
from leadscore.compile.query import lead_attribute_keys
from leadscore.ingest.traits import removed_names, split_traits
from leadscore.model import ScoringModel
from leadscore.scoring.run import (
    POINTS_CHUNK,
    STATEMENTS,
    bound_models_statement,
    bound_statement,
    read_bound,
    totals_only,
)
from leadscore.store.id_lists import in_list
from leadscore.store.schema import events, identities, leads

T = TypeVar("T")

# the event type written into the statement, not bound: PostgreSQL planned a bound one afresh on every
# run (the planner's statistics know identify events are rare, so a plan for any type looked dearer than
# one for this type, and a prepared statement never switched to it: 0.36 ms of planning against 0.01 ms
# of execution, every batch)
_IDENTIFIES = (
    select(identities.c.lead_id, events.c.ts, events.c.message_id, events.c.context)
    .join(events, events.c.person_key == identities.c.key)
    .where(in_list(identities.c.lead_id, "ids"), events.c.type == literal_column("'identify'"))
    .order_by(identities.c.lead_id, events.c.ts, events.c.message_id)
)
_CURRENT = select(leads.c.id, leads.c.attributes, leads.c.attribute_ts).where(in_list(leads.c.id, "ids"))


class Known:
    """What is known about some leads' attributes over time, of the attribute ``keys`` (the ones the
    models score with: ``compile.query.lead_attribute_keys``; None: every key): ``over_time`` answers
    a lead's attributes at many times at once."""

    def __init__(self, conn: Connection, lead_ids: Sequence[int], keys: frozenset[str] | None = None) -> None:
        ids = sorted(set(lead_ids))
        self.keys = keys
        self.current: dict[int, tuple[dict[str, Any], dict[str, int]]] = {
            int(r.id): (self._kept(r.attributes or {}), self._kept(r.attribute_ts or {}))
            for r in conn.execute(_CURRENT, {"ids": ids})
        }
        # each identify's (time, values set, names removed after them)
        self.observed: dict[int, list[tuple[int, dict[str, Any], tuple[str, ...]]]] = {}
        for r in conn.execute(_IDENTIFIES, {"ids": ids}):
            context = r.context or {}
            traits = context.get("traits") or {}
            kept: dict[str, Any] = {}
            if isinstance(traits, dict) and traits:
                _, _, attributes = split_traits(traits)
                kept = {k: v for k, v in self._kept(attributes).items() if v not in (None, "")}
            gone = removed_names(context) if "traits_unset" in context else ()
            if gone and keys is not None:
                gone = tuple(k for k in gone if k in keys)
            # an identify that sets or removes none of the keys changes nothing scored: no epoch of its
            # own (a client identifying on every page view with a changing ``last_seen`` made each one a
            # query of its own, and every batch about them re-read all the ones before)
            if kept or gone:
                self.observed.setdefault(int(r.lead_id), []).append((int(r.ts), kept, gone))

    def _kept(self, values: dict[str, Any]) -> dict[str, Any]:
        keys = self.keys
        if keys is None:
            return dict(values)
        return {k: v for k, v in values.items() if k in keys}

    def over_time(self, lead_id: int, times: Sequence[int]) -> list[dict[str, Any]]:
        """The lead's attributes as known at each of ``times`` (in their order): the identifies are
        walked once, in time order, for all of them. Times of one epoch share one dict."""
        now, stamps = self.current.get(lead_id, ({}, {}))
        observed = self.observed.get(lead_id, [])
        epochs = self.epochs(lead_id)
        # names stamped without a value: removed at their stamp (a field's stamp names no attribute here)
        removed = [(key, int(stamp)) for key, stamp in stamps.items() if key not in now and stamp is not None]
        out: list[dict[str, Any]] = [{}] * len(times)
        state: dict[str, Any] = {}  # the identifies' values at or before the time reached
        walked, last_epoch, last = 0, -1, state
        for at_index in sorted(range(len(times)), key=times.__getitem__):
            at = times[at_index]
            epoch = bisect_right(epochs, at)
            if epoch != last_epoch:
                while walked < len(observed) and observed[walked][0] <= at:  # in time order: the latest wins
                    _, values, gone = observed[walked]
                    state.update(values)
                    for key in gone:
                        state.pop(key, None)
                    walked += 1
                last = dict(state)
                for key, value in now.items():
                    stamp = stamps.get(key)
                    if stamp is None or int(stamp) <= at:
                        last[key] = value
                for key, stamp in removed:
                    if stamp <= at:
                        last.pop(key, None)
                last_epoch = epoch
            out[at_index] = last
        return out

    def epochs(self, lead_id: int) -> list[int]:
        """The times at which the lead's known attributes may change, ascending: two times with the same
        number of these at or before them see the same attributes (``over_time`` reads nothing else)."""
        _, stamps = self.current.get(lead_id, ({}, {}))
        times = {ts for ts, _, _ in self.observed.get(lead_id, [])}
        times.update(int(stamp) for stamp in stamps.values() if stamp is not None)
        return sorted(times)


def attribute_keys(models: Sequence[ScoringModel]) -> frozenset[str] | None:
    """The attribute keys the scores of ``models`` read from a lead's own row (None: every key)."""
    return frozenset().union(*(lead_attribute_keys(model) for model in models))


def score_as_known(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    points: Sequence[tuple[int, int]],
    *,
    explain: bool = False,
) -> dict[tuple[int, int], Ledger]:
    """Score (lead, time) points with each lead's attributes as known at that time: the totals a
    history row holds (ledgers without lines; with their lines when ``explain``: an account score's
    past weeks read which rules gave its contacts points)."""
    return score_as_known_models(conn, (model,), sources, points, explain=explain)[0]


def score_as_known_models(
    conn: Connection,
    models: Sequence[ScoringModel],
    sources: Sources,
    points: Sequence[tuple[int, int]],
    *,
    explain: bool = False,
) -> list[dict[tuple[int, int], Ledger]]:
    """``score_as_known`` for several models, in one statement per query that reads the events once
    (``compile/composite.py``): each model's totals (with lines when ``explain``) by point, in the order
    of ``models``."""
    out: list[dict[tuple[int, int], Ledger]] = [{} for _ in models]
    if not points:
        return out
    known = Known(conn, [lead for lead, _ in points], attribute_keys(models))
    # a lead has one row in the leads relation of a query, so its points go in layers: the k-th distinct
    # attribute set of each lead in the k-th query (a lead's attributes change only at its identifies)
    layers: list[dict[int, tuple[dict[str, Any], list[int]]]] = []
    by_lead: dict[int, list[int]] = {}
    for lead, at in points:
        by_lead.setdefault(lead, []).append(at)
    for lead, times in by_lead.items():
        versions: dict[bytes, int] = {}
        layer_of: dict[int, int] = {}  # by the id of an epoch's dict: built once per epoch, not per point
        for at, attributes in zip(times, known.over_time(lead, times), strict=True):
            layer = layer_of.get(id(attributes))
            if layer is None:
                key = orjson.dumps(attributes, option=orjson.OPT_SORT_KEYS)
                layer = layer_of[id(attributes)] = versions.setdefault(key, len(versions))
            if layer == len(layers):
                layers.append({})
            layers[layer].setdefault(lead, (attributes, []))[1].append(at)
    dialect = conn.dialect.name
    many = len(models) > 1

    def run(sources_of_query: Sources, pairs: Sequence[tuple[int, int]]) -> None:
        def statement(table: bool) -> Any:
            if many:
                return bound_models_statement(models, sources_of_query, dialect, explain=explain, table=table)
            if explain:
                return bound_statement(models[0], sources_of_query, dialect, table=table)
            # totals only: a history row holds no ledger line, and the explanation's columns cost per point
            return bound_statement(models[0], sources_of_query, dialect, totals_only, table=table)

        for found, ledgers in zip(
            out, read_bound(conn, models, statement, pairs, explain=explain), strict=True
        ):
            found.update(((ledger.lead_id, ledger.as_of), ledger) for ledger in ledgers)

    if len(layers) == 1 and all(
        attributes == known.current.get(lead, ({}, {}))[0] for lead, (attributes, _) in layers[0].items()
    ):
        # every point sees its lead's attributes as they are now (the usual real-time batch: no identify
        # newer than its events): the leads table itself, as ``score_points`` reads it, and no
        # temporary table to fill and empty (two statements fewer a batch)
        pairs = [(lead, at) for lead, (_, times) in layers[0].items() for at in times]
        for start in range(0, len(pairs), POINTS_CHUNK):
            run(sources, pairs[start : start + POINTS_CHUNK])
        return out
    _prepare(conn)
    known_sources = as_known_sources(sources)
    # the table is empty here: every call empties it before it returns, and a call that fails first
    # fails its transaction (or savepoint), whose rollback takes the rows back out
    filled = False
    for layer_leads in layers:
        pairs = [(lead, at) for lead, (_, times) in layer_leads.items() for at in times]
        for start in range(0, len(pairs), POINTS_CHUNK):
            chunk = pairs[start : start + POINTS_CHUNK]
            if filled:
                conn.execute(KNOWN.delete())
            filled = True
            leads_of_chunk = dict.fromkeys(lead for lead, _ in chunk)
            conn.execute(
                KNOWN.insert(),
                [{"lead_id": lead, "attributes": layer_leads[lead][0]} for lead in leads_of_chunk],
            )
            run(known_sources, chunk)
    conn.execute(KNOWN.delete())
    return out


def read_as_known(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    lead_id: int,
    as_of: int,
    read: Callable[[Sources], T],
) -> T:
    """``read(sources)`` with the lead's attributes as known at ``as_of``: one lead's explanation as of a
    time, as her history row of that time was scored. Where those are her attributes as they are now,
    ``sources`` themselves (no temporary table to fill)."""
    known = Known(conn, [lead_id], attribute_keys((model,)))
    (attributes,) = known.over_time(lead_id, [as_of])
    if lead_id not in known.current or attributes == known.current[lead_id][0]:
        return read(sources)
    _prepare(conn)  # the table is empty here, as ``score_as_known_models`` leaves it
    conn.execute(KNOWN.insert(), [{"lead_id": lead_id, "attributes": attributes}])
    try:
        found = read(as_known_sources(sources))
    except BaseException:
        with contextlib.suppress(Exception):  # a failed transaction's rollback takes the row out
            conn.execute(KNOWN.delete())
        raise
    conn.execute(KNOWN.delete())
    return found


# The attributes of one query's leads, in a temporary table (per connection) with the lead id as its key,
# so the scoring query finds a lead's row the way it finds it in ``leads`` (a JSON parameter would be a
# relation the engine cannot index: SQLite then reads it once per target)
_TEMP = MetaData()
KNOWN = Table(
    "leadscore_known_attributes",
    _TEMP,
    Column("lead_id", BigInteger, primary_key=True, autoincrement=False),
    Column("attributes", JSON().with_variant(JSONB(), "postgresql"), nullable=False),
    prefixes=["TEMPORARY"],
)


# set in a database connection's ``info`` once the table exists there; any rollback clears it (the
# rollback may have undone the creation), so a processor batch looks the table up only after one
_READY = "leadscore_known_attributes"


def _prepare(conn: Connection) -> None:
    info = conn.info
    if info.get(_READY):
        return
    KNOWN.create(conn, checkfirst=True)
    info[_READY] = True


@event.listens_for(Engine, "rollback")
def _forget_on_rollback(conn: Connection) -> None:
    _forget(conn)


@event.listens_for(Engine, "rollback_savepoint")
def _forget_on_savepoint(conn: Connection, name: str, context: object) -> None:
    _forget(conn)


def _forget(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # an invalidated connection has no info, and no table either
        conn.info.pop(_READY, None)


# kept as the statements compiled over them are (``run.STATEMENTS``), the least recently used going first:
# each cutoff of an evaluation reads its own sources (``learn.store_data.known_at_cutoffs``: the
# identities stitched by then), which a dict that never forgot any kept for the life of the process
_SOURCES: OrderedDict[Sources, Sources] = OrderedDict()
_SOURCES_LOCK = threading.Lock()


def as_known_sources(sources: Sources) -> Sources:
    """``sources`` with the leads' attributes read from the temporary table (one object per sources while
    kept, so the statement compiled over it is cached: ``run.bound_statement``)."""
    with _SOURCES_LOCK:
        hit = _SOURCES.get(sources)
        if hit is not None:
            _SOURCES.move_to_end(sources)
            return hit
    base = sources.leads
    # every lead: an account-scope rule reads the events of the lead's colleagues, who are not among the
    # query's points (an inner join with the table left them out: the lead's own events only). A lead of
    # the table has its attributes as known, any other its own (a colleague's consent is read as it is
    # now). An outer join on the table's key, not a scalar subquery: both engines repeated the subquery at
    # every reference to ``attributes`` (a rule's attribute is read by several JSON functions: 24 probes a
    # lead on SQLite for the bench's three realistic models), 10 % of the as-known statement's VM
    # instructions there
    known_leads = (
        select(
            base.c.id,
            *(base.c[name] for name in ("email", "email_domain", "first_name", "last_name", "company")),
            base.c.account_id,
            func.coalesce(KNOWN.c.attributes, base.c.attributes).label("attributes"),
        )
        .select_from(base.outerjoin(KNOWN, KNOWN.c.lead_id == base.c.id))
        .subquery("known_leads")
    )
    made = Sources(
        events=sources.events, identities=sources.identities, leads=known_leads, accounts=sources.accounts
    )
    with _SOURCES_LOCK:
        made = _SOURCES.setdefault(sources, made)  # another thread's, if it made one meanwhile
        while len(_SOURCES) > STATEMENTS:
            _SOURCES.popitem(last=False)
    return made
