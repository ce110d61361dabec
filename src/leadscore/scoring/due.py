"""When a stored score is next due: the earliest time the passing of time alone may change what a user or
the lifecycle reads from it (``scores.due_ms``, read by the clock in ``scoring/clock.py``).

Two things change a score with no new event:

* **windows**: an event enters (it is dated after the score's as-of time) or leaves a rule's window or a
  threshold's ``within``. Found exactly, by the compiled match expressions (``compile/changes.py``).
* **decay**: decaying points shrink continuously. A rule's decaying total is ``v × 0.5^(dt/h)`` after
  ``dt`` (every event of a rule decays with the rule's half-life; its cap and the group caps, floor and
  clamp after it never move the score by more than the rule's own change), so in ``dt`` the score moves by
  at most ``Σ_rules |v| × (1 − 0.5^(dt/h)) × points per raw point``. The score is due when that bound first
  reaches a boundary: a band threshold, a lifecycle or segment score threshold (``score_below`` lowered
  by the hysteresis), or ``TOLERANCE`` score points away from the stored score; the engagement score the
  same way against the level thresholds, the accounts' ``engaged_at_least`` and the tolerance. With one
  half-life the bound is the exact decay, so the time is exact; otherwise it is a lower bound, and the
  rescoring at that time schedules again from the nearer score.

Between boundaries the stored score is exact at its as-of time and within ``TOLERANCE`` of the decayed
score now; band, grade, level and every lifecycle threshold are those of now, one clock tick late at most.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Select

from leadscore.compile import Ledger, Sources, half_life_ms
from leadscore.compile.changes import compile_changes, next_change
from leadscore.compile.ledger import factors
from leadscore.model import ScoringModel
from leadscore.scoring.run import BOUND_DIALECTS, POINTS_CHUNK, bound_statement, points, target_params

TOLERANCE = 1.0  # score points (and engagement score points) a stored score may drift by decay
ITERATIONS = 64  # bisection steps for models whose decaying rules have several half-lives


def score_boundaries(model: ScoringModel) -> tuple[float, ...]:
    """Score values at which something a user or the lifecycle reads changes."""
    out = {model.scale.bands.hot, model.scale.bands.warm}
    lifecycle = model.lifecycle
    if lifecycle is not None:
        for t in lifecycle.transitions:
            if t.when.score_at_least is not None:
                out.add(t.when.score_at_least)
            if t.when.score_below is not None:
                out.add(t.when.score_below - lifecycle.hysteresis)
        out.update(s.score_at_least for s in lifecycle.segments if s.score_at_least is not None)
    return tuple(sorted(out))


def engagement_boundaries(model: ScoringModel) -> tuple[float, ...]:
    levels = model.scale.levels
    out = {levels.one, levels.two, levels.three}
    if model.lifecycle is not None and model.lifecycle.accounts is not None:
        out.add(model.lifecycle.accounts.engaged_at_least)
    return tuple(sorted(out))


def time_to_move(amounts: dict[float, float], distance: float) -> float | None:
    """The least ``dt`` (ms) with ``Σ_h amounts[h] × (1 − 0.5^(dt/h)) ≥ distance``; None if never."""
    total = sum(amounts.values())
    if distance <= 0:
        return 0.0
    if total <= distance:
        return None
    if len(amounts) == 1:
        (h,) = amounts
        return -h * math.log2(1 - distance / total)
    lo, hi = 0.0, -max(amounts) * math.log2(1 - distance / total)
    for _ in range(ITERATIONS):
        mid = (lo + hi) / 2
        if sum(a * (1 - 0.5 ** (mid / h)) for h, a in amounts.items()) >= distance:
            hi = mid
        else:
            lo = mid
    return lo  # moved less than ``distance`` by then: a lower bound


def decay_due(model: ScoringModel, ledger: Ledger, tolerance: float = TOLERANCE) -> int | None:
    """The earliest time decay alone may move the ledger's score or engagement score to a boundary."""
    half_lives = {r.id: half_life_ms(model, r) for r in model.engagement}
    amounts: dict[float, float] = {}
    for line in ledger.lines:
        h = half_lives.get(line.rule_id) if line.section == "engagement" else None
        if h:
            amounts[h] = amounts.get(h, 0.0) + abs(line.value)
    if not any(amounts.values()):
        return None
    per_score, per_engagement = factors(model)[1], 100.0 / model.scale.engagement_max
    distances = []
    if per_score > 0:
        s = ledger.score
        distances.append(_distance(s, (*score_boundaries(model), s - tolerance, s + tolerance)) / per_score)
    e = ledger.engagement_score
    distances.append(
        _distance(e, (*engagement_boundaries(model), e - tolerance, e + tolerance)) / per_engagement
    )
    dt = time_to_move(amounts, min(distances))
    return None if dt is None else ledger.as_of + math.floor(dt)


def _distance(value: float, boundaries: Iterable[float]) -> float:
    return min(abs(value - b) for b in boundaries)


def schedule(
    conn: Connection, model: ScoringModel, sources: Sources, ledgers: Sequence[Ledger]
) -> dict[int, int | None]:
    """Each ledger's lead → when its score is next due (None: time alone never changes it), always after
    the ledger's own as-of time."""
    windows = _window_changes(conn, model, sources, [(lg.lead_id, lg.as_of) for lg in ledgers])
    out: dict[int, int | None] = {}
    for lg in ledgers:
        times = [t for t in (windows.get((lg.lead_id, lg.as_of)), decay_due(model, lg)) if t is not None]
        out[lg.lead_id] = max(min(times), lg.as_of + 1) if times else None
    return out


def _compile(model: ScoringModel, sources: Sources, targets: Select[Any], dialect: str) -> Select[Any]:
    query = compile_changes(model, sources, targets)
    assert query is not None  # callers ask only for models with engagement rules
    return query


def _window_changes(
    conn: Connection, model: ScoringModel, sources: Sources, pairs: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    if not model.engagement or not pairs:
        return {}
    dialect = conn.dialect.name
    out: dict[tuple[int, int], int] = {}
    for start in range(0, len(pairs), POINTS_CHUNK):
        chunk = pairs[start : start + POINTS_CHUNK]
        if dialect in BOUND_DIALECTS:
            rows = conn.execute(
                bound_statement(model, sources, dialect, _compile), target_params(dialect, chunk)
            )
        else:
            rows = conn.execute(_compile(model, sources, points(chunk), dialect))
        for row in rows.mappings():
            at = next_change(model, row)
            if at is not None:
                out[(int(row["lead_id"]), int(row["as_of"]))] = at
    return out
