"""The lifecycle replayed over a score history: the moves the runner would have made for one lead, given
its scores at a series of times. The backtest counts MQLs with it, so it counts what the runner does.

The decisions are the runner's own (``stages.moves`` over ``gates.holds``): fit grade, level, band,
attributes, hysteresis, ``new_activity``, chains of moves. Between two observations, inactivity
(``inactive_for``) is tried at the moment it starts to hold, on the lead's last observed facts, as the
runner's timer would. Sales actions and outcomes (``accepted``, ``rejected``, ``won`` ...) are not
replayed: they answered the MQLs of the model that was active then, not those of the replayed one.

**The MQL stage** is the stage leads are assigned to sales in (``assignment.stage``; the first of
``assignment.stages``; a named score's own: ``mql_stage``, ``for_score``), else the stage with id ``mql``. A model without a lifecycle is replayed as ``lead → mql`` when the score reaches the
threshold, with no way back: an MQL is then the first time the score reaches it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from leadscore.errors import ModelError
from leadscore.lifecycle.gates import Facts, quiet_until
from leadscore.lifecycle.score_stages import ScoreView, owners, tests_a_score
from leadscore.lifecycle.stages import applies, moves, timed
from leadscore.model import Lifecycle, ScoringModel, Transition

MQL = "mql"


@dataclass(frozen=True)
class Move:
    at_ms: int
    from_stage: str
    to_stage: str
    transition: str


def mql_stage(lifecycle: Lifecycle, score: str | None = None, primary: str | None = None) -> str:
    """The stage that hands a lead to sales: the (first) assignment stage, else the stage with id ``mql``.

    With ``score`` (and the ``primary`` score's name) in a lifecycle whose gates name scores: that score's
    team's, the first assignment stage the score owns alone, else the first one of its view
    (``score_stages.ScoreView``: a shared hand-off stage); one score's MQL is not another's."""
    if lifecycle.assignment is not None:
        ids = lifecycle.assignment.stage_ids
        if score is None:
            return ids[0]
        view = ScoreView.of(lifecycle, score, primary or score)
        found = [s for s in ids if s in view.own] or [s for s in ids if s not in view.others]
        if not found:
            raise ModelError(
                f"no assignment stage of the lifecycle is score {score!r}'s: each of "
                f"{', '.join(ids)} is entered on another score's gate"
            )
        return found[0]
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


def for_score(model: ScoringModel, score: str, primary: str, lifecycle: Lifecycle | None) -> ScoringModel:
    """``model`` (a version of score ``score``) with the lifecycle its backtest replays, as score
    ``score``'s team runs it: the model's own, else, for a score other than the primary that the primary's
    ``lifecycle`` gives a stage of its own (a gate names it), that one; else none (the hot band, as for any
    model without a lifecycle). The replay scores one model, so a gate naming ``score`` tests the replayed
    score, a gate naming another score never holds (nor, in the primary's lifecycle, one naming none: it
    tests the primary), and ``score``'s MQL stage (``mql_stage``) comes first among the assignment stages:
    the MQLs counted are that team's. A lifecycle whose gates name no score is replayed as written."""
    own = model.lifecycle
    borrowed = (
        own is None
        and lifecycle is not None
        and score != primary
        and any(score in names for names in owners(lifecycle, primary).values())
    )
    replayed = lifecycle if borrowed else own
    if replayed is None:
        return model
    if not any(t.when.score is not None for t in replayed.transitions) and not borrowed:
        return model
    mql = mql_stage(replayed, score, primary) if replayed.assignment is not None else None

    def gate_of(t: Transition) -> Transition:
        if t.trigger != "score" or not tests_a_score(t.when):
            return t
        tested = t.when.score or (primary if borrowed else score)
        return t.model_copy(
            update={"when": t.when.model_copy(update={"score": None if tested == score else tested})}
        )

    update: dict[str, object] = {"transitions": tuple(gate_of(t) for t in replayed.transitions)}
    if replayed.assignment is not None and mql is not None:
        rest = tuple(s for s in replayed.assignment.stage_ids if s != mql)
        update["assignment"] = replayed.assignment.model_copy(update={"stage": None, "stages": (mql, *rest)})
    return model.model_copy(update={"lifecycle": replayed.model_copy(update=update)})


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

    # a stage no automatic transition leaves is kept for good (no evaluation or timer moves the lead)
    exits = {st.id: any(t.trigger == "score" and applies(t, st.id) for t in lifecycle.transitions)
             for st in lifecycle.stages}  # fmt: skip
    last: Facts | None = None
    for facts in observations:
        if not exits.get(stage, True):
            return out
        if last is not None and timer_ids:
            timers(last, facts.scored_ms)
        evaluate(facts, facts.scored_ms)
        last = facts
    if last is not None and timer_ids:
        timers(last, until_ms + 1)
    return out


__all__ = ["Move", "mql_stage", "mql_threshold", "plain_lifecycle", "replay_lead", "with_threshold"]
