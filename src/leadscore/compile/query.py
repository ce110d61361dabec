"""The scoring model compiled to one SELECT: (lead, as_of) targets in, one wide row per target out.

Order of operations (docs/model-language.md states the same, in prose):

1. events of the lead's identities with ts <= as_of, matching the rule's type, name, ``where`` and window;
2. per occurrence: points x 0.5 ** (age / half_life)  ('each'); the latest match only ('once');
   a count within ``within`` compared with ``at_least`` ('threshold', no decay); the step the newest
   match's age falls in ('recency'); the count of the last ``within`` against the one before ('ratio').
   A count rule may count distinct days, sessions, people or property values, and with ``scope:
   account`` it reads the events of every lead of the lead's account (a second event aggregate);
3. rule cap: the rule total is bounded to [-cap, cap];
4. group cap: the group total is bounded to [-cap, cap];
5. floor: a negative fit or engagement total becomes 0;
6. normalisation: points / max x 100, clamped at 100; score = weighted mean of fit and engagement;
7. grade (fit), level (engagement) and band (score) from the scale's thresholds.

``contributions.compile_contributions`` reads these rows once per counted event (each event's share of
every ledger line); ``lead_events``, ``account_events``, ``event_match``, ``counted`` and
``occurrence_points`` are shared with it, so both forms count the same events with the same points.
``composite.compile_models`` puts several models in one statement: stage 2 (``aggregate_columns``) of
all of them in one GROUP BY, each distinct aggregate once (``aggregate_key``), their lead values in one
stage (``lead_value_columns``), then stages 3 to 7 (``score_aggregates``) of each, by these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Select, and_, case, distinct, func, literal, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from leadscore.compile import layout
from leadscore.compile.conditions import Field, compile_condition, same_text
from leadscore.compile.dialects import (
    CAPABILITIES,
    DayNumber,
    DrivingJoin,
    HalfLifeDecay,
    JsonBool,
    LowerText,
    MatchCount,
    NotIndexed,
    Quantized,
    RuleSum,
    computed_once,
    double,
    targets_in_place,
)
from leadscore.compile.sources import ACCOUNT_FIELDS, EVENT_FIELDS, LEAD_FIELDS, Sources, lead_company
from leadscore.errors import CompileError, UnsupportedRuleError
from leadscore.model import (
    Condition,
    DistinctProperty,
    EachRule,
    EventRule,
    OnceRule,
    RatioRule,
    RecencyRule,
    ScoringModel,
    ThresholdRule,
    duration_seconds,
    walk,
)

MS = 1000.0


def half_life_ms(model: ScoringModel, rule: EventRule) -> float | None:
    """The rule's effective half-life in ms, or None for no decay."""
    if not isinstance(rule, EachRule | OnceRule):
        return None
    own = rule.half_life
    if own == "none":
        return None
    chosen = own or model.defaults.half_life
    return duration_seconds(chosen) * MS if chosen else None


def _clamp(x: ColumnElement[Any], low: float | None, high: float | None) -> ColumnElement[Any]:
    whens = []
    if low is not None:
        whens.append((x < low, double(low)))
    if high is not None:
        whens.append((x > high, double(high)))
    return case(*whens, else_=x) if whens else x


def check_capabilities(model: ScoringModel, engine: str) -> None:
    """Raise UnsupportedRuleError for the first construct the engine lacks."""
    caps = CAPABILITIES.get(engine)
    if caps is None:
        raise CompileError(f"unknown engine {engine!r}; known: {', '.join(sorted(CAPABILITIES))}")
    for rule in (*model.fit, *model.engagement):
        cond = getattr(rule, "when", None) or getattr(rule, "where", None)
        for c in walk(cond) if cond is not None else []:
            if c.op == "regex" and "regex" not in caps:
                raise UnsupportedRuleError(rule.id, engine, "regex")
    for event_rule in model.engagement:
        if half_life_ms(model, event_rule) and "decay" not in caps:
            raise UnsupportedRuleError(event_rule.id, engine, "decay")
        if getattr(event_rule, "count", None) is not None and "distinct" not in caps:
            raise UnsupportedRuleError(event_rule.id, engine, "distinct")
        if scope(event_rule) == "account" and "account_scope" not in caps:
            raise UnsupportedRuleError(event_rule.id, engine, "account_scope")
        if event_rule.exclude is not None and "exclusions" not in caps:
            raise UnsupportedRuleError(event_rule.id, engine, "exclusions")


def scope(rule: EventRule) -> str:
    """Whose events a rule reads: the lead's own ('lead') or every lead's of its account ('account')."""
    # an isinstance test, not getattr with a default: a pydantic model's missing attribute costs an exception
    return rule.scope if isinstance(rule, ThresholdRule | RatioRule) else "lead"


def scoped(model: ScoringModel, which: str) -> tuple[EventRule, ...]:
    """The engagement rules of one scope, in model order."""
    return tuple(r for r in model.engagement if scope(r) == which)


def lead_resolver(leads: Any, accounts: Any) -> Any:
    """How fit conditions read a field: lead columns, derived fields, account columns, JSON attributes
    (also used by the lifecycle, so stage gates and segments read attributes exactly as fit rules do)."""

    def resolve(name: str) -> Field:
        if name in LEAD_FIELDS:
            return Field(leads.c[name])
        if name == "company":
            return Field(lead_company(leads, accounts))
        if name.startswith("account."):
            rest = name.removeprefix("account.")
            if rest in ACCOUNT_FIELDS:
                return Field(accounts.c[rest])
            return Field(accounts.c.attributes, tuple(rest.split(".")))
        return Field(leads.c.attributes, tuple(name.split(".")))

    return resolve


def event_resolver(ev: Any) -> Any:
    """How event conditions read a field: event columns (type, name, path, url), else JSON properties."""

    def resolve(name: str) -> Field:
        if name in EVENT_FIELDS:
            return Field(ev.c[name])
        return Field(ev.c.properties, tuple(name.split(".")))

    return resolve


