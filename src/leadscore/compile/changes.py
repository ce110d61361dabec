"""When the passing of time alone next changes which events a rule counts: an event entering (its time is
after as-of) or leaving one of the rule's spans (``window``, a threshold's or recency step's ``within``,
a ratio's two windows).

Built from the same match expressions as ``query.compile_model`` (``kind_match``: the rule's type, name and
``where``), so a time found here is one at which the compiled query may count a different set of events.
It errs early, never late: exclusions (machine opens, bursts) are ignored here, since time alone never
changes them, so an excluded event may give a time at which nothing changes (the rescoring then finds
the same score and schedules again). Account-scope rules read the events of every lead of the account.
Decay is not here: it changes the score continuously and is bounded from the ledger (``scoring/due.py``).

One row per target: ``lead_id``, ``as_of``, then per engagement rule ``enter__<rule>`` (the earliest
matching event after as-of) and one ``leave__<rule>__<n>`` per span (the earliest time a counted event
leaves it). NULL when there is none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, Select, and_, func, literal, select, type_coerce, union_all

from leadscore.compile.account_sweep import account_group
from leadscore.compile.dialects import DrivingJoin, NotIndexed, targets_in_place
from leadscore.compile.per_model import PerModel
from leadscore.compile.query import MS, condition_key, kind_match, scope
from leadscore.compile.sources import Sources
from leadscore.model import EventRule, RatioRule, RecencyRule, ScoringModel, ThresholdRule, duration_seconds


def enter_column(rule_id: str) -> str:
    return f"enter__{rule_id}"


def leave_column(rule_id: str, n: int) -> str:
    return f"leave__{rule_id}__{n}"


def spans_ms(rule: EventRule) -> list[int]:
    """Every age at which an event may stop counting for the rule, or change how it counts (empty: it
    counts for ever)."""
    seconds = [duration_seconds(rule.window)] if rule.window else []
    if isinstance(rule, ThresholdRule):
        seconds.append(duration_seconds(rule.within))
    elif isinstance(rule, RatioRule):  # from the last window into the one before, then out of both
        seconds += [duration_seconds(rule.within), 2 * duration_seconds(rule.within)]
    elif isinstance(rule, RecencyRule):
        seconds += [duration_seconds(step.within) for step in rule.steps]
    return sorted({int(s * MS) for s in seconds})


def compile_changes(model: ScoringModel, sources: Sources, targets: Select[Any]) -> Select[Any] | None:
    """The next window entries and exits of every (lead_id, as_of) target, or None for a model without
    engagement rules (its score never changes by time)."""
    if not model.engagement:
        return None
    return changes_of([model], sources, targets)


def changes_of(models: Sequence[ScoringModel], sources: Sources, targets: Select[Any]) -> Select[Any]:
    """``compile_changes`` for the engagement rules of several models in one statement that reads the
    events once (the rule ids of the models must differ: ``composite.namespaced``). Each rule's columns
    read only the events it matches, so reading those of the other models' rules changes none; rules whose
    columns would be equal (the same scope, match and spans) read the columns of the first.

    Lead-scope rules read each target's own events; account-scope rules the events of every lead of its
    account (the lead alone when it has none), read once per account and as-of time, not once per target
    and colleague: a clock tick over an account of 1,200 people took 0.4 CPU-s a chunk of 120 targets,
    each reading all 1,200 colleagues' events (the square of the account's size for a tick)."""
    sources.check()
    rules = [rule for model in models for rule in model.engagement]
    t = targets_in_place(targets.cte("targets"))
    e, ids = sources.events, sources.identities
    spans = {rule.id: spans_ms(rule) for rule in rules}
    holders: dict[tuple[Any, ...], str] = {}  # what a rule's columns depend on -> the rule computing them
    read: list[tuple[str, str]] = []  # (rule id, the id of the rule whose columns it reads)
    parts: dict[str, list[tuple[ScoringModel, EventRule]]] = {"lead": [], "account": []}
    for owner, rule in ((m, rule) for m in models for rule in m.engagement):
        key = (
            scope(rule),
            rule.event.model_dump_json(),
            condition_key(owner, rule.where),
            tuple(spans[rule.id]),
        )
        holder = holders.setdefault(key, rule.id)
        read.append((rule.id, holder))
        if holder == rule.id:  # else the same columns as an earlier rule's (of this model or another)
            parts[scope(rule)].append((owner, rule))
    if not parts["account"]:
        own = _grouped(parts["lead"], spans, _own_events(t, e, ids, _event_join(parts["lead"], spans, e, t)))
        return own if all(r == h for r, h in read) else _named(own, read, spans)
    # each target's account (its own id when it has none), its account-scope columns from the account's
    me = sources.leads.alias("target_lead")
    gid, solo = account_group(me)
    tg = (
        select(t.c.lead_id, t.c.as_of, gid.label("gid"), solo.label("solo"))
        .select_from(t.join(me, me.c.id == t.c.lead_id))
        .cte("change_targets")
    )
    accounts = select(tg.c.gid, tg.c.solo, tg.c.as_of).distinct().cte("change_accounts")
    mate = sources.leads.alias("account_lead")
    in_account = and_(accounts.c.solo == 0, mate.c.account_id == accounts.c.gid)
    alone = and_(accounts.c.solo == 1, mate.c.id == accounts.c.gid)
    account_join = _event_join(parts["account"], spans, e, accounts)
    fields = _fields(e)
    account_ev = union_all(
        *(
            select(accounts.c.gid, accounts.c.solo, accounts.c.as_of, *fields).select_from(
                DrivingJoin(
                    accounts.join(mate, on).join(ids, ids.c.lead_id == mate.c.id),
                    e,
                    and_(e.c.person_key == ids.c.key, account_join),
                )
            )
            for on in (in_account, alone)
        )
    ).subquery("account_ev")
    found = _grouped(parts["account"], spans, account_ev, ("gid", "solo")).subquery("account_changes")
    cols: list[Any] = [tg.c.lead_id, tg.c.as_of]
    joined: Any = tg.outerjoin(
        found, and_(found.c.gid == tg.c.gid, found.c.solo == tg.c.solo, found.c.as_of == tg.c.as_of)
    )
    if parts["lead"]:
        own_join = _event_join(parts["lead"], spans, e, t)
        mine = _grouped(parts["lead"], spans, _own_events(t, e, ids, own_join)).subquery("own_changes")
        joined = joined.outerjoin(mine, and_(mine.c.lead_id == tg.c.lead_id, mine.c.as_of == tg.c.as_of))
        cols += [c for c in mine.c if c.name not in ("lead_id", "as_of")]
    cols += [c for c in found.c if c.name not in ("gid", "solo", "as_of")]
    both = select(*cols).select_from(joined)
    return both if all(r == h for r, h in read) else _named(both, read, spans)


def _fields(e: Any) -> tuple[Any, ...]:
    # the type unindexed, as in the scoring query (``query._event_join``): SQLite took the (type, ts, path)
    # index for the account's join, every event of the type in the look-back once per target and colleague
    # (an account of 800 people with an event each: a tick over 500 of them 23.0 CPU-s, 0.88 by person)
    return (e.c.ts, NotIndexed(e.c.type).label("type"), e.c.name, e.c.path, e.c.url, e.c.properties)


def _event_join(
    part: Sequence[tuple[ScoringModel, EventRule]], spans: Mapping[str, list[int]], e: Any, at: Any
) -> Any:
    """How the events of a person meet the as-of times ``at`` (a table with ``as_of``): the rules' types,
    after the as-of time less their longest span (entries after as-of too: spans are not negative)."""
    longest = max((s for _, rule in part for s in spans[rule.id]), default=0)
    types = sorted({rule.event.type for _, rule in part})
    kind = NotIndexed(e.c.type)
    return and_(
        kind.in_(types) if len(types) > 1 else kind == types[0],
        e.c.ts > at.c.as_of - literal(longest, BigInteger),
    )


def _own_events(t: Any, e: Any, ids: Any, join_on: Any) -> Any:
    """Each target's own events (of its identities), with its lead id and as-of time."""
    return (
        select(t.c.lead_id, t.c.as_of, *_fields(e))
        .select_from(DrivingJoin(DrivingJoin(t, ids, ids.c.lead_id == t.c.lead_id), e, and_(e.c.person_key == ids.c.key, join_on)))
        .subquery("ev")
    )  # fmt: skip


