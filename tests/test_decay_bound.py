"""The decay bound (``scoring.due.time_to_move``) against a plain bisection written from its documented
semantics: the least ``dt`` at which the rules' decay has moved the score by ``distance``, to a second
and never later than that time. The search in ``due`` skips evaluations; its answer must be the same
number, bit for bit."""

from __future__ import annotations

import math
import sys

from hypothesis import example, given
from hypothesis import strategies as st

from leadscore.scoring.due import PRECISION_MS, Decaying, _time_to_move, time_to_move

DAY = 86_400_000.0


def moved(terms: list[Decaying], dt: float) -> float:
    """What the rules' totals have moved after ``dt``: each term's decaying total, held until its raw
    total falls below its cap."""
    return sum(t.moved(dt) for t in terms)


def reference(terms: list[Decaying], distance: float) -> float | None:
    """Bisection of [0, longest half-life, doubled until the crossing is inside] down to a second."""
    if distance <= 0:
        return 0.0
    total = sum(t.value for t in terms)
    if total <= distance:
        return None
    if len({t.half_life for t in terms}) == 1 and all(t.raw == t.value for t in terms):
        return -terms[0].half_life * math.log2(1 - distance / total)
    lo, hi = 0.0, max(t.half_life for t in terms)
    while moved(terms, hi) < distance:
        lo, hi = hi, hi * 2
    while hi - lo > PRECISION_MS:
        mid = (lo + hi) / 2
        if moved(terms, mid) >= distance:
            hi = mid
        else:
            lo = mid
    return lo


@st.composite
def decaying(draw: st.DrawFn) -> Decaying:
    half_life = draw(st.sampled_from([0.5 * DAY, 2 * DAY, 7 * DAY, 30 * DAY]))
    value = draw(st.one_of(st.sampled_from([0.5, 1.0, 5.0, 20.0]), st.floats(1e-3, 500.0)))
    capped = draw(st.booleans())
    raw = value + draw(st.floats(0.0, 1000.0)) if capped else value
    return Decaying(half_life, value, raw)


@given(
    st.lists(decaying(), min_size=1, max_size=6),
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([1e-12, 1e-6, 0.999999, 1.0])),
)
@example([Decaying(10 * DAY, 30.0, 30.0), Decaying(20 * DAY, 20.0, 20.0)], 32.5 / 50)
@example([Decaying(10 * DAY, 10.0, 40.0)], 0.5)
@example([Decaying(0.5 * DAY, 0.5, 0.5)], 1e-8)  # the crossing at 0.62 ms, seen 5e-17 above it (CI)
def test_time_to_move_is_the_plain_bisection(terms: list[Decaying], share: float) -> None:
    distance = share * sum(t.value for t in terms)
    got = time_to_move(terms, distance)
    assert got == reference(terms, distance)
    # ``moved`` is a difference of totals near each term's value: a few units in their last place of error
    # (the closed form of one half-life gives the crossing itself, seen a few ulps either side)
    ulps = 4 * sys.float_info.epsilon * sum(t.value for t in terms)
    if got is not None and got > 0 and not math.isclose(moved(terms, got), distance, abs_tol=ulps):
        # below the crossing, and within a second of it
        assert moved(terms, got) < distance <= moved(terms, got + PRECISION_MS)


def test_two_half_lives_by_hand() -> None:
    # after 20 days: 30 × (1 − ¼) + 20 × (1 − ½) = 32.5, so the answer is the second before 20 days
    terms = [Decaying(10 * DAY, 30.0, 30.0), Decaying(20 * DAY, 20.0, 20.0)]
    got = time_to_move(terms, 32.5)
    assert got is not None and 20 * DAY - PRECISION_MS <= got <= 20 * DAY


@given(
    st.lists(decaying(), min_size=1, max_size=6),
    st.floats(1e-6, 1.0),
    st.one_of(st.floats(0.0, 2.0), st.sampled_from([0.0, 0.999999, 1.0, 1.000001])),
    st.sampled_from([0.0, -1.0, 1.0, 2 * PRECISION_MS, -2 * PRECISION_MS]),
)
@example([Decaying(10 * DAY, 30.0, 30.0), Decaying(20 * DAY, 20.0, 20.0)], 32.5 / 50, 0.5, 0.0)
@example([Decaying(10 * DAY, 10.0, 40.0)], 0.5, 1.0, PRECISION_MS)
def test_a_bound_surely_later_than_a_time_is_not_searched(
    terms: list[Decaying], share: float, where: float, offset: float
) -> None:
    # ``later`` (the next window change) around the answer: the search is skipped only when the answer
    # is surely not before it, and gives the same number otherwise
    distance = share * sum(t.value for t in terms)
    full = reference(terms, distance)
    later = float(math.floor((full if full is not None else 100 * DAY) * where + offset))
    got = _time_to_move([(t.half_life, t.value, t.raw) for t in terms], distance, later)
    if got == math.inf:
        assert full is not None and math.floor(full) >= later
    else:
        assert got == full


def test_a_bound_far_after_a_window_change_is_not_searched() -> None:
    # two half-lives: 32.5 of 50 points have moved after 20 days, so not before a change after 10 days
    terms = [(10 * DAY, 30.0, 30.0), (20 * DAY, 20.0, 20.0)]
    assert _time_to_move(terms, 32.5, 10 * DAY) == math.inf
    got = _time_to_move(terms, 32.5, 30 * DAY)
    assert got is not None and 20 * DAY - PRECISION_MS <= got <= 20 * DAY
