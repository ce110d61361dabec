"""The lifecycle replayed over a score history: the moves the runner would have made for one lead, given
its scores at a series of times. The backtest counts MQLs with it, so it counts what the runner does.

The decisions are the runner's own (``stages.moves`` over ``gates.holds``): fit grade, level, band,
attributes, hysteresis, ``new_activity``, chains of moves. Between two observations, inactivity
(``inactive_for``) is tried at the moment it starts to hold, on the lead's last observed facts, as the
runner's timer would. Sales actions and outcomes (``accepted``, ``rejected``, ``won`` ...) are not
replayed: they answered the MQLs of the model that was active then, not those of the replayed one.

**The MQL stage** is the stage leads are assigned to sales in (``assignment.stage``; the first of
``assignment.stages``), else the stage with id ``mql``. A model without a lifecycle is replayed as ``lead → mql`` when the score reaches the
threshold, with no way back: an MQL is then the first time the score reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from leadscore.errors import ModelError
from leadscore.lifecycle.gates import Facts, quiet_until
from leadscore.lifecycle.stages import applies, moves, timed
from leadscore.model import Lifecycle, ScoringModel, Transition

MQL = "mql"


@dataclass(frozen=True)
class Move:
    at_ms: int
    from_stage: str
    to_stage: str
    transition: str


def mql_stage(lifecycle: Lifecycle) -> str:
    """The stage that hands a lead to sales: the (first) assignment stage, else the stage with id ``mql``."""
    if lifecycle.assignment is not None:
        return lifecycle.assignment.stage_ids[0]
    if any(s.id == MQL for s in lifecycle.stages):
        return MQL
    raise ModelError(
        "the lifecycle names no MQL stage to count: give it an 'assignment' stage or a stage with id 'mql'"
    )


PLAIN = Lifecycle.model_validate(
    {
        "initial": "lead",
        "stages": [{"id": "lead", "name": "Lead"}, {"id": MQL, "name": "MQL"}],
        "transitions": [{"id": "qualified", "from": ["lead"], "to": MQL, "when": {"score_at_least": 0}}],
    }
)


def plain_lifecycle(threshold: float) -> Lifecycle:
    """What a model without a lifecycle means by an MQL: the score reaches ``threshold``, for good."""
    return _entering_at(PLAIN, threshold)


def _entering_at(lifecycle: Lifecycle, threshold: float) -> Lifecycle:
    """``lifecycle`` with ``threshold`` as the score of every automatic transition into the MQL stage."""
    stage = mql_stage(lifecycle)
    transitions = tuple(
        t.model_copy(update={"when": t.when.model_copy(update={"score_at_least": threshold})})
        if t.trigger == "score" and t.to == stage
        else t
        for t in lifecycle.transitions
    )
    return lifecycle.model_copy(update={"transitions": transitions})


def mql_threshold(model: ScoringModel) -> float:
    """The model's own MQL threshold: the score the first automatic transition into the MQL stage asks
    for, else (no lifecycle, or no score test on the way in) the hot band."""
    lifecycle = model.lifecycle
    if lifecycle is not None:
        stage = mql_stage(lifecycle)
        for t in lifecycle.transitions:
            if t.trigger == "score" and t.to == stage and t.when.score_at_least is not None:
                return t.when.score_at_least
    return model.scale.bands.hot


def with_threshold(model: ScoringModel, threshold: float | None) -> Lifecycle:
    """The lifecycle the backtest replays: the model's own, with ``threshold`` (when given) as the
    ``score_at_least`` of every automatic transition into the MQL stage; every other test (grade,
    hysteresis, new activity, the ways out) stays as written."""
    if model.lifecycle is None:
        return plain_lifecycle(model.scale.bands.hot if threshold is None else threshold)
    return model.lifecycle if threshold is None else _entering_at(model.lifecycle, threshold)


def replay_lead(
    lifecycle: Lifecycle,
    begin_ms: int,
    observations: Sequence[Facts],
    attribute_ok: Callable[[Transition], bool],
    until_ms: int,
) -> list[Move]:
    """The moves of a lead that starts in the initial stage at ``begin_ms`` and is evaluated at each
    observation (its facts as of ``scored_ms``; ``entered_ms`` is ignored and kept by the replay)."""
    stage, entered = lifecycle.initial, begin_ms
    timer_ids = {t.id for t in timed(lifecycle)}  # the transitions a timer can take
    out: list[Move] = []

    def evaluate(facts: Facts, now_ms: int) -> None:
        nonlocal stage, entered
        for transition in moves(lifecycle, stage, facts.entering(entered), attribute_ok, now_ms):
            out.append(Move(now_ms, stage, transition.to, transition.id))
            stage, entered = transition.to, now_ms

    def timers(facts: Facts, before_ms: int) -> None:
        """Evaluate at each moment in (the last evaluation, ``before_ms``) an inactivity test begins to hold."""
        after = facts.scored_ms
        while True:
            now = facts.entering(entered)
            due = [quiet_until(t.when, now) for t in lifecycle.transitions
                   if t.id in timer_ids and applies(t, stage)]  # fmt: skip
            pending = sorted(d for d in due if d is not None and after < d < before_ms)
            if not pending:
                return
            after = pending[0]
            evaluate(facts, after)

    last: Facts | None = None
    for facts in observations:
        if last is not None and timer_ids:
            timers(last, facts.scored_ms)
        evaluate(facts, facts.scored_ms)
        last = facts
    if last is not None and timer_ids:
        timers(last, until_ms + 1)
    return out


__all__ = ["Move", "mql_stage", "mql_threshold", "plain_lifecycle", "replay_lead", "with_threshold"]