def event_match(model: ScoringModel, rule: EventRule, ev: Any) -> ColumnElement[bool]:
    parts: list[ColumnElement[bool]] = [ev.c.type == rule.event.type]
    if rule.event.name is not None:
        parts.append(same_text(ev.c.name, rule.event.name))
    if rule.window is not None:
        parts.append(ev.c.ts > ev.c.as_of - _span_ms(rule.window))
    if rule.where is not None:
        parts.append(compile_condition(rule.where, event_resolver(ev), model, rule.id))
    if rule.exclude is not None:
        parts.append(ev.c[layout.excluded_col(rule.id)] == 0)  # from ``with_exclusions``
    return and_(*parts)


def kind_match(model: ScoringModel, rule: EventRule, ev: Any) -> ColumnElement[bool]:
    """The rule's type, name and ``where``, at any time (the events a burst is counted among)."""
    parts: list[ColumnElement[bool]] = [ev.c.type == rule.event.type]
    if rule.event.name is not None:
        parts.append(same_text(ev.c.name, rule.event.name))
    if rule.where is not None:
        parts.append(compile_condition(rule.where, event_resolver(ev), model, rule.id))
    return and_(*parts)


def _excluded_back_s(rule: EventRule) -> float:
    """How much further back than its counted events a rule's exclusions look (a send, a burst's start)."""
    if rule.exclude is None:
        return 0.0
    spans = [duration_seconds(x.within) for x in (rule.exclude.machine, rule.exclude.burst) if x is not None]
    return max(spans)


def _burst_key(rule: EventRule) -> tuple[str, str, float]:
    """What a rule's burst count depends on: its kind match (type, name, ``where``) and the span."""
    assert rule.exclude is not None and rule.exclude.burst is not None
    where = rule.where.model_dump_json() if rule.where is not None else ""
    return rule.event.model_dump_json(), where, duration_seconds(rule.exclude.burst.within)


def _send_key(rule: EventRule) -> tuple[str, str]:
    """What a rule's latest send depends on: the send event's name and the shared property."""
    assert rule.exclude is not None and rule.exclude.machine is not None
    return rule.exclude.machine.after, rule.exclude.machine.same


def with_exclusions(
    model: ScoringModel,
    rules: tuple[EventRule, ...],
    events: Select[Any],
    prefix: str,
    people_events: Select[Any] | None = None,
) -> Any:
    """``events`` (one row per target and event) with a 0/1 column ``x__<rule>`` per rule with ``exclude``
    (1: as of the row's as-of, the event is a machine's or part of a burst, and the rule does not count
    it); ``events`` itself when no rule excludes. ``people_events`` (``lead_people_events`` or
    ``account_people_events``): the events of the same people once per person, for the bursts.

    burst, per person rather than per target: a match's burst count (its kind's matches in [u - within,
    u]) reads only matches at or before ``u``, so it is the same at every as-of from ``u`` on. So is
    ``h(t)``, the earliest match ``u`` in [t, t + within] whose count is above ``more_than``; at as-of
    ``a`` the event at ``t`` is part of a burst (a span of ``within`` holding it holds more than
    ``more_than`` matches, all at or before ``a``) exactly when ``h(t)`` exists and ``h(t) <= a``.
    ``burst_times`` computes ``h`` once per person and time; each target's rows look it up by (person,
    ts), so a lead scored at many as-of times (backtests, history) has its events windowed once.

    machine: the latest ``after`` event of the same person with the same ``same`` value at or before the
    event is less than ``within`` older. Per person too (``send_times``): the send precedes the event, so
    it does not depend on the as-of; a counted event's send, when less than ``within`` older, lies within
    the target's look-back (``_excluded_back_s``), so reading the person's events once gives the send
    each target's own events would. Each target's rows look it up by (person, ts, value).

    Each is computed once per distinct definition, not per rule: one latest-send window per (``after``,
    ``same``), one burst time per (kind match, ``within``, ``more_than``) (``burst_definitions``);
    learned models give many rules of one page kind the same burst. The columns are named after the
    first rule that needs them; each rule's ``x__`` reads the shared ones.
    """
    marked = [r for r in rules if r.exclude is not None]
    if not marked:
        return events
    raw = events.subquery(f"{prefix}raw_ev")

    if people_events is None:
        raise CompileError(f"rule {marked[0].id}: an exclusion needs the people's events")
    sends: dict[tuple[str, str], list[EventRule]] = {}  # (after, same) -> its rules, the first names it
    for rule in marked:
        assert rule.exclude is not None
        if rule.exclude.machine is not None:
            sends.setdefault(_send_key(rule), []).append(rule)
    definitions = burst_definitions(marked)
    source: Any = raw
    first: list[Any] = list(raw.c)
    whose = raw.c.ev_lead_id if "ev_lead_id" in raw.c else raw.c.lead_id
    if definitions.marks:
        times = burst_times(model, definitions, people_events, f"{prefix}burst")
        source = raw.outerjoin(times, and_(times.c.person == whose, times.c.ts == raw.c.ts))
        first += [c for c in times.c if c.key not in ("person", "ts")]
    for i, ((after, same), named) in enumerate(sends.items()):
        sent = send_times(after, same, named, people_events, f"{prefix}sent{i}")
        on = [sent.c.person == whose, sent.c.ts == raw.c.ts, sent.c.value == _send_value(raw, same)]
        source = source.outerjoin(sent, and_(*on))
        first.append(sent.c.sent.label(layout.sent_col(named[0].id)))
    last = select(*first).select_from(source).subquery(f"{prefix}marked_ev")

    final: list[Any] = [c for c in last.c if c.key in raw.c]
    for rule in marked:
        assert rule.exclude is not None
        burst, machine = rule.exclude.burst, rule.exclude.machine
        flags: list[ColumnElement[bool]] = []
        if burst is not None:
            # NULL (no heavy match within ``within`` after the event) is not excluded
            namer = definitions.marks[_burst_key(rule), burst.more_than]
            flags.append(last.c[layout.burst_time_col(namer.id)] <= last.c.as_of)
        if machine is not None:
            last_send = last.c[layout.sent_col(sends[_send_key(rule)][0].id)]
            flags.append(and_(last_send.is_not(None), last.c.ts - last_send < _span_ms(machine.within)))
        final.append(case((or_(*flags), 1), else_=0).label(layout.excluded_col(rule.id)))
    return select(*final).select_from(last)


