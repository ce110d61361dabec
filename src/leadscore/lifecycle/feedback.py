"""Sales feedback (accept → the ``accepted`` transition, reject with a reason → ``rejected``) and
outcomes (opportunity, won, lost, ...) applied to a lead's stage, each in one transaction with the
stage move and the actions it causes.

Feedback is also written to ``outcomes`` for learning: an acceptance as ``sql``, a rejection as
``disqualified`` with the rejection reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from leadscore.errors import InputError, LeadscoreError, Problem
from leadscore.lifecycle import segments
from leadscore.lifecycle.actions import Effects
from leadscore.lifecycle.outcomes import too_late, unstorable
from leadscore.lifecycle.stages import triggered
from leadscore.model import ScoringModel
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import (
    add_feedback,
    claim_leads,
    move_stage,
    start_stages,
    touch_assignment,
)
from leadscore.store.schema import outcomes
from leadscore.store.upsert import insert_ignore

OUTCOME_KINDS = ("sql", "opportunity", "won", "lost", "disqualified")


def _day(at_ms: int) -> str:
    """A time in milliseconds as its UTC date (its milliseconds when no date can show it)."""
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at_ms)).date().isoformat()
    except OverflowError:
        return f"{at_ms} ms"


class TransitionError(LeadscoreError):
    """A sales action or outcome that the lead's stage has no transition for."""


@dataclass(frozen=True)
class Move:
    lead_id: int
    from_stage: str
    to_stage: str | None
    move_id: int | None


def _lifecycle(model: ScoringModel) -> Any:
    if model.lifecycle is None:
        raise TransitionError("the active model has no lifecycle section")
    return model.lifecycle


def apply_trigger(
    conn: Connection,
    model: ScoringModel,
    lead_id: int,
    trigger: str,
    *,
    cause: str,
    cause_ref: str,
    at_ms: int,
    settings: Settings,
    now_ms: int,
    required: bool,
) -> Move:
    """Take the lead's transition on ``trigger`` (locking its stage row); raise if ``required`` and none."""
    lifecycle = _lifecycle(model)
    start_stages(conn, lifecycle.initial, now_ms)
    rows = claim_leads(conn, [lead_id])
    if not rows:
        if required:
            raise TransitionError(f"lead {lead_id} has no stage yet (it has not been scored)")
        return Move(lead_id, "", None, None)
    stage = rows[0]["stage"]
    transition = triggered(lifecycle, stage, trigger)
    if transition is None:
        if required:
            raise TransitionError(
                f"lead {lead_id} is in stage {stage!r}, which has no transition on {trigger!r}"
            )
        return Move(lead_id, stage, None, None)
    move_id = move_stage(
        conn,
        lead_id,
        stage,
        transition.to,
        at_ms=at_ms,
        transition=transition.id,
        cause=cause,
        cause_ref=cause_ref,
        now_ms=now_ms,
    )
    assert move_id is not None  # the row is locked and was read in this transaction
    Effects(conn, model, lead_id, settings, now_ms).moved(move_id, stage, transition.to, transition.id)
    segments.refresh(conn, model, [lead_id], settings, now_ms)
    return Move(lead_id, stage, transition.to, move_id)


def give_feedback(
    store: Store,
    model: ScoringModel,
    lead_id: int,
    decision: str,
    *,
    reason: str | None,
    note: str,
    by: str,
    at_ms: int,
    settings: Settings,
    now_ms: int,
) -> Move:
    """Record a seller's accept or reject of a lead and move its stage accordingly."""
    lifecycle = _lifecycle(model)
    for field, text in (("by", by), ("note", note)):
        if "\x00" in text:  # PostgreSQL refuses it in any text
            raise InputError(Problem("has a NUL character (\\u0000)", field=field))
    if decision not in ("accepted", "rejected"):
        raise InputError(
            Problem(f"decision must be accepted or rejected, not {decision!r}", field="decision")
        )
    late = too_late(at_ms, now_ms)
    if late is not None:
        raise InputError(Problem(f"{_day(at_ms)!r} {late}", field="at"))
    if decision == "rejected" and reason not in lifecycle.rejection_reasons:
        known = ", ".join(lifecycle.rejection_reasons)
        raise InputError(Problem(f"a rejection needs a reason, one of: {known}", field="reason"))
    with store.begin() as conn:
        ref = f"{decision} by {by}" + (f": {reason}" if reason else "") + (f" ({note})" if note else "")
        move = apply_trigger(
            conn,
            model,
            lead_id,
            decision,
            cause="feedback",
            cause_ref=ref[:2000],
            at_ms=at_ms,
            settings=settings,
            now_ms=now_ms,
            required=True,
        )
        add_feedback(
            conn,
            {
                "lead_id": lead_id,
                "decision": decision,
                "reason": reason,
                "note": note,
                "by": by,
                "at_ms": at_ms,
                "stage_from": move.from_stage,
                "recorded_ms": now_ms,
            },
        )
        touch_assignment(conn, lead_id, at_ms)
        kind = "sql" if decision == "accepted" else "disqualified"
        insert_ignore(
            conn,
            outcomes,
            [
                {
                    "lead_id": lead_id,
                    "kind": kind,
                    "at_ms": at_ms,
                    "amount": None,
                    "reason": reason,
                    "source": "feedback",
                    "recorded_ms": now_ms,
                }
            ],
            ["lead_id", "kind", "at_ms"],
        )
    return move


def record_outcome(
    store: Store,
    model: ScoringModel | None,
    lead_id: int,
    kind: str,
    *,
    at_ms: int,
    amount: float | None,
    reason: str | None,
    source: str,
    settings: Settings,
    now_ms: int,
) -> tuple[bool, Move | None]:
    """Store an outcome once (same lead, kind and time: a repeat is ignored) and take the transition it
    triggers, if the lead's stage has one (none without a model: before any is published). Returns
    (stored now, move)."""
    if kind not in OUTCOME_KINDS:
        raise InputError(
            Problem(f"outcome must be one of {', '.join(OUTCOME_KINDS)}, not {kind!r}", field="kind")
        )
    refused = unstorable(at_ms, amount, reason)
    late = too_late(at_ms, now_ms)
    if refused is None and late is not None:
        refused = ("at", late)
    if refused is not None:
        field, why = refused
        shown = {"at": f"{_day(at_ms)!r} ", "amount": f"{amount!r} "}.get(field, "")
        raise InputError(Problem(shown + why, field=field))
    with store.begin() as conn:
        row = {
            "lead_id": lead_id,
            "kind": kind,
            "at_ms": at_ms,
            "amount": amount,
            "reason": reason,
            "source": source,
            "recorded_ms": now_ms,
        }
        if not insert_ignore(conn, outcomes, [row], ["lead_id", "kind", "at_ms"]):
            return False, None
        if model is None or model.lifecycle is None:
            return True, None
        trigger = "accepted" if kind == "sql" else kind
        move = apply_trigger(
            conn,
            model,
            lead_id,
            trigger,
            cause="outcome",
            cause_ref=f"{kind} ({source})" + (f": {reason}" if reason else ""),
            at_ms=at_ms,
            settings=settings,
            now_ms=now_ms,
            required=False,
        )
        if kind == "sql":
            touch_assignment(conn, lead_id, at_ms)
    return True, move
