"""Replay history point-in-time: which leads a model would have made MQLs, when, and what became of them.

A lead's score only rises when an event arrives (decay and windows only lower it), so a lead is scored as
of the start of the period (if it was known by then) and as of the last of its events on each day it was
active: the day it first reached the MQL threshold is exact (only a negative event later on the same day
could hide an earlier crossing). Each score comes from the compiled query (``scoring.run.score_points``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from leadscore.compile import Sources
from leadscore.learn.labels import DAY_MS, data_end, outcome_times
from leadscore.learn.store_data import first_touch
from leadscore.model import ScoringModel
from leadscore.scoring.run import score_points
from leadscore.store.schema import events, identities

WEEK_MS = 7 * DAY_MS
THRESHOLDS = tuple(range(0, 101))  # the advisor tries every whole score point


@dataclass(frozen=True)
class Replay:
    """Each lead's score at the start of the period and at each of its events within it."""

    start_ms: int
    end_ms: int
    start: dict[int, float]
    path: dict[int, list[tuple[int, float]]]  # lead → [(time, score)] in time order

    def mql_times(self, threshold: float) -> tuple[dict[int, int], set[int]]:
        """(lead → first time at or above the threshold within the period, leads already above at the start)."""
        already = {lead for lead, s in self.start.items() if s >= threshold}
        first: dict[int, int] = {}
        for lead, points in self.path.items():
            if lead in already:
                continue
            hit = next((t for t, s in points if s >= threshold), None)
            if hit is not None:
                first[lead] = hit
        return first, already


def checkpoints(conn: Connection, start_ms: int, end_ms: int) -> list[tuple[int, int]]:
    """(lead, time): the start for leads known by then, and each active day's last event in the period."""
    known = sorted(lead for lead, first in first_touch(conn).items() if first <= start_ms)
    last_of_day: dict[tuple[int, int], int] = {}
    for lead, ts in conn.execute(
        select(identities.c.lead_id, events.c.ts)
        .join(events, events.c.person_key == identities.c.key)
        .where(events.c.ts > start_ms, events.c.ts <= end_ms)
    ):
        key = (int(lead), int(ts) // DAY_MS)
        last_of_day[key] = max(last_of_day.get(key, 0), int(ts))
    return [(lead, start_ms) for lead in known] + sorted((lead, ts) for (lead, _), ts in last_of_day.items())


def replay(
    conn: Connection,
    sources: Sources,
    model: ScoringModel,
    pairs: list[tuple[int, int]],
    start_ms: int,
    end_ms: int,
) -> Replay:
    leads_seen = [lead for lead, ts in pairs if ts == start_ms]
    scored = {(lg.lead_id, lg.as_of): lg.score for lg in score_points(conn, model, sources, pairs)}
    path: dict[int, list[tuple[int, float]]] = {}
    for lead, ts in pairs[len(leads_seen) :]:
        path.setdefault(lead, []).append((ts, scored[(lead, ts)]))
    return Replay(start_ms, end_ms, {lead: scored[(lead, start_ms)] for lead in leads_seen}, path)


@dataclass(frozen=True)
class Outcomes:
    """When each lead converted (first outcome of the kind), with the horizon and the end of the data."""

    kind: str
    converted: dict[int, int]
    horizon_ms: int
    end_ms: int

    @classmethod
    def load(cls, conn: Connection, kind: str, horizon_ms: int) -> Outcomes:
        first: dict[int, int] = {}
        for lead, rows in outcome_times(conn).items():
            hits = [at for k, at in rows if k == kind]
            if hits:
                first[lead] = min(hits)
        return cls(kind, first, horizon_ms, data_end(conn))


@dataclass
class ModelBacktest:
    model: str
    threshold: float
    mqls: int
    already_mql: int
    weekly: list[int]
    converted: int  # MQLs that converted within the horizon after becoming MQL
    labelled: int  # MQLs whose horizon has passed, or that converted
    precision: float
    recall: float  # of the leads that converted in the period, the share that was MQL first
    median_days_to_mql: float | None
    leads: set[int] = field(default_factory=set, repr=False)


def summarise(
    rp: Replay, out: Outcomes, label: str, threshold: float, touched: dict[int, int]
) -> ModelBacktest:
    first, already = rp.mql_times(threshold)
    weeks = max(1, math.ceil((rp.end_ms - rp.start_ms) / WEEK_MS))
    weekly = [0] * weeks
    for t in first.values():
        weekly[min(weeks - 1, (t - rp.start_ms - 1) // WEEK_MS)] += 1
    converted = labelled = 0
    for lead, t in first.items():
        c = out.converted.get(lead)
        if c is not None and c <= t:
            continue  # converted before this model would have flagged them: not the model's doing
        if c is not None and c <= t + out.horizon_ms:
            converted += 1
            labelled += 1
        elif t + out.horizon_ms <= out.end_ms:
            labelled += 1
    in_period = {lead: c for lead, c in out.converted.items() if rp.start_ms < c <= rp.end_ms}
    caught = sum(
        1 for lead, c in in_period.items() if lead in already or (lead in first and first[lead] <= c)
    )
    days = [(t - touched[lead]) / DAY_MS for lead, t in first.items() if lead in touched]
    return ModelBacktest(
        model=label,
        threshold=threshold,
        mqls=len(first),
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


def advise(rp: Replay, out: Outcomes, touched: dict[int, int], *, per_week: float | None,
           precision: float | None) -> Advice:  # fmt: skip
    weeks = max(1.0, (rp.end_ms - rp.start_ms) / WEEK_MS)
    advice = Advice(None, None, None, None)
    for threshold in THRESHOLDS:
        result = summarise(rp, out, "", threshold, touched)
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
    candidate: tuple[str, ScoringModel, float],
    baseline: tuple[str, ScoringModel, float] | None,
    *,
    start_ms: int,
    end_ms: int,
    outcome: str,
    horizon_ms: int,
    per_week: float | None = None,
    precision: float | None = None,
) -> BacktestResult:
    """``candidate`` and ``baseline`` are (label, model, MQL threshold)."""
    out = Outcomes.load(conn, outcome, horizon_ms)
    touched = first_touch(conn)
    pairs = checkpoints(conn, start_ms, end_ms)
    rp = replay(conn, sources, candidate[1], pairs, start_ms, end_ms)
    cand = summarise(rp, out, candidate[0], candidate[2], touched)
    base = None
    if baseline is not None:
        base = summarise(
            replay(conn, sources, baseline[1], pairs, start_ms, end_ms),
            out,
            baseline[0],
            baseline[2],
            touched,
        )
    gained = cand.leads - (base.leads if base else set())
    lost = (base.leads if base else set()) - cand.leads

    def converted(group: Sequence[int] | set[int]) -> int:
        return sum(1 for lead in group if lead in out.converted and out.converted[lead] > start_ms)

    return BacktestResult(
        start_ms, end_ms, outcome, horizon_ms / DAY_MS, cand, base, len(gained), len(lost),
        converted(gained), converted(lost), advise(rp, out, touched, per_week=per_week, precision=precision),
    )  # fmt: skip
