"""Each counted event's share of the ledger: the scoring query with a per-event final select.

``compile_contributions`` reads the wide rows of ``query.compile_model`` (every ledger column) and joins
each (rule, counted event) pair to its row. An event's share of every line is computed in SQL from that
row's own stage values, so the shares add up to the lines the ledger reads from the same row:

- rule line: the rule's value (after kind, decay and rule cap) divided among its counted events in
  proportion to their weights: 'each' its decayed points, 'once' 1 for the most recent match (ties: the
  greater message id) and 0 for the rest, 'threshold' 1 for each event within ``within`` (equal shares; 0
  for all while the threshold is unmet; with a distinct count, every event within still shares equally),
  'ratio' 1 for each event of its two windows, 'recency' as 'once' (the newest match within its longest
  step). An account-scope rule's events are those of every lead of the account;
- group cap line: each event of the group's rules scaled by gval / gsum (the group total after / before
  its cap), the event's share being the change;
- floor and clamp (engagement): every event scaled by floored / raw and clamped / floored totals alike.

A lead whose behaviour may not be scored (no tracking consent) has no counted events. docs/model-language.md
("The events behind a line") states the same rules.

Each rule lists its newest ``EVENTS_PER_LINE`` counted events; the shares are computed over all of them
first, so a listed event's share is the same whatever the bound, and the rest are counted
(``Explanation.omitted``): their share of a line is the line less the listed events' shares. A write key
can send a million page views for one person: her explanation stays a few hundred rows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    func,
    literal,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from leadscore.compile import layout
from leadscore.compile.dialects import CodePointOrder, computed_once, double, targets_in_place
from leadscore.compile.ledger import Ledger, factors, read_ledger
from leadscore.compile.query import (
    account_events,
    account_people_events,
    compile_model,
    counted,
    event_match,
    lead_events,
    lead_people_events,
    occurrence_points,
    scope,
    scoped,
    with_exclusions,
)
from leadscore.compile.sources import Sources
from leadscore.model import EventRule, OnceRule, RatioRule, RecencyRule, ScoringModel, ThresholdRule

ENGAGEMENT_FLOOR = "floor:engagement"
ENGAGEMENT_CLAMP = "clamp:engagement"
# the newest counted events of each rule an explanation lists (the lead page shows fewer, the API all of them)
EVENTS_PER_LINE = 100
# the bound parameters of a page of one rule's events (``compile_contributions(page=True)``)
PAGE_RULE, PAGE_SKIP, PAGE_TAKE = "page_rule", "page_skip", "page_take"


def compile_contributions(
    model: ScoringModel,
    sources: Sources,
    targets: Select[Any],
    engine: str = "sqlite",
    events_per_line: int = EVENTS_PER_LINE,
    *,
    page: bool = False,
) -> Select[Any]:
    """Every (lead_id, as_of) row of ``targets`` as ``compile_model`` scores it (all ledger columns),
    once per listed event (the newest ``events_per_line`` of each rule) with that event's shares
    (``layout.EVENT_*``) and its rule's count of counted events (``ev_of``), or once with NULL shares when
    it has none; ordered by lead, as_of, rule and newest event first.

    ``page``: one rule's events only, a page of them newest first, by bound parameters (``PAGE_RULE``: the
    rule's index; ``PAGE_SKIP`` events skipped, then at most ``PAGE_TAKE``), so one kept statement serves
    every page, and with it the rule's newest event (the caller drops it where it is not on the page). The
    shares are those of the full explanation (computed over all the rule's events)."""
    rows = computed_once(compile_model(model, sources, targets, engine, explain=True).cte("ledger_rows"))
    if not model.engagement:
        return select(rows).order_by(rows.c.lead_id, rows.c.as_of)
    message_id = sources.events.c.message_id
    evs: dict[str, Any] = {}
    # the events are looked up from the targets, as the scoring query does, not from the ledger rows (one
    # per target that has a lead; the shares below join them): SQLite takes a stored CTE for a large
    # table and would build a Bloom filter over the whole event index on every call (140 ms at 1M events)
    driver = targets_in_place(targets.cte("event_targets"))
    if lead_rules := scoped(model, "lead"):
        events = lead_events(model, driver, sources.events, sources.identities, message_id)
        people = lead_people_events(lead_rules, driver, sources.events, sources.identities)
        evs["lead"] = computed_once(
            with_exclusions(model, lead_rules, events, "lead_", people).cte("lead_events")
        )
    if account_rules := scoped(model, "account"):
        events = account_events(model, driver, sources.events, sources.identities, sources.leads, message_id)
        people = account_people_events(
            model, account_rules, driver, sources.events, sources.identities, sources.leads
        )
        evs["account"] = computed_once(
            with_exclusions(model, account_rules, events, "account_", people).cte("account_events")
        )
    per_rule = [
        _rule_shares(model, i, rule, evs[scope(rule)], rows) for i, rule in enumerate(model.engagement)
    ]
    shares = union_all(*per_rule).cte("event_shares")
    listed: list[ColumnElement[bool]] = [shares.c.ev_rank <= events_per_line]
    if page:
        skip = bindparam(PAGE_SKIP, type_=BigInteger)  # skip + take past 2**31 (PostgreSQL's integer)
        listed = [
            shares.c[layout.EVENT_RULE] == bindparam(PAGE_RULE, type_=Integer),
            or_(  # the newest, for the rule's count of events (``ev_of``) on a page past the last
                shares.c.ev_rank == 1,
                and_(
                    shares.c.ev_rank > skip, shares.c.ev_rank <= skip + bindparam(PAGE_TAKE, type_=BigInteger)
                ),
            ),
        ]
    key = and_(shares.c.lead_id == rows.c.lead_id, shares.c.as_of == rows.c.as_of, *listed)
    s, r = shares.c, rows.c
    grouped = s.ev_points * s.group_factor
    floored_total = r.engagement_raw + r.engagement_floor_adj
    floor = case(
        (r.engagement_raw == 0, double(0.0)), else_=grouped * r.engagement_floor_adj / r.engagement_raw
    )
    clamp = case(
        (floored_total == 0, double(0.0)), else_=(grouped + floor) * r.engagement_clamp_adj / floored_total
    )
    return (
        select(
            rows,
            s[layout.EVENT_RULE],
            *(s[c] for c in layout.EVENT_COLUMNS),
            s.ev_of,
            s.ev_points,
            (grouped - s.ev_points).label("ev_group_cap"),
            floor.label("ev_floor"),
            clamp.label("ev_clamp"),
        )
        .select_from(rows.outerjoin(shares, key))
        .order_by(
            r.lead_id, r.as_of, s[layout.EVENT_RULE], s.ev_ts.desc(), CodePointOrder(s.ev_message_id).desc()
        )
    )


def _rule_shares(model: ScoringModel, index: int, rule: EventRule, ev: Any, rows: Any) -> Select[Any]:
    """The rule's counted events of each row, with each one's share of the rule's value (``ev_points``),
    the factor its group cap applies (``group_factor``), its place among them, newest first
    (``ev_rank``), and how many there are (``ev_of``)."""
    per_row: list[Any] = [ev.c.lead_id, ev.c.as_of]
    kept = [event_match(model, rule, ev), rows.c[layout.TRACKING] == 1]
    value = rows.c[layout.value_col(rule.id)]
    share: ColumnElement[Any]
    recent_enough = counted(rule, ev)
    if recent_enough is not None:
        kept.append(recent_enough)
    of = func.count().over(partition_by=per_row)
    # ties: the greater message id by code point, whatever the database's collation
    newest = func.row_number().over(
        partition_by=per_row, order_by=[ev.c.ts.desc(), CodePointOrder(ev.c.message_id).desc()]
    )
    if isinstance(rule, ThresholdRule | RatioRule):
        share = value / of
    elif isinstance(rule, OnceRule | RecencyRule):
        share = case((newest == 1, value), else_=double(0.0))
    else:
        weight = occurrence_points(model, rule, ev)
        total = func.sum(weight).over(partition_by=per_row)
        share = case((total == 0, double(0.0)), else_=value * weight / total)
    factor: ColumnElement[Any] = double(1.0)
    if rule.group is not None:
        before, after = rows.c[layout.group_sum_col(rule.group)], rows.c[layout.group_value_col(rule.group)]
        factor = case((before == 0, double(1.0)), else_=after / before)
    return (
        select(
            ev.c.lead_id,
            ev.c.as_of,
            literal(index, Integer).label(layout.EVENT_RULE),
            ev.c.message_id.label("ev_message_id"),
            ev.c.ts.label("ev_ts"),
            ev.c.type.label("ev_type"),
            ev.c.name.label("ev_name"),
            ev.c.path.label("ev_path"),
            ev.c.url.label("ev_url"),
            share.label("ev_points"),
            factor.label("group_factor"),
            newest.label("ev_rank"),
            of.label("ev_of"),
        )
        .select_from(ev.join(rows, and_(rows.c.lead_id == ev.c.lead_id, rows.c.as_of == ev.c.as_of)))
        .where(*kept)
    )


@dataclass(frozen=True)
class EventShare:
    """One counted event of one rule and its shares of the ledger lines, in score points."""

    rule_id: str
    message_id: str
    ts: int
    type: str
    name: str | None
    path: str | None
    url: str | None
    points: float  # share of the rule's line
    group_cap: float  # share of the rule's group cap line (0 outside a group)
    floor: float  # share of the engagement floor line
    clamp: float  # share of the engagement clamp line
    group: str | None = None

    @property
    def score_points(self) -> float:
        """What the event adds to the score, every adjustment applied."""
        return self.points + self.group_cap + self.floor + self.clamp

    def share(self, line_id: str) -> float:
        """The event's share of one ledger line (0 for lines it has no part in)."""
        if line_id == self.rule_id:
            return self.points
        if self.group is not None and line_id == f"group:{self.group}":
            return self.group_cap
        return {ENGAGEMENT_FLOOR: self.floor, ENGAGEMENT_CLAMP: self.clamp}.get(line_id, 0.0)


@dataclass(frozen=True)
class Explanation:
    """A ledger and the counted events behind its lines (rule order, newest event first): each rule's
    newest ``EVENTS_PER_LINE``, and how many more each line has (``omitted``, line id → events)."""

    ledger: Ledger
    events: tuple[EventShare, ...] = ()
    omitted: Mapping[str, int] = field(default_factory=dict)

    def line_events(self, line_id: str) -> list[tuple[EventShare, float]]:
        """The listed events behind one line with each one's share: every listed event of a rule line
        (zeros included; with ``line_rest``'s, as many as the line's ``matched``); the listed events with a
        share in an adjustment line."""
        out = [(e, e.share(line_id)) for e in self.events]
        return [(e, v) for e, v in out if e.rule_id == line_id or v != 0.0]

    def line_rest(self, line_id: str) -> tuple[int, float]:
        """The events behind a line that are not listed: how many, and their share of the line in score
        points (the line less the listed events' shares; (0, 0.0) when every event is listed)."""
        _, count, points = self.newest(line_id)
        return count, points

    def newest(
        self, line_id: str, limit: int | None = None
    ) -> tuple[list[tuple[EventShare, float]], int, float]:
        """The newest ``limit`` listed events behind a line (every one when None) with their shares, newest
        first across its rules (an adjustment line's are in rule order; events of one time keep it), and
        the rest of its events: how many, and their share of the line (the line less the shares returned;
        0 when none is left)."""
        behind = sorted(self.line_events(line_id), key=lambda pair: pair[0].ts, reverse=True)
        listed = behind if limit is None else behind[:limit]
        count = self.omitted.get(line_id, 0) + len(behind) - len(listed)
        if not count:
            return listed, 0, 0.0
        points = sum(ln.score_points for ln in self.ledger.lines if ln.rule_id == line_id)
        return listed, count, points - sum(v for _, v in listed)

    def as_dict(self) -> dict[str, Any]:
        """The ledger as a mapping, each line with its listed ``events`` (the event and its
        ``score_points``), ``events_omitted`` and their ``omitted_points``."""
        data = self.ledger.as_dict()
        for line in data["lines"]:
            line["events"] = [
                {**_event_fields(e), "score_points": v} for e, v in self.line_events(line["rule_id"])
            ]
            line["events_omitted"], line["omitted_points"] = self.line_rest(line["rule_id"])
        data["events"] = [event_dict(e) for e in self.events]
        data["events_per_line"] = EVENTS_PER_LINE
        return data


def _event_fields(e: EventShare) -> dict[str, Any]:
    return {k: getattr(e, k) for k in ("rule_id", "message_id", "ts", "type", "name", "path", "url")}


def event_dict(e: EventShare) -> dict[str, Any]:
    """An event as an explanation's ``events`` list it: what it was and its share of every line."""
    return {**_event_fields(e), **_parts(e)}


def _parts(e: EventShare) -> dict[str, Any]:
    return {"points": e.points, "group_cap": e.group_cap, "floor": e.floor, "clamp": e.clamp,
            "group": e.group, "score_points": e.score_points}  # fmt: skip


def read_explanations(model: ScoringModel, rows: Iterable[Mapping[str, Any]]) -> list[Explanation]:
    """Read the rows of ``compile_contributions`` (in its order) into one explanation per target."""
    _, ef = factors(model)
    out: list[Explanation] = []
    current: tuple[Any, Any] | None = None
    ledger: Ledger | None = None
    events: list[EventShare] = []
    counted: dict[int, int] = {}  # rule index → its counted events (listed or not)
    for row in rows:
        key = (row["lead_id"], row["as_of"])
        if key != current:
            if ledger is not None:
                out.append(_explanation(model, ledger, events, counted))
            current, ledger, events, counted = key, read_ledger(model, row), [], {}
        index = row.get(layout.EVENT_RULE)
        if index is None:
            continue
        rule = model.engagement[int(index)]
        counted[int(index)] = int(row["ev_of"])
        points, group_cap, floor, clamp = (float(row[c]) * ef for c in layout.EVENT_PARTS)
        events.append(
            EventShare(
                rule.id,
                str(row["ev_message_id"]),
                int(row["ev_ts"]),
                str(row["ev_type"]),
                row["ev_name"],
                row["ev_path"],
                row["ev_url"],
                points,
                group_cap,
                floor,
                clamp,
                rule.group,
            )
        )
    if ledger is not None:
        out.append(_explanation(model, ledger, events, counted))
    return out


def _explanation(
    model: ScoringModel, ledger: Ledger, events: list[EventShare], counted: Mapping[int, int]
) -> Explanation:
    """The explanation of one target, with the events each line has beyond those listed: a rule's line its
    own (zeros included, as it lists them); its group's cap line and the engagement floor and clamp lines,
    which scale the events' shares of their rules' lines, those with a share of their rule's line, as
    they list only the events with a share in them (``_carry_points``)."""
    listed = Counter(e.rule_id for e in events)
    omitted: Counter[str] = Counter()
    for index, count in counted.items():
        rule = model.engagement[index]
        more = count - listed[rule.id]
        if more <= 0:
            continue
        omitted[rule.id] += more
        if _carry_points(rule, [e for e in events if e.rule_id == rule.id]):
            for line_id in (ENGAGEMENT_FLOOR, ENGAGEMENT_CLAMP):
                omitted[line_id] += more
            if rule.group is not None:
                omitted[f"group:{rule.group}"] += more
    return Explanation(ledger, tuple(events), dict(omitted))


def _carry_points(rule: EventRule, listed: list[EventShare]) -> bool:
    """Whether the events of ``rule`` not listed (older than every listed one) carry points of its line:
    never for ``once`` and ``recency`` (the newest carries them all); for ``threshold`` and ``ratio`` (equal
    shares) and ``each`` (decayed points) when the listed ones do."""
    if isinstance(rule, OnceRule | RecencyRule):
        return False
    return any(e.points != 0.0 for e in listed)


__all__ = [
    "EVENTS_PER_LINE",
    "PAGE_RULE",
    "PAGE_SKIP",
    "PAGE_TAKE",
    "EventShare",
    "Explanation",
    "compile_contributions",
    "event_dict",
    "read_explanations",
]
