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

from sqlalchemy import Connection, select

from leadscore.errors import InputError, LeadscoreError, Problem
from leadscore.lifecycle import segments
from leadscore.lifecycle.actions import Effects
from leadscore.lifecycle.assignment import Assigned, has_left
from leadscore.lifecycle.outcomes import too_late, unstorable
from leadscore.lifecycle.sla import sla_due
from leadscore.lifecycle.stages import triggered
from leadscore.model import ScoringModel
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.lifecycle_tables import (
    add_feedback,
    assignment_stage,
    claim_leads,
    current_assignment,
    hand_over,
    move_stage,
    open_assignment,
    set_account_owner,
    start_stages,
    touch_assignment,
)
from leadscore.store.schema import leads, outcomes
from leadscore.store.upsert import insert_ignore
from leadscore.store.users import disabled_emails

OUTCOME_KINDS = ("sql", "opportunity", "won", "lost", "disqualified")


def _minute(at_ms: int) -> str:
    """A stored time in milliseconds as its UTC minute, as a refusal names it."""
    return datetime.fromtimestamp(at_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _day(at_ms: int) -> str:
    """A time in milliseconds as its UTC date (its milliseconds when no date can show it)."""
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=at_ms)).date().isoformat()
    except OverflowError:
        return f"{at_ms} ms"


class TransitionError(LeadscoreError):
    """A sales action or outcome that the lead's stage has no transition for."""


class MovedMeanwhile(TransitionError):
    """A decision taken on a page that showed the lead in a stay it has left since (another seller or
    manager decided first, or the runner moved it), or a reassignment taken on a holder the lead's
    assignment has left since (another manager reassigned it first): taking it would undo a newer action
    unseen."""


Stay = tuple[str, int]  # (stage, entered_ms) of a lead's stage row: one stay in a stage


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
    seen: Stay | None = None,
) -> Move:
    """Take the lead's transition on ``trigger`` (locking its stage row); raise if ``required`` and none.
    ``seen``: the stay the decision was taken on (a page's); raise ``MovedMeanwhile`` if the lead left it."""
    lifecycle = _lifecycle(model)
    start_stages(conn, lifecycle.initial, now_ms)
    rows = claim_leads(conn, [lead_id])
    if not rows:
        if required:
            raise TransitionError(f"lead {lead_id} has no stage yet (it has not been scored)")
        return Move(lead_id, "", None, None)
    stage = rows[0]["stage"]
    if seen is not None and seen != (stage, rows[0]["entered_ms"]):
        names = {s.id: s.name for s in lifecycle.stages}
        since = _minute(int(rows[0]["entered_ms"]))
        raise MovedMeanwhile(
            f"lead {lead_id} moved since this page was loaded: it is in {names.get(stage, stage)} since "
            f"{since} UTC, not in {names.get(seen[0], seen[0])[:80]} as the page showed, so nothing was "
            "done; reload the page to see what happened and decide again"
        )
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
    seen: Stay | None = None,
) -> Move:
    """Record a seller's accept or reject of a lead and move its stage accordingly. ``seen``: the stay the
    seller saw the lead in (the page's stage and its entry time); the decision is refused
    (``MovedMeanwhile``) when the lead has left it, so that a page loaded before someone else's decision
    cannot overturn that decision."""
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
            seen=seen,
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
        # the assignment decided on, not one the move opened (accepted into SQL, an assignment stage too)
        touch_assignment(conn, lead_id, at_ms, before_move=move.move_id)
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
        if kind == "sql" and move.move_id is not None:
            # an SQL that moved the lead is the decision on its assignment; one that moved nothing (a CRM
            # reporting a lead already in SQL) decides nothing about the assignment it waits in
            touch_assignment(conn, lead_id, at_ms, before_move=move.move_id)
    return True, move


@dataclass(frozen=True)
class Reassigned:
    lead_id: int
    assignment_id: int
    previous: str
    seller: str
    team: str
    due_ms: int | None