def _send_value(ev: Any, same: str) -> ColumnElement[Any]:
    """The value an event shares with its send: its ``same`` property as text ignoring case."""
    return folded_property(ev, same)


def folded_property(ev: Any, name: str) -> ColumnElement[Any]:
    """An event's property ``name`` as text ignoring case, as conditions compare text: non-ASCII letters
    too, on every engine (SQLite's built-in lower() folds ASCII only: ``Éxport`` and ``éxport`` were two
    values there and one on PostgreSQL)."""
    return LowerText.of_any_text(event_resolver(ev)(name).text())


def latest_send(ev: Any, after: str, same: str, person: list[Any]) -> ColumnElement[Any]:
    """Per event of ``ev``: the time of the latest ``after`` track event of the same ``person`` columns
    with the same ``same`` value (compared as text ignoring case) at or before it; NULL when none."""
    value = _send_value(ev, same)
    send = and_(ev.c.type == "track", ev.c.name == after, value.is_not(None))
    return func.max(case((send, ev.c.ts))).over(
        partition_by=[*person, value], order_by=ev.c.ts, range_=(None, 0)
    )


def send_times(
    after: str, same: str, rules: Sequence[EventRule], people_events: Select[Any], name: str
) -> Any:
    """Per (person, ts, value) of ``people_events`` (``value``: the ``same`` property as
    ``latest_send`` compares it), the latest ``after`` send of that person and value at or before ts
    (``sent``), once per person whatever the number of targets; only the events some of ``rules`` (those
    with this send) would exclude are kept: a send less than the longest ``within`` older. One row per
    (person, ts, value): equal times and values have one frame, so one send."""
    pe = people_events.subquery(f"{name}_people_ev")
    longest = max(
        duration_seconds(r.exclude.machine.within) for r in rules if r.exclude and r.exclude.machine
    )
    every = select(
        pe.c.person,
        pe.c.ts,
        _send_value(pe, same).label("value"),
        latest_send(pe, after, same, [pe.c.person]).label("sent"),
    ).subquery(f"{name}_all")
    near = and_(every.c.sent.is_not(None), every.c.ts - every.c.sent < _ms(longest * MS))
    return (
        select(every.c.person, every.c.ts, every.c.value, func.max(every.c.sent).label("sent"))
        .where(near)
        .group_by(every.c.person, every.c.ts, every.c.value)
        .subquery(name)
    )


@dataclass(frozen=True)
class BurstDefinitions:
    """The distinct burst definitions of some rules, each with the rule whose id names its columns."""

    kinds: dict[tuple[str, str], EventRule]  # kind match (type and name, ``where``) -> its 0/1 column
    counts: dict[tuple[str, str, float], EventRule]  # (kind match, within) -> its count
    marks: dict[tuple[tuple[str, str, float], int], EventRule]  # (count, more_than) -> its burst time


def burst_definitions(rules: Sequence[EventRule]) -> BurstDefinitions:
    """The burst definitions of ``rules`` (those without a burst have none), named after the first rule
    that has each."""
    found = BurstDefinitions({}, {}, {})
    for rule in rules:
        if rule.exclude is None or rule.exclude.burst is None:
            continue
        key = _burst_key(rule)
        found.kinds.setdefault(key[:2], rule)
        found.counts.setdefault(key, rule)
        found.marks.setdefault((key, rule.exclude.burst.more_than), rule)
    return found


def burst_times(
    model: ScoringModel, definitions: BurstDefinitions, people_events: Select[Any], name: str
) -> Any:
    """Per (person, ts) of ``people_events``, one ``bh__`` column per burst definition: ``h(ts)``, the
    earliest match in [ts, ts + within] of the definition's kind whose count of that kind's matches in
    [its time - within, its time] is above ``more_than``; NULL when there is none. Only the times with
    some ``h`` are kept, one row each (``with_exclusions`` looks them up by person and ts).

    Two window passes over each person's matches, once per person whatever the number of targets: the
    counts (a sliding count per (kind, within)), then the earliest heavy match at or after each time (a
    running ``min`` from the newest match back, its frame only growing: no engine keeps the frame's
    values in order), kept when it lies within ``within``.
    """
    kinds, counts, marks = definitions.kinds, definitions.counts, definitions.marks
    pe = people_events.subquery(f"{name}_people_ev")
    flags = [
        case((kind_match(model, r, pe), 1), else_=0).label(layout.burst_match_col(r.id))
        for r in kinds.values()
    ]
    # only the events some burst kind matches: the others are neither counted nor excluded
    some_kind = or_(*(kind_match(model, r, pe) for r in kinds.values()))
    matched = select(pe.c.person, pe.c.ts, *flags).where(some_kind).subquery(f"{name}_kind_ev")

    def is_kind(ev: Any, key: tuple[str, str, float]) -> ColumnElement[bool]:
        return ev.c[layout.burst_match_col(kinds[key[:2]].id)] == 1

    first: list[Any] = list(matched.c)
    for key, rule in counts.items():
        n = func.count(case((is_kind(matched, key), 1)))
        window = n.over(partition_by=matched.c.person, order_by=matched.c.ts, range_=(-int(key[2] * MS), 0))
        first.append(window.label(layout.burst_col(rule.id)))
    counted_ev = select(*first).subquery(f"{name}_count_ev")

    second: list[Any] = [counted_ev.c.person, counted_ev.c.ts]
    for (key, more_than), rule in marks.items():
        heavy = and_(is_kind(counted_ev, key), counted_ev.c[layout.burst_col(counts[key].id)] > more_than)
        # newest first, up to this row: every match at or after ts (its equal-time peers included)
        next_heavy = func.min(case((heavy, counted_ev.c.ts))).over(
            partition_by=counted_ev.c.person, order_by=counted_ev.c.ts.desc(), range_=(None, 0)
        )
        second.append(next_heavy.label(layout.burst_time_col(rule.id)))
    heavy_ev = select(*second).subquery(f"{name}_heavy_ev")

    # equal times have equal ``h`` (their frames are the same): one row per (person, ts)
    times = {
        rule.id: func.min(
            case(
                (
                    heavy_ev.c[layout.burst_time_col(rule.id)] - heavy_ev.c.ts <= _ms(key[2] * MS),
                    heavy_ev.c[layout.burst_time_col(rule.id)],
                )
            )
        )
        for (key, _), rule in marks.items()
    }
    return (
        select(
            heavy_ev.c.person, heavy_ev.c.ts, *(h.label(layout.burst_time_col(i)) for i, h in times.items())
        )
        .group_by(heavy_ev.c.person, heavy_ev.c.ts)
        .having(or_(*(h.is_not(None) for h in times.values())))
        .subquery(name)
    )


