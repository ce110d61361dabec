"""Replay history point-in-time: which leads a model would have made MQLs, when, and what became of them.

A lead's score only rises when an event arrives (decay and windows only lower it), so a lead is scored as
of the start of the period (if it was known by then) and as of the last of its events on each day it was
active. Each score comes from the compiled query with the lead's attributes as known at that time
(``scoring.as_known.score_as_known_models``, as history and ``explain --as-of`` read them: a title that
changed on day −30 is the old one at day −60). These observations are replayed through the model's
lifecycle (``lifecycle.replay``: the runner's own gates and stage machine,
so fit grade, hysteresis and new activity count as they do in production); an MQL is an entry into the
MQL stage. A lead known before the period starts in the initial stage at its first event and is placed
by its score at the start; a lead that falls back and qualifies again within the period is an MQL again
(sales hears of it again), while precision, recall and days to MQL count each lead at its first entry.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import BigInteger, Connection, func, literal, select

from leadscore.compile import Sources
from leadscore.learn.labels import DAY_MS, data_end, first_conversions, mql_converted, outcome_times
from leadscore.learn.store_data import first_touch
from leadscore.lifecycle.gates import Facts, matching
from leadscore.lifecycle.replay import for_score, mql_stage, mql_threshold, replay_lead, with_threshold
from leadscore.model import Lifecycle, ScoringModel, Transition
from leadscore.scoring import run as scoring_run
from leadscore.scoring.as_known import score_as_known_models
from leadscore.scoring.pipeline import active_model
from leadscore.store.schema import events, identities
from leadscore.store.score_names import check_name, primary_score

WEEK_MS = 7 * DAY_MS
THRESHOLDS = tuple(range(0, 101))  # the advisor tries every whole score point
LARGEST = 1  # an account's checkpoints in one statement: up to this many chunks' worth (``account_chunks``)


@dataclass(frozen=True)
class Replay:
    """Each lead's facts at the start of the period and at each active day's last event within it."""

    start_ms: int
    end_ms: int
    begin: dict[int, int]  # lead → first event: when it entered the initial stage
    known: frozenset[int]  # leads observed at the start
    path: dict[int, list[Facts]]  # lead → observations in time order
    attribute_hits: dict[str, set[int]]  # transition id → leads whose attributes satisfy its condition
    scores: dict[int, list[float]] = field(default_factory=dict)  # lead → its observed scores, ascending

    @cached_property
    def by_top(self) -> list[int]:
        """The leads by their highest observed score, highest first (``tops``: those scores, negated)."""
        return sorted(self.scores, key=lambda lead: -self.scores[lead][-1])

    @cached_property
    def tops(self) -> list[float]:
        return [-self.scores[lead][-1] for lead in self.by_top]

    def lead_entries(self, lead: int, lifecycle: Lifecycle, target: str) -> tuple[list[int], bool]:
        """(the times the lead entered ``target`` within the period, whether it was in it at the start)."""

        def attribute_ok(t: Transition) -> bool:
            return lead in self.attribute_hits.get(t.id, set())

        moves = replay_lead(lifecycle, self.begin[lead], self.path[lead], attribute_ok, self.end_ms)
        at_start = lifecycle.initial
        for move in moves:
            if move.at_ms <= self.start_ms:
                at_start = move.to_stage
        times = [m.at_ms for m in moves if m.to_stage == target and m.at_ms > self.start_ms]
        return times, lead in self.known and at_start == target

    def mql_times(
        self, lifecycle: Lifecycle, threshold: float | None = None, memo: Memo | None = None
    ) -> tuple[dict[int, list[int]], set[int]]:
        """(lead → the times it entered the MQL stage within the period, leads in it at the start).

        With ``threshold``, every automatic way into the MQL stage asks for exactly that score
        (``replay.with_threshold``), so a lead whose observed scores all stay below it never gets there
        (unless leads start there), and two thresholds with the same observed scores at or above them take the same moves: ``memo``
        keeps each lead's result per such set (the advisor tries 101 thresholds).
        """
        target = mql_stage(lifecycle)
        entries: dict[int, list[int]] = {}
        already: set[int] = set()
        skip_below = threshold is not None and memo is not None and lifecycle.initial != target
        leads: Iterable[int] = self.path
        if skip_below and threshold is not None:
            # only the leads with a score at or above the threshold: those below it are skipped anyway
            leads = self.by_top[: bisect.bisect_right(self.tops, -threshold)]
        for lead in leads:
            if threshold is None or memo is None:
                times, at_start = self.lead_entries(lead, lifecycle, target)
            else:
                ranked = self.scores[lead]
                above = len(ranked) - bisect.bisect_left(ranked, threshold)
                if above == 0 and skip_below:
                    continue
                if (lead, above) not in memo:
                    memo[(lead, above)] = self.lead_entries(lead, lifecycle, target)
                times, at_start = memo[(lead, above)]
            if at_start:
                already.add(lead)
            if times:
                entries[lead] = times
        return entries, already


Memo = dict[tuple[int, int], tuple[list[int], bool]]


def checkpoints(conn: Connection, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """(lead, time): the start for leads known by then, and each active day's last event in the period."""
    known = sorted(lead for lead, first in first_touch(conn).items() if first <= start_ms)
    # the day of a time in the period (after the epoch): its whole days since the epoch, in either dialect
    day = events.c.ts // literal(DAY_MS, BigInteger)
    last_of_day = (
        select(identities.c.lead_id, func.max(events.c.ts))
        .join(events, events.c.person_key == identities.c.key)
        .where(events.c.ts > start_ms, events.c.ts <= end_ms)
        .group_by(identities.c.lead_id, day)
    )
    return [(lead, start_ms) for lead in known] + sorted(
        (int(lead), int(ts)) for lead, ts in conn.execute(last_of_day)
    )


