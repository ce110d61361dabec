"""When the passing of time alone next changes which events a rule counts: an event entering (its time is
after as-of) or leaving a rule's window (``window``, a threshold's ``within``).

Built from the same match expressions as ``query.compile_model`` (``event_match``), so a time found here
is one at which the compiled query counts a different set of events. Decay is not here: it changes the
score continuously and is bounded from the ledger (``scoring/due.py``).

One row per target: ``lead_id``, ``as_of``, then one column per engagement rule that can change by time
(``enter__<rule>``: the earliest matching event after as-of; ``leave__<rule>``: the earliest time a
counted event leaves the rule's window). NULL when there is none.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Select, and_, func, literal, or_, select, type_coerce

from leadscore.compile.dialects import DrivingJoin, targets_in_place
from leadscore.compile.query import MS, event_match
from leadscore.compile.sources import Sources
from leadscore.model import EventRule, ScoringModel, ThresholdRule, duration_seconds


def enter_column(rule_id: str) -> str:
    return f"enter__{rule_id}"


def leave_column(rule_id: str) -> str:
    return f"leave__{rule_id}"


def span_ms(rule: EventRule) -> int | None:
    """How long an event counts for the rule after it happened, or None for ever (no window)."""
    spans = [duration_seconds(rule.window)] if rule.window else []
    if isinstance(rule, ThresholdRule):
        spans.append(duration_seconds(rule.within))
    return int(min(spans) * MS) if spans else None


def compile_changes(model: ScoringModel, sources: Sources, targets: Select[Any]) -> Select[Any] | None:
    """The next window entries and exits of every (lead_id, as_of) target, or None for a model without
    engagement rules (its score never changes by time)."""
    if not model.engagement:
        return None
    sources.check()
    t = targets_in_place(targets.cte("targets"))
    e, ids = sources.events, sources.identities
    spans = {rule.id: span_ms(rule) for rule in model.engagement}
    longest = max((s for s in spans.values() if s is not None), default=0)
    types = sorted({r.event.type for r in model.engagement})
    join_on = [
        e.c.person_key == ids.c.key,
        e.c.type.in_(types),
        or_(e.c.ts > t.c.as_of, e.c.ts > t.c.as_of - literal(longest, BigInteger)),
    ]
    ev = (
        select(t.c.lead_id, t.c.as_of, e.c.ts, e.c.type, e.c.name, e.c.path, e.c.url, e.c.properties)
        .select_from(DrivingJoin(DrivingJoin(t, ids, ids.c.lead_id == t.c.lead_id), e, and_(*join_on)))
        .subquery("ev")
    )
    cols: list[Any] = [ev.c.lead_id, ev.c.as_of]
    for rule in model.engagement:
        match = event_match(model, rule, ev)  # its own window already holds for an event after as-of
        cols.append(func.min(ev.c.ts).filter(and_(match, ev.c.ts > ev.c.as_of)).label(enter_column(rule.id)))
        span = spans[rule.id]
        if span is not None:
            counted = and_(match, ev.c.ts <= ev.c.as_of, ev.c.ts > ev.c.as_of - literal(span, BigInteger))
            leave = type_coerce(func.min(ev.c.ts).filter(counted) + literal(span, BigInteger), BigInteger)
            cols.append(leave.label(leave_column(rule.id)))
    return select(*cols).group_by(ev.c.lead_id, ev.c.as_of)


def next_change(model: ScoringModel, row: Any) -> int | None:
    """The earliest time in one result row of ``compile_changes`` (None: no event enters or leaves)."""
    times: list[int] = []
    for rule in model.engagement:
        times.append(row[enter_column(rule.id)])
        if span_ms(rule) is not None:
            times.append(row[leave_column(rule.id)])
    found = [int(x) for x in times if x is not None]
    return min(found) if found else None