def lead_people_events(rules: tuple[EventRule, ...], t: Any, e: Any, ids: Any) -> Select[Any] | None:
    """The events ``burst_times`` and ``send_times`` read for lead-scope ``rules``, once per lead of the
    targets ``t``: those of the excluding rules' event types (and the sends' ``track``) from the lead's
    earliest as-of less their look-back to its latest as-of; None when no rule has ``exclude``."""
    people = select(
        t.c.lead_id.label("person"),
        func.min(t.c.as_of).label("first_as_of"),
        func.max(t.c.as_of).label("last_as_of"),
    ).group_by(t.c.lead_id)
    return _people_events(rules, people.subquery("burst_people"), e, ids)


def account_people_events(
    model: ScoringModel, rules: tuple[EventRule, ...], t: Any, e: Any, ids: Any, leads: Any
) -> Select[Any] | None:
    """``lead_people_events`` for account-scope ``rules``: once per lead of the targets' accounts
    (``account_events``'s colleagues), between the earliest and latest as-of it is read at."""
    people, mate = _colleagues(model, t, leads)
    found = (
        select(
            mate.c.id.label("person"),
            func.min(t.c.as_of).label("first_as_of"),
            func.max(t.c.as_of).label("last_as_of"),
        )
        .select_from(people)
        .group_by(mate.c.id)
    )
    return _people_events(rules, found.subquery("account_burst_people"), e, ids)


def _people_events(rules: tuple[EventRule, ...], people: Any, e: Any, ids: Any) -> Select[Any] | None:
    marked = tuple(r for r in rules if r.exclude is not None)
    if not marked:
        return None
    join_on = [e.c.person_key == ids.c.key, e.c.ts <= people.c.last_as_of]
    horizon = _horizon_ms(marked)  # a counted event's look-back and its burst's span or send before it
    if horizon is not None:
        join_on.append(e.c.ts > people.c.first_as_of - _ms(horizon))
    machine = any(r.exclude is not None and r.exclude.machine is not None for r in marked)
    types = sorted({r.event.type for r in marked} | ({"track"} if machine else set()))
    kind = NotIndexed(e.c.type)
    join_on.append(kind.in_(types) if len(types) > 1 else kind == types[0])
    found = DrivingJoin(DrivingJoin(people, ids, ids.c.lead_id == people.c.person), e, and_(*join_on))
    # the type unindexed here too: a reader's test on it (``burst_times``' kinds) is pushed down into this
    # join by SQLite, where ``type = 'page'`` took the (type, ts, path) index, every page event before the
    # as-of once per person, instead of the person's own (person_key, ts)
    columns = (e.c.ts, kind.label("type"), e.c.name, e.c.path, e.c.url, e.c.properties)
    return select(people.c.person, *columns).select_from(found)


def within(rule: ThresholdRule, ev: Any) -> ColumnElement[bool]:
    """Whether a matching event falls within a threshold rule's ``within`` span of as-of (it counts)."""
    return ev.c.ts > ev.c.as_of - _span_ms(rule.within)


def _look_back_s(rule: EventRule) -> float | None:
    """How far back from as-of a rule's kind counts events (seconds), or None for all its matches."""
    if isinstance(rule, ThresholdRule):
        return duration_seconds(rule.within)
    if isinstance(rule, RatioRule):
        return 2 * duration_seconds(rule.within)
    if isinstance(rule, RecencyRule):
        return duration_seconds(rule.steps[-1].within)
    return None


def counted(rule: EventRule, ev: Any) -> ColumnElement[bool] | None:
    """Beyond ``event_match``: whether a matching event is recent enough for the rule's kind to count it
    (threshold: within ``within``; ratio: within both windows; recency: within the longest step)."""
    if isinstance(rule, ThresholdRule):
        return within(rule, ev)
    span = _look_back_s(rule)
    return None if span is None else ev.c.ts > ev.c.as_of - _ms(span * MS)


def _recent(rule: RatioRule, ev: Any) -> ColumnElement[bool]:
    """A ratio rule's last window (the other counted events fall in the window before it)."""
    return ev.c.ts > ev.c.as_of - _span_ms(rule.within)


def distinct_key(rule: ThresholdRule | RatioRule, ev: Any) -> ColumnElement[Any]:
    """What a rule with ``count: {distinct: ...}`` counts distinct values of, for one event."""
    assert rule.count is not None
    kind = rule.count.distinct
    if kind == "day":
        return DayNumber(ev.c.ts)
    if kind == "person":
        return ev.c.ev_lead_id
    name = "session_id" if kind == "session" else kind.property if isinstance(kind, DistinctProperty) else ""
    return folded_property(ev, name)


def _tally(rule: ThresholdRule | RatioRule, ev: Any, *where: ColumnElement[bool]) -> ColumnElement[Any]:
    """The rule's count over the events that satisfy ``where``: events, or distinct values."""
    if rule.count is None:
        return func.count().filter(and_(*where))
    return func.count(distinct(case((and_(*where), distinct_key(rule, ev)))))