def _accounts(conn: Connection, sources: Sources) -> dict[int, tuple[int, int]]:
    """Lead → the key ``by_account`` orders by: (0, its account), or (1, itself) without one."""
    return {
        int(lead): (0, int(acc)) if acc is not None else (1, int(lead))
        for lead, acc in conn.execute(select(sources.leads.c.id, sources.leads.c.account_id))
    }


def _by_key(account: dict[int, tuple[int, int]], pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    return sorted(pairs, key=lambda p: (*account.get(p[0], (2, p[0])), p[1], p[0]))


def by_account(conn: Connection, sources: Sources, pairs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """``pairs`` ordered by the lead's account (the lead alone when it has none), then time, then lead.

    The scoring statement runs a chunk of pairs at a time, and its account-scope counts read every
    colleague's events from the earliest to the latest as-of of the account's targets in the chunk
    (``compile.account_sweep``). In lead order an account's people fall in every chunk (lead ids follow
    first contact, not accounts), so each chunk read each account's colleagues again: chunks x colleagues'
    events, quadratic in the leads (the simulator's competitors share one account of 4 % of the people).
    Together, an account is read in as many chunks as its own checkpoints fill, each over its own span of
    time. A pair's score does not depend on the other pairs of its chunk."""
    return _by_key(_accounts(conn, sources), pairs)


def account_chunks(
    conn: Connection, sources: Sources, pairs: Sequence[tuple[int, int]]
) -> list[list[tuple[int, int]]]:
    """``by_account``'s order cut into the chunks the backtest scores, each one statement: whole accounts
    packed up to ``scoring.run.POINTS_CHUNK`` checkpoints; an account with more in as few equal parts of
    at most ``LARGEST`` chunks' worth as it takes. Each part of an account reads its colleagues' events
    over its span plus the rules' look-back again, but a larger statement holds more ledgers at once (their
    lines too, for ``rules_met``): at 20k leads the competitors' account (15,430 checkpoints) took 20.3
    CPU-s in one statement within the backtest and 15.6 in four parts of 3,858, hence ``LARGEST`` 1."""
    account = _accounts(conn, sources)
    size = scoring_run.POINTS_CHUNK
    out: list[list[tuple[int, int]]] = []
    packed: list[tuple[int, int]] = []
    for _, group in itertools.groupby(_by_key(account, pairs), key=lambda p: account.get(p[0], (2, p[0]))):
        mine = list(group)
        if len(packed) + len(mine) > size and packed:
            out.append(packed)
            packed = []
        if len(mine) <= size:
            packed.extend(mine)
            continue
        parts = math.ceil(len(mine) / (LARGEST * size))
        step = math.ceil(len(mine) / parts)
        out.extend(mine[i : i + step] for i in range(0, len(mine), step))
    if packed:
        out.append(packed)
    return out


def _last_events(conn: Connection, at_ms: int) -> dict[int, int]:
    """Each lead's last event at or before ``at_ms``."""
    query = (
        select(identities.c.lead_id, func.max(events.c.ts))
        .join(events, events.c.person_key == identities.c.key)
        .where(events.c.ts <= at_ms)
        .group_by(identities.c.lead_id)
    )
    return {int(lead): int(ts) for lead, ts in conn.execute(query)}


def replay(
    conn: Connection,
    sources: Sources,
    model: ScoringModel,
    pairs: list[tuple[int, int]],
    start_ms: int,
    end_ms: int,
) -> Replay:
    """One model's ``replays``."""
    return replays(conn, sources, (model,), pairs, start_ms, end_ms)[0]


def replays(
    conn: Connection,
    sources: Sources,
    models: Sequence[ScoringModel],
    pairs: list[tuple[int, int]],
    start_ms: int,
    end_ms: int,
) -> list[Replay]:
    """Each model's ``Replay`` of the checkpoints ``pairs``, every model scored by one statement per chunk
    (``scoring.run.score_models_chunk``: the events read once for all of them), an account's checkpoints
    together (``account_chunks``)."""
    known = frozenset(lead for lead, ts in pairs if ts == start_ms)
    before = _last_events(conn, start_ms) if known else {}
    # the rules a transition's ``rules_met`` names: their ledger lines are read, and only theirs
    named = [
        {
            r
            for t in (m.lifecycle.transitions if m.lifecycle is not None else ())
            for r in t.when.rules_met or ()
        }
        for m in models
    ]
    observed: list[dict[int, list[Facts]]] = [{} for _ in models]
    # a chunk's rows become facts as they are read: every ledger of a period at once (a line per rule for
    # each lead and active day) is gigabytes at 20k leads; without ``rules_met`` no line is read at all
    for pairs_chunk in account_chunks(conn, sources, pairs):
        # each checkpoint with the lead's attributes as known then, as history and explain --as-of read it
        chunk = score_as_known_models(conn, models, sources, pairs_chunk, explain=any(named))
        for ledgers, names, seen in zip(chunk, named, observed, strict=True):
            for lg in ledgers.values():
                # a checkpoint after the start is an event's time; the start one follows the lead's last event
                last = before.get(lg.lead_id) if lg.as_of == start_ms else lg.as_of
                facts = Facts(lg.lead_id, lg.score, lg.fit_score, lg.engagement_score, lg.grade, lg.level,
                              lg.band, scored_ms=lg.as_of, entered_ms=lg.as_of, last_event_ms=last,
                              rule_points={ln.rule_id: ln.score_points for ln in lg.lines
                                           if ln.score_points != 0 and ln.rule_id in names}
                                          if names else {})  # fmt: skip
                seen.setdefault(lg.lead_id, []).append(facts)
    touched = first_touch(conn)
    out: list[Replay] = []
    for model, seen in zip(models, observed, strict=True):
        lifecycle = model.lifecycle
        path = {lead: sorted(seen[lead], key=lambda f: f.scored_ms) for lead in sorted(seen)}
        ids = sorted(path)
        hits = {
            t.id: matching(conn, model, t.when.attributes, ids, t.id)
            for t in (lifecycle.transitions if lifecycle is not None else ())
            if t.when.attributes is not None
        }
        begin = {
            lead: min(touched.get(lead, obs[0].scored_ms), obs[0].scored_ms) for lead, obs in path.items()
        }
        scores = {lead: sorted(f.score for f in obs) for lead, obs in path.items()}
        out.append(Replay(start_ms, end_ms, begin, known, path, hits, scores))
    return out


@dataclass(frozen=True)
class Outcomes:
    """When each lead converted (first outcome of the kind), with the horizon and the end of the data."""

    kind: str
    converted: dict[int, int]
    horizon_ms: int
    end_ms: int

    @classmethod
    def load(cls, conn: Connection, kind: str, horizon_ms: int) -> Outcomes:
        return cls(kind, first_conversions(outcome_times(conn), kind), horizon_ms, data_end(conn))


@dataclass
class ModelBacktest:
    model: str
    threshold: float
    mqls: int  # entries into the MQL stage within the period (a lead can enter more than once)
    already_mql: int
    weekly: list[int]
    converted: int  # MQLs that converted within the horizon after becoming MQL
    labelled: int  # MQLs whose horizon has passed, or that converted
    precision: float
    recall: float  # of the leads that converted in the period, the share that was MQL first
    median_days_to_mql: float | None
    leads: set[int] = field(default_factory=set, repr=False)


def summarise(
    rp: Replay, out: Outcomes, label: str, lifecycle: Lifecycle, threshold: float, memo: Memo | None = None
) -> ModelBacktest:
    """What replaying ``lifecycle`` gives: MQLs (entries into the MQL stage) and per lead at its first entry,
    conversions, precision, recall and days from first touch to MQL. ``memo``: see ``Replay.mql_times``."""
    entries, already = rp.mql_times(lifecycle, threshold if memo is not None else None, memo)
    first = {lead: times[0] for lead, times in entries.items()}
    weeks = max(1, math.ceil((rp.end_ms - rp.start_ms) / WEEK_MS))
    weekly = [0] * weeks
    for times in entries.values():
        for t in times:
            weekly[min(weeks - 1, (t - rp.start_ms - 1) // WEEK_MS)] += 1
    converted = labelled = 0
    for lead, t in first.items():
        verdict = mql_converted(out.converted.get(lead), t, out.horizon_ms, out.end_ms)
        if verdict is not None:
            converted += verdict
            labelled += 1
    in_period = {lead: c for lead, c in out.converted.items() if rp.start_ms < c <= rp.end_ms}
    caught = sum(
        1 for lead, c in in_period.items() if lead in already or (lead in first and first[lead] <= c)
    )
    days = [(t - rp.begin[lead]) / DAY_MS for lead, t in first.items()]
    return ModelBacktest(
        model=label,
        threshold=threshold,
        mqls=sum(weekly),
        already_mql=len(already),
        weekly=weekly,
        converted=converted,
        labelled=labelled,
        precision=converted / labelled if labelled else math.nan,
        recall=caught / len(in_period) if in_period else math.nan,
        median_days_to_mql=statistics.median(days) if days else None,
        leads=set(first),
    )


@dataclass
class Advice:
    capacity_threshold: float | None  # the threshold whose MQLs per week come closest to the asked number
    capacity_mqls_per_week: float | None
    precision_threshold: float | None  # lowest threshold reaching the asked precision
    precision_reached: float | None


def advise(rp: Replay, out: Outcomes, model: ScoringModel, *, per_week: float | None,
           precision: float | None) -> Advice:  # fmt: skip
    """Replay the model's lifecycle with each whole threshold (``replay.with_threshold``) in turn."""
    weeks = max(1.0, (rp.end_ms - rp.start_ms) / WEEK_MS)
    advice = Advice(None, None, None, None)
    if per_week is None and precision is None:
        return advice
    memo: Memo = {}
    for threshold in THRESHOLDS:
        result = summarise(rp, out, "", with_threshold(model, threshold), threshold, memo)
        rate = result.mqls / weeks
        best = advice.capacity_mqls_per_week
        if per_week is not None and (best is None or abs(rate - per_week) < abs(best - per_week)):
            advice.capacity_threshold, advice.capacity_mqls_per_week = float(threshold), rate
        if (precision is not None and advice.precision_threshold is None and result.labelled
                and result.precision >= precision):  # fmt: skip
            advice.precision_threshold, advice.precision_reached = float(threshold), result.precision
    return advice


@dataclass
class BacktestResult:
    start_ms: int
    end_ms: int
    outcome: str
    horizon_days: float
    candidate: ModelBacktest
    baseline: ModelBacktest | None
    gained: int  # MQLs of the candidate the baseline would not have made in the period
    lost: int
    gained_converted: int
    lost_converted: int
    advice: Advice

    def as_dict(self) -> dict[str, Any]:
        def clean(m: ModelBacktest | None) -> dict[str, Any] | None:
            if m is None:
                return None
            out = asdict(m)
            out.pop("leads")
            return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in out.items()}

        data = asdict(self)
        data["candidate"], data["baseline"] = clean(self.candidate), clean(self.baseline)
        return data


def backtest(
    conn: Connection,
    sources: Sources,
    candidate: tuple[str, ScoringModel, float | None],
    baseline: tuple[str, ScoringModel, float | None] | None,
    *,
    start_ms: int,
    end_ms: int,
    outcome: str,
    horizon_ms: int,
    per_week: float | None = None,
    precision: float | None = None,
    score: str | None = None,
) -> BacktestResult:
    """``candidate`` and ``baseline`` are (label, model, MQL threshold); a threshold of None keeps the
    model's own (``replay.mql_threshold``), a number replaces it (``replay.with_threshold``). Both are
    versions of the score ``score`` (the primary when None), replayed through the lifecycle as that
    score's team runs it (``replay.for_score``: its gates, its MQL stage; a model without a lifecycle of
    its own through the primary's)."""
    primary = primary_score(conn)
    shared = active_model(conn)
    lifecycle = shared.model.lifecycle if shared is not None else None
    team = primary if score is None else check_name(score)
    candidate = (candidate[0], for_score(candidate[1], team, primary, lifecycle), candidate[2])
    if baseline is not None:
        baseline = (baseline[0], for_score(baseline[1], team, primary, lifecycle), baseline[2])
    out = Outcomes.load(conn, outcome, horizon_ms)
    pairs = checkpoints(conn, start_ms, end_ms)

    replayed = (candidate, baseline) if baseline is not None else (candidate,)
    # both models in one statement per chunk: the events are read once for the two
    found = replays(conn, sources, [model for _, model, _ in replayed], pairs, start_ms, end_ms)

    def run(rp: Replay, label: str, model: ScoringModel, threshold: float | None) -> ModelBacktest:
        shown = mql_threshold(model) if threshold is None else threshold
        return summarise(rp, out, label, with_threshold(model, threshold), shown)

    rp = found[0]
    cand = run(rp, *candidate)
    base = run(found[1], *baseline) if baseline is not None else None
    gained = cand.leads - (base.leads if base else set())
    lost = (base.leads if base else set()) - cand.leads

    def converted(group: Sequence[int] | set[int]) -> int:
        return sum(1 for lead in group if lead in out.converted and out.converted[lead] > start_ms)

    return BacktestResult(
        start_ms, end_ms, outcome, horizon_ms / DAY_MS, cand, base, len(gained), len(lost),
        converted(gained), converted(lost), advise(rp, out, candidate[1], per_week=per_week, precision=precision),
    )  # fmt: skip
