"""Account-scope rules counted once per account, not once per target and colleague.

An account-scope rule reads the events of every colleague of the lead (``query.account_events``). Read
per target, that costs targets x colleagues x events: quadratic in an account's size, and the backtest
scores each lead at each of its active days (at 20,000 simulated leads the competitors' one account
holds 800 people). This module gives the same counts from each colleague's events read once.

Every count an account rule reads (threshold: matches within ``within`` and distinct values among
them; ratio: matches within both windows, and the last and the previous window's counts) counts an event
at an interval of as-of times: an event at ``t`` matching the rule's kind counts at as-of ``a`` exactly
when ``t + start <= a < t + end`` (``ts > as_of - within`` is ``as_of < ts + within``; the previous
window of a ratio is ``[t + within, t + 2 within)``), ``a < t + window`` with a ``window``, and with a
burst ``a < h(t)`` (``query.burst_times``: excluded from ``h(t)`` on). A machine's open or click does not
depend on ``a`` at all (its send precedes it), so it is simply not counted. A count of events at ``a``
is the number of these intervals holding ``a``; a count of distinct values is the number of values whose
intervals' union holds ``a``: each interval less the part an earlier interval of the same value already
covers (sorted by start, that part ends at the latest end before it) leaves disjoint pieces, one value
at a time. Each piece is +1 at its start and -1 at its end; a running sum per account over the starts,
ends and as-of times (an as-of after the starts and ends at its time) is every count at every as-of.

An account here is the lead's account, or the lead alone when it has none (``query._colleagues``);
colleagues without tracking consent are left out, as there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Select, and_, case, cast, func, literal, or_, select, union_all
from sqlalchemy.sql.elements import ColumnElement

from leadscore.compile import layout
from leadscore.compile.dialects import DrivingJoin, NotIndexed, computed_once
from leadscore.compile.query import (
    BurstDefinitions,
    _burst_key,
    _horizon_ms,
    _ms,
    _send_key,
    _span_ms,
    _tracking_allowed,
    account_events,
    account_people_events,
    aggregate_events,
    burst_definitions,
    burst_times,
    distinct_key,
    kind_match,
    latest_send,
)
from leadscore.model import EventRule, RatioRule, ScoringModel, ThresholdRule, duration_seconds

ScopedRule = ThresholdRule | RatioRule


@dataclass(frozen=True)
class Count:
    """One count a rule reads: its column, the as-of interval ``[t + start, t + end)`` (ms) an event at
    ``t`` counts in, and whether it counts distinct values (``rule.count``) or events."""

    rule: ScopedRule
    label: str
    start: float
    end: float
    distinct: bool


def counts_of(rule: ScopedRule, explain: bool) -> list[Count]:
    """The counts of ``rule`` that ``query._rule_values`` reads, labelled as ``query.aggregate_columns``
    labels them (the count of matches of a rule that counts distinct values: for explanations only)."""
    w = duration_seconds(rule.within) * 1000.0
    distinct = rule.count is not None
    if isinstance(rule, ThresholdRule):
        out = [Count(rule, layout.count_col(rule.id), 0.0, w, False)] if explain or not distinct else []
        if distinct:
            out.append(Count(rule, layout.distinct_col(rule.id), 0.0, w, True))
        return out
    return [
        *([Count(rule, layout.count_col(rule.id), 0.0, 2 * w, False)] if explain else []),
        Count(rule, layout.recent_col(rule.id), 0.0, w, distinct),
        Count(rule, layout.before_col(rule.id), w, 2 * w, distinct),
    ]


def _same_count(c: Count) -> tuple[Any, ...]:
    """What a count depends on: rules that differ only in points or ``at_least`` (a learned model's
    steps over one count) share it."""
    r = c.rule
    parts = (r.event, r.where, r.exclude, r.count if c.distinct else None)
    dumped = tuple(p.model_dump_json() if p is not None else None for p in parts)
    return (*dumped, r.window, c.start, c.end, c.distinct)


def account_group(leads: Any) -> tuple[ColumnElement[Any], ColumnElement[Any]]:
    """A lead's account as two columns, neither NULL: the account id, or the lead's own id with ``solo``
    1 when it has no account."""
    solo = case((leads.c.account_id.is_(None), 1), else_=0)
    return func.coalesce(leads.c.account_id, leads.c.id), solo


def account_totals(
    model: ScoringModel,
    account_rules: tuple[EventRule, ...],
    t: Any,
    e: Any,
    ids: Any,
    leads: Any,
    prefix: str,
    explain: bool,
) -> Any:
    """Per (lead_id, as_of) of ``t``: every count the account-scope ``rules`` read, labelled as
    ``query.aggregate_columns`` labels them; None without rules. Without ``explain``, only the counts
    the scores read."""
    rules = tuple(r for r in account_rules if isinstance(r, ThresholdRule | RatioRule))
    assert len(rules) == len(account_rules)  # the model allows ``scope`` on these kinds only
    if not rules:
        return None
    me = leads.alias(f"{prefix}sweep_lead")
    gid, solo = account_group(me)
    target_groups = (
        select(t.c.lead_id, t.c.as_of, gid.label("gid"), solo.label("solo"))
        .select_from(t.join(me, me.c.id == t.c.lead_id))
        .cte(f"{prefix}target_groups")
    )
    tg = target_groups
    spans = (
        select(tg.c.gid, tg.c.solo, func.min(tg.c.as_of).label("first_as_of"), func.max(tg.c.as_of).label("last_as_of"))
        .group_by(tg.c.gid, tg.c.solo)
        .subquery(f"{prefix}account_spans")
    )  # fmt: skip
    mate = leads.alias(f"{prefix}sweep_mate")
    allowed = _tracking_allowed(model, mate)
    in_account = and_(spans.c.solo == 0, mate.c.account_id == spans.c.gid)
    alone = and_(spans.c.solo == 1, mate.c.id == spans.c.gid)
    members = union_all(
        *(
            select(mate.c.id.label("person"), spans.c.gid, spans.c.solo, spans.c.first_as_of, spans.c.last_as_of)
            .select_from(spans.join(mate, on))
            .where(allowed)
            for on in (in_account, alone)
        )
    ).subquery(f"{prefix}members")  # fmt: skip

    horizon = _horizon_ms(rules)
    assert horizon is not None  # thresholds and ratios always look back a bounded span
    machine = any(r.exclude is not None and r.exclude.machine is not None for r in rules)
    types = sorted({r.event.type for r in rules} | ({"track"} if machine else set()))
    kind = NotIndexed(e.c.type)
    join_on = [
        e.c.person_key == ids.c.key,
        e.c.ts <= members.c.last_as_of,
        e.c.ts > members.c.first_as_of - _ms(horizon),
        kind.in_(types) if len(types) > 1 else kind == types[0],
    ]
    found = DrivingJoin(DrivingJoin(members, ids, ids.c.lead_id == members.c.person), e, and_(*join_on))
    people_ev = select(
        members.c.person, members.c.person.label("ev_lead_id"), members.c.gid, members.c.solo, e.c.ts, e.c.type, e.c.name, e.c.path, e.c.url, e.c.properties
    ).select_from(found)  # fmt: skip
    marked, definitions, sends = _marked(model, rules, people_ev, prefix)

    shared: dict[tuple[Any, ...], list[Count]] = {}
    for c in (c for r in rules for c in counts_of(r, explain)):
        shared.setdefault(_same_count(c), []).append(c)
    counts = [same[0] for same in shared.values()]
    deltas: list[Select[Any]] = []
    for i, c in enumerate(counts):
        piece = _pieces(model, c, marked, definitions, sends, f"{prefix}piece{i}")
        for at, step in ((piece.c.s, 1), (piece.c.e, -1)):
            steps = [literal(step if j == i else 0, BigInteger).label(f"d{j}") for j in range(len(counts))]
            deltas.append(select(piece.c.gid, piece.c.solo, at.label("at"), literal(0).label("kind"), *steps))
    points = select(tg.c.gid, tg.c.solo, tg.c.as_of.label("at"), literal(1).label("kind"),
                    *(literal(0, BigInteger).label(f"d{j}") for j in range(len(counts)))).distinct()  # fmt: skip
    stream = union_all(*deltas, points).subquery(f"{prefix}sweep_stream")
    order = [stream.c.at, stream.c.kind]
    running = [
        cast(func.sum(stream.c[f"d{j}"]).over(partition_by=[stream.c.gid, stream.c.solo], order_by=order,
                                              rows=(None, 0)), BigInteger).label(f"n{j}")
        for j in range(len(counts))
    ]  # fmt: skip
    swept = select(stream.c.gid, stream.c.solo, stream.c.at, stream.c.kind, *running).subquery(
        f"{prefix}sweep"
    )
    at_targets = select(swept).where(swept.c.kind == 1).subquery(f"{prefix}sweep_at")
    return (
        select(
            tg.c.lead_id,
            tg.c.as_of,
            *(at_targets.c[f"n{j}"].label(c.label) for j, same in enumerate(shared.values()) for c in same),
        )
        .select_from(
            tg.join(
                at_targets,
                and_(at_targets.c.gid == tg.c.gid, at_targets.c.solo == tg.c.solo, at_targets.c.at == tg.c.as_of),
            )
        )
        .cte(f"{prefix}event_totals")
    )  # fmt: skip


def _marked(
    model: ScoringModel, rules: tuple[ScopedRule, ...], people_ev: Select[Any], prefix: str
) -> tuple[Any, BurstDefinitions, dict[tuple[str, str], ScopedRule]]:
    """The colleagues' events, once each, with each burst definition's ``h(ts)`` (``query.burst_times``)
    and each (``after``, ``same``) pair's latest send at or before the event (``query.latest_send``);
    the definitions and sends, by the rule that names their columns."""
    marked_rules = [r for r in rules if r.exclude is not None]
    raw = people_ev.subquery(f"{prefix}people_raw")
    source: Any = raw
    cols: list[Any] = list(raw.c)
    definitions = burst_definitions(marked_rules)
    if definitions.marks:
        times = burst_times(model, definitions, people_ev, f"{prefix}sweep_burst")
        source = raw.outerjoin(times, and_(times.c.person == raw.c.person, times.c.ts == raw.c.ts))
        cols += [c for c in times.c if c.key not in ("person", "ts")]
    sends: dict[tuple[str, str], ScopedRule] = {}
    for rule in marked_rules:
        assert rule.exclude is not None
        if rule.exclude.machine is not None:
            sends.setdefault(_send_key(rule), rule)
    for (after, same), rule in sends.items():
        cols.append(latest_send(raw, after, same, [raw.c.person]).label(layout.sent_col(rule.id)))
    marked = computed_once(select(*cols).select_from(source).cte(f"{prefix}people_marked"))
    return marked, definitions, sends


def _pieces(
    model: ScoringModel,
    c: Count,
    ev: Any,
    definitions: BurstDefinitions,
    sends: dict[tuple[str, str], ScopedRule],
    name: str,
) -> Any:
    """Per event ``c`` counts: (gid, solo, s, e), the as-of interval it adds to the count (for distinct
    values, the part no earlier event of the same value covers); empty intervals left out."""
    rule = c.rule
    match: list[ColumnElement[bool]] = [kind_match(model, rule, ev)]
    s: ColumnElement[Any] = ev.c.ts + _ms(c.start) if c.start else ev.c.ts
    end: ColumnElement[Any] = ev.c.ts + _ms(c.end)
    if rule.window is not None:
        window_end = ev.c.ts + _span_ms(rule.window)
        end = case((window_end < end, window_end), else_=end)
    burst = rule.exclude.burst if rule.exclude is not None else None
    machine = rule.exclude.machine if rule.exclude is not None else None
    if burst is not None:  # from h(t) on, the event is part of a burst; NULL: never
        namer = definitions.marks[_burst_key(rule), burst.more_than]
        h = ev.c[layout.burst_time_col(namer.id)]
        end = case((h < end, h), else_=end)
    if machine is not None:  # a machine's: at every as-of or none
        send = ev.c[layout.sent_col(sends[_send_key(rule)].id)]
        match.append(or_(send.is_(None), ev.c.ts - send >= _span_ms(machine.within)))
    key_cols: list[Any] = []
    if c.distinct:
        key = distinct_key(rule, ev)
        match.append(key.is_not(None))
        key_cols = [key.label("k")]
    base = select(ev.c.gid, ev.c.solo, *key_cols, s.label("s"), end.label("e")).where(and_(*match, end > s))
    if not c.distinct:
        return base.subquery(name)
    b = base.subquery(f"{name}_all")
    # the latest end of the value's earlier intervals: the union so far, from the start of this one
    covered = func.max(b.c.e).over(
        partition_by=[b.c.gid, b.c.solo, b.c.k], order_by=[b.c.s, b.c.e], rows=(None, -1)
    )
    step = select(b.c.gid, b.c.solo, b.c.s, b.c.e, covered.label("covered")).subquery(f"{name}_covered")
    start = case((step.c.covered > step.c.s, step.c.covered), else_=step.c.s)
    return (
        select(step.c.gid, step.c.solo, start.label("s"), step.c.e)
        .where(or_(step.c.covered.is_(None), step.c.covered < step.c.e))
        .subquery(name)
    )


# engines whose optimiser rejects the sweep's plan: Spark 4.3 fails it in RemoveRedundantAliases
# (PLAN_VALIDATION_FAILED_RULE_IN_BATCH) on some account rules; they count per target and colleague
PER_TARGET_ENGINES = frozenset({"spark"})


def account_aggregates(
    model: ScoringModel,
    account_rules: tuple[EventRule, ...],
    t: Any,
    e: Any,
    ids: Any,
    leads: Any,
    prefix: str,
    explain: bool,
    engine: str,
) -> Any:
    """The aggregate stage of the account-scope ``account_rules`` (None without rules): ``account_totals``
    (each colleague's events once), or on ``PER_TARGET_ENGINES`` the per-target join
    (``query.account_events``, which the explanations read too); the same counts either way
    (tests/test_cases.py runs every case on every engine)."""
    if engine not in PER_TARGET_ENGINES:
        return account_totals(model, account_rules, t, e, ids, leads, prefix, explain)
    if not account_rules:
        return None
    people = account_people_events(model, account_rules, t, e, ids, leads)
    return aggregate_events(
        model, account_rules, account_events(model, t, e, ids, leads), prefix, explain, people
    )