def _ms(ms: float) -> ColumnElement[Any]:
    """A span in ms as a BIGINT when whole: ``ts`` and ``as_of`` are BIGINT, so the comparison stays in
    integers (a float literal makes PostgreSQL convert every event's ``ts``, to NUMERIC when inlined)."""
    return literal(int(ms), BigInteger) if ms == int(ms) else double(ms)


def _span_ms(duration: str) -> ColumnElement[Any]:
    return _ms(duration_seconds(duration) * MS)


def _horizon_ms(rules: tuple[EventRule, ...]) -> float | None:
    """How far back any rule looks, or None when some rule looks at all history."""
    spans = []
    for rule in rules:
        span = [duration_seconds(rule.window)] if rule.window else []
        look_back = _look_back_s(rule)
        if look_back is not None:
            span.append(look_back)
        if not span:
            return None
        spans.append(min(span) + _excluded_back_s(rule))
    return max(spans) * MS if spans else None


def compile_model(
    model: ScoringModel, sources: Sources, targets: Select[Any], engine: str = "sqlite", explain: bool = True
) -> Select[Any]:
    """The model as one SELECT over ``sources`` for every (lead_id, as_of) row of ``targets``.

    With ``explain`` the row carries every ledger column (see ``layout``); without it, only the scores
    (``SCORE_COLUMNS``: lead_id, as_of, the points and scores of each section, score, grade, level, band):
    the same stages and the same arithmetic, minus the columns that only explanations read.
    """
    check_capabilities(model, engine)
    sources.check()
    t = targets_in_place(targets.cte("targets"))
    e, ids, leads = sources.events, sources.identities, sources.leads

    lead_rules, account_rules = scoped(model, "lead"), scoped(model, "account")
    lead_people = lead_people_events(lead_rules, t, e, ids)
    agg = aggregate_events(model, lead_rules, lead_events(model, t, e, ids), "", explain, lead_people)
    # imported here: account_sweep builds on this module's functions
    from leadscore.compile.account_sweep import account_aggregates

    account_agg = account_aggregates(model, account_rules, t, e, ids, leads, "account_", explain, engine)
    return score_aggregates(model, t, {"lead": agg, "account": account_agg}, sources, explain)


def score_aggregates(
    model: ScoringModel,
    t: Any,
    aggs: dict[str, Any],
    sources: Sources,
    explain: bool,
    prefix: str = "",
    lead_values: Any = None,
) -> Select[Any]:
    """Stages 3 to 7 over the event aggregates of stage 2 (``aggs``: the lead-scope and account-scope
    aggregates of the model's rules, labelled as ``aggregate_columns`` labels them, None for a scope
    without rules): rule values, caps, floor, normalisation and scale, one row per target of ``t``.
    ``prefix`` names this model's CTEs apart from another's in one statement (``compile/composite.py``);
    ``lead_values``: the model's ``_lead_values`` read from elsewhere (several models' in one stage)."""
    parts = _rule_values(model, t, aggs, sources.leads, sources.accounts, explain, prefix, lead_values)
    return _totals(model, parts, explain, prefix)


SCORE_COLUMNS = ("lead_id", "as_of", "fit_points", "engagement_points", "fit_score", "engagement_score", "score", "grade",
                 "level", "band")  # fmt: skip


def lead_events(model: ScoringModel, t: Any, e: Any, ids: Any, *extra: Any) -> Select[Any]:
    """Every event an engagement rule may read, once per (lead_id, as_of) row of ``t``: the lead's
    identities' events with ts <= as_of, of the (lead-scope) rules' types, within the longest look-back."""
    return rules_events(scoped(model, "lead"), t, e, ids, *extra)


def rules_events(rules: tuple[EventRule, ...], t: Any, e: Any, ids: Any, *extra: Any) -> Select[Any]:
    """``lead_events`` for lead-scope ``rules`` of any models: the events any of them may read."""
    join_on = _event_join(rules, t, e, ids)
    return select(
        t.c.lead_id, t.c.as_of, *extra, e.c.ts, e.c.type, e.c.name, e.c.path, e.c.url, e.c.properties
    ).select_from(DrivingJoin(DrivingJoin(t, ids, ids.c.lead_id == t.c.lead_id), e, and_(*join_on)))


def account_events(
    model: ScoringModel,
    t: Any,
    e: Any,
    ids: Any,
    leads: Any,
    *extra: Any,
    rules: tuple[EventRule, ...] | None = None,
) -> Select[Any]:
    """Every event an account-scope rule may read, once per (lead_id, as_of) row of ``t``: the events of
    every lead of the lead's account (its own only when it has none) whose behaviour ``model``'s consent
    setting lets it score, each with the lead it belongs to (``ev_lead_id``), with ts <= as_of, of those
    rules' types (``rules``: the model's account-scope rules unless told), within their longest look-back."""
    people, mate = _colleagues(model, t, leads)
    join_on = _event_join(scoped(model, "account") if rules is None else rules, t, e, ids)
    return select(
        t.c.lead_id,
        t.c.as_of,
        *extra,
        mate.c.id.label("ev_lead_id"),
        e.c.ts,
        e.c.type,
        e.c.name,
        e.c.path,
        e.c.url,
        e.c.properties,
    ).select_from(DrivingJoin(people.join(ids, ids.c.lead_id == mate.c.id), e, and_(*join_on)))


def _colleagues(model: ScoringModel, t: Any, leads: Any) -> tuple[Any, Any]:
    """Each target beside every lead of its account (itself when it has none) whose behaviour may be
    scored: the join, and the colleagues' alias (``account_lead``)."""
    me, mate = leads.alias("target_lead"), leads.alias("account_lead")
    same_account = or_(mate.c.id == me.c.id, mate.c.account_id == me.c.account_id)
    # a colleague without tracking consent is not counted for anyone (their own score counts nothing)
    colleague = and_(same_account, _tracking_allowed(model, mate))
    return t.join(me, me.c.id == t.c.lead_id).join(mate, colleague), mate