def reassign(
    store: Store,
    model: ScoringModel,
    lead_id: int,
    seller_id: str,
    *,
    by: str,
    settings: Settings,
    now_ms: int,
    seen_seller: str | None = None,
) -> Reassigned:
    """Give a lead's open assignment (no feedback yet, still in the stage it was assigned in) to another
    seller of the model's teams, in one transaction: their SLA clock starts now, they are notified and the
    stage's ``assigned`` actions run as for a first assignment, the account's owner in that team follows
    (with ``sticky_accounts``, where the previous seller owned it), and the audit log records who moved it.

    ``seen_seller``: the seller the caller saw holding it (a page's, a request's ``from``); None: the one
    holding it when the call begins. When another holds it by the time the lead is locked (a manager
    reassigned it meanwhile), nothing is done (``MovedMeanwhile``): of two managers reassigning the lead at
    once, the first one's stands and the second, decided on a holder who has it no more, is refused, as a
    desk decision on a stay the lead has left is, and only the standing assignment's seller is notified."""
    lifecycle = _lifecycle(model)
    for field, given in (("by", by), ("from", seen_seller)):
        if given is not None and "\x00" in given:
            raise InputError(Problem("has a NUL character (\\u0000)", field=field))
    found = lifecycle.seller(seller_id)
    if found is None:
        known = ", ".join(s.id for t in lifecycle.teams for s in t.sellers) or "none"
        raise InputError(Problem(f"no seller {seller_id[:80]!r} in the model's teams (sellers: {known})",
                                 field="seller"))  # fmt: skip
    team, seller = found
    if seen_seller is None:
        with store.connect() as conn:
            held = current_assignment(conn, lead_id)
        seen_seller = None if held is None else str(held["seller"])
    with store.begin() as conn:
        if has_left(seller, disabled_emails(conn)):
            raise InputError(
                Problem(f"{seller.id} has left (their dashboard user is disabled)", field="seller")
            )
        claim_leads(conn, [lead_id])  # the lead's stage row: no stage move meanwhile (the runner waits)
        current = open_assignment(conn, lead_id)
        if current is None:
            raise TransitionError(
                f"lead {lead_id} has no open assignment (none, or already acted on or moved on)"
            )
        stage = assignment_stage(conn, int(current["stage_move_id"])) or ""
        previous = str(current["seller"])
        if seen_seller is not None and previous != seen_seller:
            raise MovedMeanwhile(
                f"lead {lead_id} was reassigned meanwhile: it is {previous}'s since "
                f"{_minute(int(current['at_ms']))} UTC, not {seen_seller[:80]}'s as the caller saw, so "
                "nothing was done; reload to see who holds it and decide again"
            )
        if previous == seller.id:
            raise InputError(Problem(f"lead {lead_id} is already assigned to {seller.id}", field="seller"))
        rules = lifecycle.assignment
        due = sla_due(lifecycle, stage, team.id, now_ms)
        hand_over(conn, int(current["id"]), team.id, seller.id, now_ms, due)
        account_id = conn.execute(select(leads.c.account_id).where(leads.c.id == lead_id)).scalar()
        if rules is not None and rules.sticky_accounts and account_id is not None:
            # only where the previous seller owned the account in that team (a concurrent owner stands)
            set_account_owner(conn, int(account_id), seller.id, team.id, now_ms, replacing=previous)
        audit(conn, now_ms, by, "lead.reassign", f"lead:{lead_id}", previous=previous, seller=seller.id,
              team=team.id, assignment=int(current["id"]))  # fmt: skip
        a = Assigned(int(current["id"]), team.id, seller.id, "reassigned", due)
        Effects(conn, model, lead_id, settings, now_ms).reassigned(a, stage, previous)
    return Reassigned(lead_id, a.id, previous, seller.id, team.id, due)