def _grouped(
    part: Sequence[tuple[ScoringModel, EventRule]],
    spans: Mapping[str, list[int]],
    ev: Any,
    keys: tuple[str, ...] = ("lead_id",),
) -> Select[Any]:
    """The entry and exit columns of the rules of ``part`` over the events ``ev``, one row per ``keys``
    and as-of time."""
    cols: list[Any] = [ev.c[k] for k in keys] + [ev.c.as_of]
    for owner, rule in part:
        match = kind_match(owner, rule, ev)
        cols.append(func.min(ev.c.ts).filter(and_(match, ev.c.ts > ev.c.as_of)).label(enter_column(rule.id)))
        for n, span in enumerate(spans[rule.id]):
            counted = and_(match, ev.c.ts <= ev.c.as_of, ev.c.ts > ev.c.as_of - literal(span, BigInteger))
            leave = type_coerce(func.min(ev.c.ts).filter(counted) + literal(span, BigInteger), BigInteger)
            cols.append(leave.label(leave_column(rule.id, n)))
    return select(*cols).group_by(*(ev.c[k] for k in keys), ev.c.as_of)


def _named(
    query: Select[Any], read: Sequence[tuple[str, str]], spans: Mapping[str, list[int]]
) -> Select[Any]:
    """The columns of every rule, read from those of the rule holding them."""
    found = query.subquery("changes")
    named: list[Any] = [found.c.lead_id, found.c.as_of]
    for rule_id, holder in read:
        named.append(found.c[enter_column(holder)].label(enter_column(rule_id)))
        named.extend(
            found.c[leave_column(holder, n)].label(leave_column(rule_id, n))
            for n in range(len(spans[rule_id]))
        )
    return select(*named)


def change_columns(model: ScoringModel) -> tuple[str, ...]:
    """The columns of ``compile_changes``' rows that hold a time (kept per model object)."""
    return _change_columns(model)


def _make_change_columns(model: ScoringModel) -> tuple[str, ...]:
    names: list[str] = []
    for rule in model.engagement:
        names.append(enter_column(rule.id))
        names += [leave_column(rule.id, n) for n in range(len(spans_ms(rule)))]
    return tuple(names)


_change_columns = PerModel(_make_change_columns)


def next_change(model: ScoringModel, row: Any) -> int | None:
    """The earliest time in one result row of ``compile_changes`` (None: no event enters or leaves)."""
    return next_changes(model, {name: (row[name],) for name in change_columns(model)})[0]


def next_changes(model: ScoringModel, columns: Mapping[str, Sequence[Any]]) -> list[int | None]:
    """``next_change`` of every row of a batch of ``compile_changes``' rows, given column by column."""
    names = change_columns(model)
    if not names:
        return [None] * len(columns["lead_id"])
    earliest: list[Any] = list(columns[names[0]])
    for name in names[1:]:
        for i, at in enumerate(columns[name]):
            if at is not None and (earliest[i] is None or at < earliest[i]):
                earliest[i] = at
    return [None if at is None else int(at) for at in earliest]