def _event_join(rules: tuple[EventRule, ...], t: Any, e: Any, ids: Any) -> list[ColumnElement[bool]]:
    """How a target's identities meet their events: the person key, ts <= as_of, within the rules'
    longest look-back, of the rules' event types."""
    join_on = [e.c.person_key == ids.c.key, e.c.ts <= t.c.as_of]
    horizon = _horizon_ms(rules)
    if horizon is not None:
        join_on.append(e.c.ts > t.c.as_of - _ms(horizon))
    sends = {"track"} if any(r.exclude and r.exclude.machine for r in rules) else set()
    types = sorted({r.event.type for r in rules} | sends) or ["track"]
    kind = NotIndexed(e.c.type)  # the (person_key, ts) index leads, whatever other indexes exist
    join_on.append(kind.in_(types) if len(types) > 1 else kind == types[0])
    return join_on


def occurrence_points(model: ScoringModel, rule: EachRule, ev: Any) -> ColumnElement[Any]:
    """What one matching event of an 'each' rule adds before the rule cap: its points, decayed by age."""
    hl = half_life_ms(model, rule)
    decay = HalfLifeDecay(ev.c.as_of - ev.c.ts, double(hl)) if hl else None
    return double(rule.points) * decay if decay is not None else double(rule.points)


def aggregate_events(
    model: ScoringModel,
    rules: tuple[EventRule, ...],
    events: Select[Any],
    prefix: str,
    explain: bool,
    people_events: Select[Any] | None = None,
) -> Any:
    """Per target, every aggregate the rules read from ``events`` (``lead_events`` or
    ``account_events``; ``people_events`` for their bursts, ``with_exclusions``): counts, sums, latest
    times; None without rules."""
    if not rules:
        return None
    ev = with_exclusions(model, rules, events, prefix, people_events).subquery(f"{prefix}ev")
    cols = [ev.c.lead_id, ev.c.as_of, *aggregate_columns(model, rules, ev, explain)]
    return select(*cols).group_by(ev.c.lead_id, ev.c.as_of).cte(f"{prefix}event_totals")


def aggregate_columns(
    model: ScoringModel, rules: tuple[EventRule, ...], ev: Any, explain: bool
) -> list[ColumnElement[Any]]:
    """The aggregates ``rules`` read from the events ``ev`` (one row per event, with the ``x__`` columns
    of ``with_exclusions``), labelled by rule id (``layout``), to group by target."""
    # FILTER (WHERE match) rather than a CASE inside the aggregate: an event a rule does not match never
    # reaches that rule's aggregate (most events match few rules; DuckDB, which evaluates a FILTER
    # aggregate's argument for every row, gets the CASE: engines/duckdb.py). A group without a match gives
    # NULL, which _rule_values turns into 0 exactly as it does for a lead without events.
    cols: list[Any] = []
    for rule in rules:
        match = event_match(model, rule, ev)
        if isinstance(rule, ThresholdRule):
            cols.append(func.count().filter(and_(match, within(rule, ev))).label(layout.count_col(rule.id)))
            if rule.count is not None:
                cols.append(_tally(rule, ev, match, within(rule, ev)).label(layout.distinct_col(rule.id)))
            continue
        if isinstance(rule, RatioRule):
            both = counted(rule, ev)
            assert both is not None
            recent = _recent(rule, ev)
            cols.append(func.count().filter(and_(match, both)).label(layout.count_col(rule.id)))
            cols.append(_tally(rule, ev, match, recent).label(layout.recent_col(rule.id)))
            cols.append(_tally(rule, ev, match, both, ~recent).label(layout.before_col(rule.id)))
            continue
        if isinstance(rule, RecencyRule):
            look_back = counted(rule, ev)
            assert look_back is not None
            cols.append(func.count().filter(and_(match, look_back)).label(layout.count_col(rule.id)))
            cols.append(func.max(ev.c.ts).filter(and_(match, look_back)).label(layout.last_col(rule.id)))
            continue
        if isinstance(rule, OnceRule):
            value: ColumnElement[Any] = ev.c.ts
            aggregate = func.max(value).filter(match).label(layout.last_col(rule.id))
        else:
            value = occurrence_points(model, rule, ev)
            exact = (
                not half_life_ms(model, rule) and float(rule.points).is_integer()
            )  # whole-number terms add exactly in any order
            aggregate = RuleSum(value, match, exact).label(layout.raw_col(rule.id))
        if explain:
            cols.append(MatchCount(match, value).label(layout.count_col(rule.id)))
        cols.append(aggregate)
    return cols


def condition_key(model: ScoringModel, cond: Condition | None) -> tuple[Any, ...]:
    """What a compiled condition depends on: the condition and the values of the model's lists it names
    (two models may give one list name different values)."""
    if cond is None:
        return ()
    named = sorted({str(c.value) for c in walk(cond) if c.op == "in_list"})
    return cond.model_dump_json(), tuple((name, tuple(model.lists[name].values)) for name in named)


def aggregate_key(model: ScoringModel, rule: EventRule) -> tuple[Any, ...]:
    """What a lead-scope rule's aggregates (``aggregate_columns``, with its ``with_exclusions`` flag)
    depend on, whatever its id, name, group and the points, caps and thresholds applied to them later:
    two rules of the same key, in one model or two, aggregate to the same values. The event match (type,
    name, window, ``where`` with its lists, exclusions) and by kind: 'each' its points and effective
    half-life (summed per event), threshold and ratio their span and what they count, recency its
    look-back, 'once' nothing more (its latest match)."""
    window = duration_seconds(rule.window) if rule.window else None
    exclude = rule.exclude.model_dump_json() if rule.exclude is not None else None
    match = (rule.event.model_dump_json(), window, condition_key(model, rule.where), exclude)
    own: tuple[Any, ...] = ()
    if isinstance(rule, EachRule):
        own = (float(rule.points), half_life_ms(model, rule))
    elif isinstance(rule, ThresholdRule | RatioRule):
        count = rule.count.model_dump_json() if rule.count is not None else None
        own = (duration_seconds(rule.within), count)
    elif isinstance(rule, RecencyRule):
        own = (_look_back_s(rule),)
    return type(rule).__name__, match, own


