"""The stage machine: which transition a lead takes from its stage, automatically (score, grade, level,
band, attributes, inactivity) or on a sales action or outcome. Transitions are tried in the order the
model declares them; the first that applies wins.

Pure functions of the lifecycle, the lead's stage and its facts: the runner applies what ``moves``
decides to the database, and the backtest (``lifecycle.replay``) applies it to a replayed score history,
so both count the same MQLs."""

from __future__ import annotations

from collections.abc import Callable

from leadscore.lifecycle.gates import Facts, holds
from leadscore.model import Lifecycle, Transition


def decision_stages(lifecycle: Lifecycle | None) -> frozenset[str] | None:
    """The stages where a sales decision is one on an MQL: those an ``accepted`` transition leaves (the
    hand-off). A rejection given after the lead was accepted (from SQL) is a later disqualification, not a
    second decision on the MQL. None (every stage) when an accepted transition leaves from any stage
    (``'*'``) or there is no lifecycle to tell."""
    if lifecycle is None:
        return None
    found: set[str] = set()
    for t in lifecycle.transitions:
        if t.trigger == "accepted":
            if "*" in t.from_:
                return None
            found.update(s for s in t.from_ if s != t.to)
    return frozenset(found)


def applies(transition: Transition, stage: str) -> bool:
    return transition.to != stage and ("*" in transition.from_ or stage in transition.from_)


def automatic(
    lifecycle: Lifecycle, stage: str, facts: Facts, attribute_ok: Callable[[Transition], bool], now_ms: int
) -> Transition | None:
    """The first automatic transition out of ``stage`` whose gate holds, or None (the lead stays)."""
    for transition in lifecycle.transitions:
        if transition.trigger != "score" or not applies(transition, stage):
            continue
        if holds(
            transition.when,
            facts,
            hysteresis=lifecycle.hysteresis,
            attribute_ok=attribute_ok(transition),
            now_ms=now_ms,
        ):
            return transition
    return None


def moves(
    lifecycle: Lifecycle, stage: str, facts: Facts, attribute_ok: Callable[[Transition], bool], now_ms: int
) -> list[Transition]:
    """The chain of automatic transitions one evaluation at ``now_ms`` takes from ``stage`` (empty: the lead
    stays). Each move enters its stage at ``now_ms`` and the new stage is tried again; a chain never takes
    more moves than there are stages, so it cannot loop."""
    chain: list[Transition] = []
    for _ in range(len(lifecycle.stages)):
        transition = automatic(lifecycle, stage, facts, attribute_ok, now_ms)
        if transition is None:
            break
        chain.append(transition)
        stage, facts = transition.to, facts.entering(now_ms)
    return chain


def triggered(lifecycle: Lifecycle, stage: str, trigger: str) -> Transition | None:
    """The transition a sales action or outcome (``accepted``, ``won``, ...) takes from ``stage``."""
    return next((t for t in lifecycle.transitions if t.trigger == trigger and applies(t, stage)), None)


def timed(lifecycle: Lifecycle) -> list[Transition]:
    """Automatic transitions that can become true by time passing alone (inactivity)."""
    return [t for t in lifecycle.transitions if t.trigger == "score" and t.when.inactive_for is not None]
