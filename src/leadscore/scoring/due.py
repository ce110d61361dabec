"""When a stored score is next due: the earliest time the passing of time alone may change what a user or
the lifecycle reads from it (``scores.due_ms``, read by the clock in ``scoring/clock.py``).

Two things change a score with no new event:

* **windows**: an event enters (it is dated after the score's as-of time) or leaves a rule's window or a
  threshold's ``within``. Found exactly, by the compiled match expressions (``compile/changes.py``).
* **decay**: decaying points shrink continuously. A rule's decaying total is ``v × 0.5^(dt/h)`` after
  ``dt`` (every event of a rule decays with the rule's half-life; its cap and the group caps, floor and
  clamp after it never move the score by more than the rule's own change), so in ``dt`` the score moves by
  at most ``Σ_rules |v| × (1 − 0.5^(dt/h)) × points per raw point`` (a rule held at its cap moves only
  once its decaying raw total is below the cap). The score is due when that bound first
  reaches a boundary: a band threshold, a score threshold of a lifecycle gate that tests this score
  (``score_below`` lowered by the hysteresis; the lifecycle is the primary model's, and a gate tests the
  score it names, the primary when it names none), a segment's (primary only), or ``TOLERANCE`` score
  points away from the stored score; the engagement score the same way against the level thresholds, the
  accounts' ``engaged_at_least`` (primary only: the lifecycle stores the primary's account scores) and
  the tolerance. With one
  half-life the bound is the exact decay, so the time is exact; otherwise it is a lower bound, and the
  rescoring at that time schedules again from the nearer score.

Between boundaries the stored score is exact at its as-of time and within ``TOLERANCE`` of the decayed
score now; band, grade, level and every lifecycle threshold are those of now, one clock tick late at most.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from sqlalchemy import Connection, Select

from leadscore.compile import Ledger, Sources, half_life_ms
from leadscore.compile.changes import compile_changes, next_changes
from leadscore.compile.composite import compile_models_changes, namespace, namespaced
from leadscore.compile.ledger import columns_of, factors, line_rows
from leadscore.compile.per_model import PerModel
from leadscore.errors import StoreError
from leadscore.model import Lifecycle, ScoringModel
from leadscore.scoring.run import (
    BOUND_DIALECTS,
    POINTS_CHUNK,
    bound_statement,
    execute_kept,
    kept_statement,
    model_of,
    points,
    target_params,
)
from leadscore.store.model_versions import active_version
from leadscore.store.score_names import primary_score

TOLERANCE = 1.0  # score points (and engagement score points) a stored score may drift by decay
PRECISION_MS = 1000.0  # of the search for models with several half-lives or capped decaying rules
OFF_BOUNDARY = 1e-9  # the least move (raw points) that takes a score sitting on a boundary off it


@dataclass(frozen=True)
class Tested:
    """How the lifecycle reads one named score: ``lifecycle`` is the one the runner moves leads by (the
    primary's active model's), ``name`` the score's name and ``primary`` the primary score's."""

    lifecycle: Lifecycle | None
    name: str
    primary: str

    @classmethod
    def alone(cls, model: ScoringModel) -> Tested:
        """``model`` as the primary score, with its own lifecycle (a store of one score)."""
        return cls(model.lifecycle, "", "")

    def tests(self, score: str | None) -> bool:
        """Whether a gate naming ``score`` (None: the primary) tests this score."""
        return (score or self.primary) == self.name


def tested(conn: Connection, names: Sequence[str | None]) -> list[Tested]:
    """How the lifecycle reads each of the named scores (None: the primary), read from the store (the
    primary's active version carries the lifecycle)."""
    try:
        version = active_version(conn)
    except StoreError:  # no primary model active: no lifecycle moves a stage
        primary, lifecycle = primary_score(conn), None
    else:
        primary, lifecycle = version.score_name, model_of(version.yaml, version.label).lifecycle
    return [Tested(lifecycle, name or primary, primary) for name in names]


def score_boundaries(model: ScoringModel, by: Tested) -> tuple[float, ...]:
    """Score values at which something a user or the lifecycle reads of the score changes."""
    out = {model.scale.bands.hot, model.scale.bands.warm}
    lifecycle = by.lifecycle
    if lifecycle is not None:
        for t in lifecycle.transitions:
            if not by.tests(t.when.score):
                continue
            if t.when.score_at_least is not None:
                out.add(t.when.score_at_least)
            if t.when.score_below is not None:
                out.add(t.when.score_below - lifecycle.hysteresis)
        if by.tests(None):  # segments test the primary score
            out.update(s.score_at_least for s in lifecycle.segments if s.score_at_least is not None)
    return tuple(sorted(out))


def engagement_boundaries(model: ScoringModel, by: Tested) -> tuple[float, ...]:
    levels = model.scale.levels
    out = {levels.one, levels.two, levels.three}
    # the lifecycle stores and stages the primary's account scores; another's is computed when read
    if by.lifecycle is not None and by.lifecycle.accounts is not None and by.tests(None):
        out.add(by.lifecycle.accounts.engaged_at_least)
    return tuple(sorted(out))


@dataclass(frozen=True)
class Decaying:
    """A decaying rule's total in raw points: ``raw`` before its cap, ``value`` after (magnitudes)."""

    half_life: float  # ms
    value: float
    raw: float

    def moved(self, dt: float) -> float:
        """The most the rule's total can move in ``dt``: nothing while the decaying raw total is above the
        cap, then the part below it."""
        gone = 1 - 0.5 ** (dt / self.half_life)
        return min(self.value * gone, max(0.0, self.raw * gone - (self.raw - self.value)))


def time_to_move(terms: Sequence[Decaying], distance: float) -> float | None:
    """The least ``dt`` (ms) with ``Σ term.moved(dt) ≥ distance`` (to a second; never later than the
    exact time, so a lower bound); None if never."""
    return _time_to_move([(t.half_life, t.value, t.raw) for t in terms], distance)


Term = tuple[float, float, float]  # a ``Decaying``'s (half_life, value, raw), as ``decay_due`` reads them


def _time_to_move(terms: Sequence[Term], distance: float, later: float | None = None) -> float | None:
    """``time_to_move`` of terms given as tuples. With ``later`` (ms): ``math.inf`` instead when the
    answer is surely at least ``later``, found by one evaluation of the sum (``_surely_later``)."""
    if distance <= 0:
        return 0.0
    total = sum([value for _, value, _ in terms])
    if total <= distance:
        return None
    half_lives = sorted({h for h, _, _ in terms})
    if len(half_lives) == 1 and all(raw == value for _, value, raw in terms):
        return -terms[0][0] * math.log2(1 - distance / total)  # exact: one exponential
    moved = _moved(terms, half_lives)
    if later is not None and _surely_later(moved, distance, later):
        return math.inf
    longest = half_lives[-1]
    lo, hi = 0.0, longest
    at_lo, at_hi = 0.0, moved(hi)  # nothing has moved at dt = 0
    while at_hi < distance:
        lo, hi, at_lo = hi, hi * 2, at_hi
        at_hi = moved(hi)
    # The answer is where a bisection of [lo, hi] to PRECISION_MS stops. A false-position search first
    # narrows a certified bracket (moved(below) < distance ≤ moved(above), both evaluated) in a few
    # evaluations; the bisection then evaluates only the midpoints inside it: those outside it take the
    # side that ``moved``, nondecreasing in dt, gives them, so every step and the result are the same.
    below, above = _bracket(moved, distance, (lo, at_lo), (hi, at_hi), longest)
    while hi - lo > PRECISION_MS:
        mid = (lo + hi) / 2
        if mid == below or mid < below * _SURELY_BELOW:
            lo = mid  # moved(mid) ≤ moved(below) < distance
        elif mid == above or mid > above * _SURELY_ABOVE or moved(mid) >= distance:
            hi = mid
        else:
            lo = mid
    return lo


def _surely_later(moved: Callable[[float], float], distance: float, later: float) -> bool:
    """Whether the bisection's answer is surely at least ``later``. It ends at ``lo`` with ``hi − lo ≤
    PRECISION_MS``, ``hi`` at or after a point evaluated to have moved ``distance``; every such point is
    after ``c = (later + 2 × PRECISION_MS) × (1 + 1e-6)`` when ``moved(c) < distance`` (the sum is
    nondecreasing outside ``_SURELY_BELOW``'s margin), so ``lo > later + PRECISION_MS``."""
    if later <= 0:
        return True  # the answer is never negative
    return moved((later + 2 * PRECISION_MS) * (1 + 1e-6)) < distance


# Relative margins within which a midpoint's side is evaluated, not inferred: far wider than the error
# of ``0.5 ** x`` (an ulp or so), below which the evaluated ``moved`` need not be monotone.
_SURELY_BELOW = 1 - 1e-9
_SURELY_ABOVE = 1 + 1e-9
_BRACKET_WIDTH = PRECISION_MS / 8  # the false-position search stops at a bracket this narrow
_BRACKET_STEPS = 12  # or after this many evaluations (the bisection then evaluates the rest)


def _moved(terms: Sequence[Term], half_lives: Sequence[float]) -> Callable[[float], float]:
    """``dt ↦ Σ term.moved(dt)``, the same arithmetic in the same order, with each half-life's
    ``1 − 0.5^(dt/h)`` computed once (``half_lives``: the terms', sorted, each once). An uncapped term
    (``raw == value``) is ``value × gone`` itself: ``min(value × gone, max(0, value × gone − 0))`` is that
    number for the nonnegative ``value × gone``."""
    group = {h: i for i, h in enumerate(half_lives)}
    rows = [(group[h], value, raw, raw - value) for h, value, raw in terms]
    if all(over == 0.0 for _, _, _, over in rows):
        plain = [(k, value) for k, value, _, _ in rows]

        def uncapped(dt: float) -> float:
            gone = [1 - 0.5 ** (dt / h) for h in half_lives]
            return sum([value * gone[k] for k, value in plain])

        return uncapped

    def moved(dt: float) -> float:
        gone = [1 - 0.5 ** (dt / h) for h in half_lives]
        return sum(
            [
                value * gone[k] if over == 0.0 else min(value * gone[k], max(0.0, raw * gone[k] - over))
                for k, value, raw, over in rows
            ]
        )

    return moved


def _bracket(
    moved: Callable[[float], float],
    distance: float,
    start: tuple[float, float],
    end: tuple[float, float],
    longest: float,
) -> tuple[float, float]:
    """A narrow ``(below, above)`` with ``moved(below) < distance ≤ moved(above)`` inside such a bracket
    ``start``, ``end`` (each ``(dt, moved(dt))``), by the Illinois variant of false position."""
    (lo, f_lo), (hi, f_hi) = (start[0], start[1] - distance), (end[0], end[1] - distance)
    side = 0
    for _ in range(_BRACKET_STEPS):
        if hi - lo <= _BRACKET_WIDTH:
            break
        # interpolated in u = 0.5^(dt/H), H the longest half-life, in which a rule of that half-life
        # moves linearly: one term (or several of one half-life) is found in a step or two
        u_lo, u_hi = 0.5 ** (lo / longest), 0.5 ** (hi / longest)
        u = u_hi - f_hi * (u_hi - u_lo) / (f_hi - f_lo)
        x = -longest * math.log2(u) if u > 0 else hi
        if not lo < x < hi:
            x = (lo + hi) / 2
        f = moved(x) - distance
        if f >= 0:
            hi, f_hi = x, f
            if side == 1:
                f_lo /= 2
            side = 1
        else:
            lo, f_lo = x, f
            if side == -1:
                f_hi /= 2
            side = -1
    return lo, hi


def decay_due(
    model: ScoringModel,
    ledger: Ledger,
    tolerance: float = TOLERANCE,
    later: int | None = None,
    by: Tested | None = None,
) -> int | None:
    """The earliest time decay alone may move the ledger's score or engagement score to a boundary
    (``by``: how the lifecycle reads the score; default, as the primary score with the model's own
    lifecycle). With ``later`` (a time, such as the next window change): None also when that time is
    surely not before ``later``, which a caller taking the earlier of the two need not know (one
    evaluation of the decay sum instead of a search)."""
    marks = _marks(model, by or Tested.alone(model))
    return _decay_due(_constants(model), marks, ledger, tolerance, later)


Marks = tuple[tuple[float, ...], tuple[float, ...]]  # the score's and the engagement score's boundaries


def _marks(model: ScoringModel, by: Tested) -> Marks:
    return score_boundaries(model, by), engagement_boundaries(model, by)


def _decay_due(
    constants: Constants, marks: Marks, ledger: Ledger, tolerance: float, later: int | None
) -> int | None:
    half_lives, per_score, per_engagement = constants
    score_marks, engagement_marks = marks
    if not half_lives:
        return None  # no decaying rule
    terms: list[Term] = []
    held: list[float] = []  # engagement points held by the floor or the clamp at the maximum
    # the lines' rows (``line_rows``: a ledger read from a scoring statement builds no ``LedgerLine``)
    for rule_id, section, kind, _, _, line_raw, value, _, _, _, _, _ in line_rows(ledger):
        if section != "engagement":
            continue
        h = half_lives.get(rule_id)
        if h and value:
            raw = abs(line_raw) if line_raw is not None else abs(value)
            terms.append((h, abs(value), max(raw, abs(value))))
        elif kind in ("floor", "clamp"):
            held.append(abs(value))
    if not terms:
        return None
    distances = []
    if per_score > 0:
        s = ledger.score
        distances.append(_distance(s, (*score_marks, s - tolerance, s + tolerance)) / per_score)
    e = ledger.engagement_score
    distances.append(_distance(e, (*engagement_marks, e - tolerance, e + tolerance)) / per_engagement)
    # engagement points held by the floor or the clamp at the maximum move only once the total is back
    # inside [0, max]: the raw total must first cover that headroom
    headroom = sum(held)
    # a score sitting on a boundary is due when decay first moves it off, which a rule held at its cap
    # does only once its raw total is below the cap: not at once (it would be due at every tick until then)
    distance = max(min(distances), OFF_BOUNDARY)
    as_of = ledger.as_of
    dt = _time_to_move(terms, distance + headroom, None if later is None else later - as_of)
    return None if dt is None or dt == math.inf else as_of + math.floor(dt)


Constants = tuple[dict[str, float], float, float]


def _make_constants(model: ScoringModel) -> Constants:
    half_lives = {r.id: half_life_ms(model, r) for r in model.engagement}
    return (
        {rule_id: h for rule_id, h in half_lives.items() if h},
        factors(model)[1],
        100.0 / model.scale.engagement_max,
    )


# What ``decay_due`` reads of a model for every ledger, kept per model object (a batch schedules hundreds
# of ledgers of the same model): the decaying rules' half-lives, score points per raw engagement point, and
# engagement score points per raw point. The boundaries depend on the lifecycle too (``_marks``), found
# once per call.
_constants = PerModel(_make_constants)


def _distance(value: float, boundaries: Iterable[float]) -> float:
    return min([abs(value - b) for b in boundaries])


def schedule(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    ledgers: Sequence[Ledger],
    score_name: str | None = None,
) -> dict[int, int | None]:
    """Each ledger's lead → when its score ``score_name`` (the primary when None), scored by ``model``, is
    next due (None: time alone never changes it), always after the ledger's own as-of time."""
    windows = _window_changes(conn, model, sources, [(lg.lead_id, lg.as_of) for lg in ledgers])
    (by,) = tested(conn, [score_name])
    return _due(model, by, ledgers, windows)


def schedule_models(
    conn: Connection,
    models: Sequence[ScoringModel],
    sources: Sources,
    ledgers: Sequence[Sequence[Ledger]],
    score_names: Sequence[str | None] | None = None,
) -> list[dict[int, int | None]]:
    """``schedule`` for several models' ledgers (``ledgers[i]``: model ``i``'s, of the score
    ``score_names[i]``; the primary's when not given), the window changes of every model found by one
    statement that reads the events once (``compile_models_changes``)."""
    names = list(score_names) if score_names is not None else [None] * len(models)
    if len(models) == 1:
        return [schedule(conn, models[0], sources, ledgers[0], names[0])]
    pairs = sorted({(lg.lead_id, lg.as_of) for part in ledgers for lg in part})
    windows: list[dict[tuple[int, int], int]] = [{} for _ in models]
    spaced = [namespaced(model, namespace(i)) for i, model in enumerate(models)]
    timed = [i for i, model in enumerate(models) if model.engagement]
    dialect = conn.dialect.name
    for start in range(0, len(pairs) if timed else 0, POINTS_CHUNK):
        chunk = pairs[start : start + POINTS_CHUNK]
        if dialect in BOUND_DIALECTS:
            key = (tuple(id(m) for m in models), sources, dialect, "changes")
            query = kept_statement(key, tuple(models), partial(_compile_models, models, sources), dialect)
            rows = execute_kept(conn, query, target_params(dialect, chunk))
        else:
            rows = conn.execute(_compile_models(models, sources, points(chunk)))
        found = columns_of(list(rows.keys()), rows.fetchall())
        points_of = list(zip(map(int, found["lead_id"]), map(int, found["as_of"]), strict=True))
        for i in timed:
            for point, at in zip(points_of, next_changes(spaced[i], found), strict=True):
                if at is not None:
                    windows[i][point] = at
    readers = tested(conn, names)
    return [
        _due(model, by, part, found)
        for model, by, part, found in zip(models, readers, ledgers, windows, strict=True)
    ]


def _compile_models(models: Sequence[ScoringModel], sources: Sources, targets: Select[Any]) -> Select[Any]:
    query = compile_models_changes(models, sources, targets)
    assert query is not None  # called only when a model has engagement rules
    return query


def _due(
    model: ScoringModel, by: Tested, ledgers: Sequence[Ledger], windows: Mapping[tuple[int, int], int]
) -> dict[int, int | None]:
    out: dict[int, int | None] = {}
    constants = _constants(model)
    marks = _marks(model, by)
    for lg in ledgers:
        window = windows.get((lg.lead_id, lg.as_of))
        # the decay bound is searched for only where it may come before the next window change
        times = [t for t in (window, _decay_due(constants, marks, lg, TOLERANCE, window)) if t is not None]
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
            rows = execute_kept(
                conn, bound_statement(model, sources, dialect, _compile), target_params(dialect, chunk)
            )
        else:
            rows = conn.execute(_compile(model, sources, points(chunk), dialect))
        found = columns_of(list(rows.keys()), rows.fetchall())
        points_of = zip(map(int, found["lead_id"]), map(int, found["as_of"]), strict=True)
        for point, at in zip(points_of, next_changes(model, found), strict=True):
            if at is not None:
                out[point] = at
    return out