def _tracking_allowed(model: ScoringModel, leads: Any) -> ColumnElement[bool]:
    """Whether the lead's behaviour may be scored (model.privacy and the consent_tracking attribute)."""
    consent = JsonBool(leads.c.attributes, ("consent_tracking",))
    return func.coalesce(consent, model.privacy.tracking_consent == "assumed")


def lead_value_columns(
    model: ScoringModel, leads: Any, accounts: Any
) -> list[tuple[tuple[Any, ...], str, ColumnElement[Any]]]:
    """What ``lead_values`` reads from a target's lead row, beyond lead_id and as_of: (what the value
    depends on, its label, the expression) for the tracking flag, each fit rule's points and each share
    rule's number. Two models' values of one key are equal (``composite`` computes them once)."""
    resolve = lead_resolver(leads, accounts)
    out: list[tuple[tuple[Any, ...], str, ColumnElement[Any]]] = []
    if model.engagement:
        tracking = case((_tracking_allowed(model, leads), 1), else_=0)
        out.append((("tracking", model.privacy.tracking_consent), layout.TRACKING, tracking))
    for fit_rule in model.fit:
        cond = compile_condition(fit_rule.when, resolve, model, fit_rule.id)
        value = case((cond, double(fit_rule.points)), else_=0.0)
        key = ("fit", condition_key(model, fit_rule.when), float(fit_rule.points))
        out.append((key, layout.fit_col(fit_rule.id), value))
    for rule in model.engagement:
        if isinstance(rule, ThresholdRule) and rule.share is not None:
            number = resolve(rule.share.of).number()
            if number is None:
                raise CompileError(
                    f"rule {rule.id}: share of {rule.share.of}, a text field; it needs a number"
                )
            out.append((("share", rule.share.of), layout.share_col(rule.id), number))
    return out


def lead_attribute_keys(model: ScoringModel) -> frozenset[str]:
    """The top-level keys of a lead's own ``attributes`` that ``lead_value_columns`` reads (the consent
    flag, fit conditions, shares): two attribute sets that agree on these give the lead the same score.
    A superset is always safe (``scoring/as_known.py`` tells a lead's attributes over time apart by them)."""
    names = [c.field for fit_rule in model.fit for c in walk(fit_rule.when)]
    names += [r.share.of for r in model.engagement if isinstance(r, ThresholdRule) and r.share is not None]
    keys = {"consent_tracking"}
    for name in names:
        if name not in LEAD_FIELDS and name != "company" and not name.startswith("account."):
            keys.add(name.split(".")[0])
    return frozenset(keys)


def lead_base(t: Any, leads: Any, accounts: Any) -> Any:
    """The targets beside their lead rows and accounts (what ``lead_value_columns`` reads)."""
    return t.join(leads, leads.c.id == t.c.lead_id).outerjoin(accounts, accounts.c.id == leads.c.account_id)


def _lead_values(model: ScoringModel, t: Any, leads: Any, accounts: Any, prefix: str = "") -> Any:
    """Per target: the tracking flag and the fit rule values (everything read from the lead's own row)."""
    cols: list[Any] = [t.c.lead_id, t.c.as_of]
    cols.extend(value.label(label) for _, label, value in lead_value_columns(model, leads, accounts))
    # computed once: every engagement rule reads the tracking flag (a JSON lookup), twice or more
    return computed_once(select(*cols).select_from(lead_base(t, leads, accounts)).cte(f"{prefix}lead_values"))


def _rule_values(
    model: ScoringModel,
    t: Any,
    aggs: dict[str, Any],
    leads: Any,
    accounts: Any,
    explain: bool,
    prefix: str,
    lv: Any = None,
) -> Any:
    if lv is None:
        lv = _lead_values(model, t, leads, accounts, prefix)
    cols: list[Any] = [c for c in lv.c if explain or c.key != layout.TRACKING]
    tracking: ColumnElement[bool] = lv.c[layout.TRACKING] == 1 if model.engagement else true()

    def tally(name: str) -> ColumnElement[Any]:
        return case((tracking, func.coalesce(agg.c[name], 0)), else_=0)

    for rule in model.engagement:
        agg = aggs[scope(rule)]
        # no tracking consent: the lead's events count for nothing (and are shown as not counted)
        if explain or (isinstance(rule, ThresholdRule) and rule.count is None):
            n = tally(layout.count_col(rule.id))
            cols.append(n.label(layout.count_col(rule.id)))
        raw: ColumnElement[Any]
        if isinstance(rule, ThresholdRule):
            if rule.count is not None:
                n = tally(layout.distinct_col(rule.id))
                if explain:
                    cols.append(n.label(layout.distinct_col(rule.id)))
            if rule.share is not None:
                # a share of a missing, zero or negative number is never reached
                of = lv.c[layout.share_col(rule.id)]
                met = and_(of > 0, n >= of * double(rule.share.at_least))
            else:
                met = n >= rule.at_least
            raw = case((met, double(rule.points)), else_=0.0)
        elif isinstance(rule, RatioRule):
            recent, before = tally(layout.recent_col(rule.id)), tally(layout.before_col(rule.id))
            if explain:
                cols += [recent.label(layout.recent_col(rule.id)), before.label(layout.before_col(rule.id))]
            # compared by multiplication, never divided: exact, and no division by an empty window
            met = (
                and_(recent > 0, recent >= before * double(rule.at_least))
                if rule.at_least is not None
                else and_(before > 0, recent <= before * double(rule.at_most or 0.0))
            )
            raw = case((met, double(rule.points)), else_=0.0)
        elif isinstance(rule, RecencyRule):
            last = agg.c[layout.last_col(rule.id)]
            if explain:
                cols.append(last.label(layout.last_col(rule.id)))
            steps = [(lv.c.as_of - last < _span_ms(s.within), double(s.points)) for s in rule.steps]
            raw = case((and_(tracking, last.is_not(None)), case(*steps, else_=0.0)), else_=0.0)
        elif isinstance(rule, OnceRule):
            last = agg.c[layout.last_col(rule.id)]
            if explain:
                cols.append(last.label(layout.last_col(rule.id)))
            hl = half_life_ms(model, rule)
            weight = HalfLifeDecay(lv.c.as_of - last, double(hl)) if hl else literal(1.0)
            raw = case((and_(tracking, last.is_not(None)), double(rule.points) * weight), else_=0.0)
        else:
            raw = case((tracking, func.coalesce(agg.c[layout.raw_col(rule.id)], 0.0)), else_=0.0)
        cap = rule.cap if isinstance(rule, EachRule) else None
        if explain:
            cols.append(raw.label(layout.raw_col(rule.id)))
        cols.append(_clamp(raw, -cap if cap else None, cap).label(layout.value_col(rule.id)))
    base = lv
    for agg in (aggs["lead"], aggs["account"]):
        if agg is not None:
            base = base.outerjoin(agg, and_(agg.c.lead_id == lv.c.lead_id, agg.c.as_of == lv.c.as_of))
    return computed_once(select(*cols).select_from(base).cte(f"{prefix}rule_values"))


def _sum(cols: list[ColumnElement[Any]]) -> ColumnElement[Any]:
    if not cols:
        return double(0.0)
    total = cols[0]
    for c in cols[1:]:
        total = total + c
    return total


def _on_scale(points: ColumnElement[Any], maximum: float) -> ColumnElement[Any]:
    """Points (at most ``maximum``) on the 0–100 scale, multiplied before divided: a score that is a whole
    number in decimals is that number as a float (117 points of 195 are 60, not 117 × (100 / 195) =
    59.99999999999999, below an MQL at 60). The query keeps a score to a millionth (``Quantized``): points
    that add up to a threshold in decimals are then at it on every engine, however it added them, and
    grade, level, band and every gate read the number a screen shows."""
    return points * double(100.0) / double(maximum)


def _totals(model: ScoringModel, p: Any, explain: bool, prefix: str) -> Select[Any]:
    scale = model.scale
    groups: dict[str, list[ColumnElement[Any]]] = {g.id: [] for g in model.groups}
    ungrouped: list[ColumnElement[Any]] = []
    for rule in model.engagement:
        (groups[rule.group] if rule.group else ungrouped).append(p.c[layout.value_col(rule.id)])
    group_sums = {gid: _sum(cols) for gid, cols in groups.items()}
    group_vals = {g.id: _clamp(group_sums[g.id], -g.cap, g.cap) for g in model.groups}

    fit_raw = _sum([p.c[layout.fit_col(r.id)] for r in model.fit])
    eng_raw = _sum([*group_vals.values(), *ungrouped])
    carried = [p] if explain else [p.c.lead_id, p.c.as_of]
    explained = (
        [
            *(group_sums[g].label(layout.group_sum_col(g)) for g in group_sums),
            *(group_vals[g].label(layout.group_value_col(g)) for g in group_vals),
        ]
        if explain
        else []
    )
    inner = select(*carried, *explained, fit_raw.label("fit_raw"), eng_raw.label("engagement_raw")).cte(
        f"{prefix}totals"
    )
    inner = computed_once(inner)
    floored = select(
        inner,
        _clamp(inner.c.fit_raw, 0.0, None).label("fit_floor"),
        _clamp(inner.c.engagement_raw, 0.0, None).label("engagement_floor"),
    ).cte(f"{prefix}floored")
    floored = computed_once(floored)
    f = floored.c
    fit_points = _clamp(f.fit_floor, None, scale.fit_max)
    eng_points = _clamp(f.engagement_floor, None, scale.engagement_max)
    w_total = scale.weights.fit + scale.weights.engagement
    normalised = select(
        *(c for c in f if c.key not in ("fit_floor", "engagement_floor")),
        (f.fit_floor - f.fit_raw).label("fit_floor_adj"),
        (fit_points - f.fit_floor).label("fit_clamp_adj"),
        fit_points.label("fit_points"),
        Quantized(_on_scale(fit_points, scale.fit_max)).label("fit_score"),
        (f.engagement_floor - f.engagement_raw).label("engagement_floor_adj"),
        (eng_points - f.engagement_floor).label("engagement_clamp_adj"),
        eng_points.label("engagement_points"),
        Quantized(_on_scale(eng_points, scale.engagement_max)).label("engagement_score"),
    ).cte(f"{prefix}normalised")
    normalised = computed_once(normalised)
    n = normalised.c
    # the weighted mean of the fit and engagement scores before they were kept to a millionth, so the
    # score is rounded once, from its own formula
    score = Quantized(
        (
            _on_scale(n.fit_points, scale.fit_max) * double(scale.weights.fit)
            + _on_scale(n.engagement_points, scale.engagement_max) * double(scale.weights.engagement)
        )
        / double(w_total)
    )
    g, lv, b = scale.grades, scale.levels, scale.bands
    grade = case((n.fit_score >= g.A, "A"), (n.fit_score >= g.B, "B"), (n.fit_score >= g.C, "C"), else_="D")
    level = case(
        (n.engagement_score >= lv.one, 1),
        (n.engagement_score >= lv.two, 2),
        (n.engagement_score >= lv.three, 3),
        else_=4,
    )
    scored = select(normalised, score.label("score"), grade.label("grade"), level.label("level")).subquery(
        f"{prefix}scored"
    )
    band = case((scored.c.score >= b.hot, "hot"), (scored.c.score >= b.warm, "warm"), else_="cold")
    if not explain:
        return select(*(scored.c[name] for name in SCORE_COLUMNS if name != "band"), band.label("band"))
    return select(scored, band.label("band")).where(true())
