"""Lifecycle API: a lead's stage (as of any time), sales feedback, outcomes, segments, assignments, and
the unsubscribe link of nurture mails (opening it asks to confirm; the confirmation, or a mail program's
one-click POST, unsubscribes).

Tokens: reading (stages, segments, assignments) needs a read or admin token. Feedback and outcomes
change stages and trigger notifications, so they need an admin token until roles arrive (issue 8).
The unsubscribe link is public; its token is an HMAC of the address.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import Connection

from leadscore.api.deps import AdminState, ReaderState
from leadscore.api.errors import ApiError
from leadscore.api.openapi import refusals
from leadscore.api.paging import PAGE_ROWS, Limit, Offset, offset_page, page_at
from leadscore.api.state import AppState, state_of
from leadscore.errors import InputError, NotFoundError
from leadscore.lifecycle import segments
from leadscore.lifecycle.actions import iso
from leadscore.lifecycle.context import unsubscribe_token
from leadscore.lifecycle.feedback import (
    OUTCOME_KINDS,
    TransitionError,
    give_feedback,
    reassign,
    record_outcome,
)
from leadscore.lifecycle.outcomes import parse_time
from leadscore.model import ScoringModel
from leadscore.scoring.pipeline import current_model
from leadscore.scoring.run import now_ms
from leadscore.store.lifecycle_tables import (
    count_assignments,
    current_assignment,
    list_assignments,
    segment_sizes,
    stage_as_of,
    stage_history_rows,
)
from leadscore.store.outbox import outbox_rows
from leadscore.store.people import resolve_lead_ref
from leadscore.store.suppressions import suppress

router = APIRouter(prefix="/v1", tags=["lifecycle"])


def lead_ref(conn: Connection, ref: str) -> int:
    return resolve_lead_ref(conn, ref)


def lifecycle_model(state: AppState) -> ScoringModel:
    active = current_model(state.store)
    if active is None or active.model.lifecycle is None:
        raise ApiError(409, "the active model has no lifecycle section")
    return active.model


def _time(text: str | None, field: str) -> int | None:
    if text is None:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise ApiError(
            422, "invalid request", [{"field": field, "message": "not an ISO date or date-time"}]
        ) from None


SENT = ("key", "channel", "action", "target", "status", "attempts", "created_ms", "sent_ms")


@router.get(
    "/leads/{ref}/stage",
    summary="A lead's stage now or as of a time, a page of its stage history and of its sends",
    responses=refusals(404),
)
def get_stage(
    state: ReaderState,
    ref: str,
    as_of: Annotated[str | None, Query()] = None,
    history_limit: Limit = PAGE_ROWS,
    history_offset: Offset = 0,
    notifications_limit: Limit = PAGE_ROWS,
    notifications_offset: Offset = 0,
) -> dict[str, Any]:
    """The stage, and a page of each list (``api.paging``: a write key's events can move a lead back and
    forth across a stage's line any number of times): the newest first from the offset, each page oldest
    first, as the whole lists were before they had pages."""
    at = _time(as_of, "as_of") or now_ms()
    with state.store.connect() as conn:
        lead_id = lead_ref(conn, ref)
        row = stage_as_of(conn, lead_id, at)
        history, moves = stage_history_rows(conn, lead_id, history_limit, history_offset)
        assignment = current_assignment(conn, lead_id)
        outbox, sent = outbox_rows(conn, lead_id, notifications_limit, notifications_offset)
    sends = [{k: o[k] for k in SENT} for o in outbox]
    return {
        "ok": True,
        "lead_id": lead_id,
        "as_of_ms": at,
        "stage": row["to_stage"] if row else None,
        "since_ms": row["at_ms"] if row else None,
        "history": history,
        "history_paging": page_at(len(history), moves, history_limit, history_offset),
        "assignment": assignment,
        "notifications": sends,
        "notifications_paging": page_at(len(sends), sent, notifications_limit, notifications_offset),
    }


@contextmanager
def sales_action() -> Iterator[None]:
    """A sales action's refusals as answers: 409 when the lead's stage allows none, 422 naming the field."""
    try:
        yield
    except TransitionError as exc:
        raise ApiError(409, str(exc)) from None
    except InputError as exc:
        raise ApiError(
            422, "invalid request", [{"field": exc.problem.field, "message": exc.problem.message}]
        ) from None


class FeedbackIn(BaseModel):
    decision: Literal["accept", "reject"]
    reason: str | None = Field(default=None, max_length=63)
    note: str = Field(default="", max_length=2000)
    by: str = Field(min_length=1, max_length=200)
    at: str | None = None


@router.post(
    "/leads/{ref}/feedback",
    summary="Sales accepts (→ SQL) or rejects (with a reason) a lead",
    responses=refusals(404, 409),
)
def post_feedback(state: AdminState, ref: str, body: FeedbackIn) -> dict[str, Any]:
    model = lifecycle_model(state)
    stamp = now_ms()
    with state.store.connect() as conn:
        lead_id = lead_ref(conn, ref)
    with sales_action():
        move = give_feedback(
            state.store,
            model,
            lead_id,
            "accepted" if body.decision == "accept" else "rejected",
            reason=body.reason,
            note=body.note,
            by=body.by,
            at_ms=_time(body.at, "at") or stamp,
            settings=state.settings,
            now_ms=stamp,
        )
    return {"ok": True, "lead_id": lead_id, "from": move.from_stage, "to": move.to_stage}


class ReassignIn(BaseModel):
    seller: str = Field(min_length=1, max_length=63, description="a seller's id in the model's teams")
    by: str = Field(min_length=1, max_length=200, description="who moves it, for the audit log")
    seen: str | None = Field(
        default=None,
        alias="from",
        min_length=1,
        max_length=63,
        description="the seller the caller saw holding it: a 409 if another manager reassigned it "
        "meanwhile (none: the one holding it when the request arrives)",
    )


@router.post(
    "/leads/{ref}/assignment",
    summary="Give a lead's open assignment to another seller (their SLA starts now; they are notified)",
    responses=refusals(404, 409),
)
def post_reassignment(state: AdminState, ref: str, body: ReassignIn) -> dict[str, Any]:
    model = lifecycle_model(state)
    with state.store.connect() as conn:
        lead_id = lead_ref(conn, ref)
    with sales_action():
        done = reassign(
            state.store,
            model,
            lead_id,
            body.seller,
            by=body.by,
            settings=state.settings,
            now_ms=now_ms(),
            seen_seller=body.seen,
        )
    due = None if done.due_ms is None else iso(done.due_ms)
    return {"ok": True, "lead_id": lead_id, "from": done.previous, "seller": done.seller, "team": done.team,
            "due_at": due}  # fmt: skip


class OutcomeIn(BaseModel):
    lead: str = Field(min_length=1, max_length=320, description="lead id, e-mail or user id")
    kind: Literal["sql", "opportunity", "won", "lost", "disqualified"]
    at: str
    amount: float | None = Field(default=None, ge=0)
    reason: str | None = Field(default=None, max_length=2000)


class OutcomesIn(BaseModel):
    outcomes: list[OutcomeIn] = Field(min_length=1, max_length=1000)


@router.post(
    "/outcomes",
    summary="Record outcomes (opportunity, won, lost, ...); per-item results",
    responses=refusals(409),
)
def post_outcomes(state: AdminState, body: OutcomesIn) -> dict[str, Any]:
    active = current_model(state.store)
    if active is None:
        raise ApiError(409, "no active model")
    settings, stamp = state.settings, now_ms()
    results: list[dict[str, Any]] = []
    for index, item in enumerate(body.outcomes):
        try:
            at = parse_time(item.at)
            with state.store.connect() as conn:
                lead_id = lead_ref(conn, item.lead)
            stored, move = record_outcome(
                state.store,
                active.model,
                lead_id,
                item.kind,
                at_ms=at,
                amount=item.amount,
                reason=item.reason,
                source="api",
                settings=settings,
                now_ms=stamp,
            )
        except (ValueError, NotFoundError) as exc:
            results.append({"index": index, "ok": False, "message": str(exc)})
            continue
        except InputError as exc:
            results.append({"index": index, "ok": False, "message": str(exc.problem)})
            continue
        results.append(
            {
                "index": index,
                "ok": True,
                "lead_id": lead_id,
                "duplicate": not stored,
                "stage": None if move is None else move.to_stage or move.from_stage,
                "moved": bool(move and move.to_stage),
            }
        )
    return {"ok": all(r["ok"] for r in results), "kinds": list(OUTCOME_KINDS), "results": results}


@router.get(
    "/segments", summary="Segments declared by the model, with their current sizes", responses=refusals(409)
)
def get_segments(state: ReaderState) -> dict[str, Any]:
    model = lifecycle_model(state)
    with state.store.connect() as conn:
        sizes = segment_sizes(conn)
    assert model.lifecycle is not None
    return {
        "ok": True,
        "segments": [
            {"id": s.id, "name": s.name, "description": s.description, "members": sizes.get(s.id, 0)}
            for s in model.lifecycle.segments
        ],
    }


@router.get(
    "/segments/{segment_id}/members",
    summary="A segment's members (JSON, or CSV export)",
    responses={
        200: {"content": {"application/json": {}, "text/csv": {"schema": {"type": "string"}}}},
        **refusals(404, 409),
    },
)
def get_members(
    state: ReaderState, segment_id: str, format: Annotated[Literal["json", "csv"], Query()] = "json"
) -> Any:
    model = lifecycle_model(state)
    assert model.lifecycle is not None
    segment = next((s for s in model.lifecycle.segments if s.id == segment_id), None)
    if segment is None:
        raise NotFoundError(f"no segment {segment_id!r}")
    body = segments.stream_members(state.store, segment, format)
    if format == "csv":
        headers = {"Content-Disposition": f'attachment; filename="{segment_id}.csv"'}
        return StreamingResponse(body, media_type="text/csv; charset=utf-8", headers=headers)
    return StreamingResponse(body, media_type="application/json")


OpenOnly = Annotated[
    bool,
    Query(description="only those a seller still has to act on: no feedback yet, lead still in its stage"),
]


@router.get("/assignments", summary="Assignments (lead, team, seller, SLA due, touched, escalated)")
def get_assignments(
    state: ReaderState, open: OpenOnly = False, limit: Limit = PAGE_ROWS, offset: Offset = 0
) -> dict[str, Any]:
    """A page of the assignments, in the order made (``api.paging``)."""
    with state.store.connect() as conn:
        rows = list_assignments(conn, open_only=open, limit=limit, offset=offset)
        total = count_assignments(conn, open_only=open)
    return offset_page("assignments", rows, total, limit, offset)


def _signed(request: Request, email: str | None, token: str | None) -> str:
    """The address of a valid unsubscribe link; refused (403) without the signed token it was mailed with."""
    state = state_of(request)
    valid = unsubscribe_token(state.settings.webhook.secret, email or "")
    if not email or not token or not hmac.compare_digest(valid.encode(), token.encode()):
        raise ApiError(403, "this unsubscribe link is not valid")
    return email


def _unsubscribe(request: Request, email: str | None, token: str | None) -> PlainTextResponse:
    """Suppress the address of a valid link."""
    email = _signed(request, email, token)
    state = state_of(request)
    with state.store.begin() as conn:
        suppress(conn, email, "unsubscribe link", now_ms(), state.settings.suppression_pepper)
    return PlainTextResponse(f"{email} will get no more mail from us.")


Email = Annotated[str | None, Query(max_length=320)]
Token = Annotated[str | None, Query(max_length=100)]


@router.get(
    "/unsubscribe",
    summary="Unsubscribe link of nurture mails (signed): a page confirming by POST",
    response_class=HTMLResponse,
    responses=refusals(403),
)
def unsubscribe_link(request: Request, email: Email = None, token: Token = None) -> HTMLResponse:
    """A page asking to confirm, whose button posts to the same link: opening it changes nothing, since
    mail filters and link scanners open every link of a mail (a GET that unsubscribed let them
    unsubscribe people who never clicked). Mail programs unsubscribe in one click by POST (RFC 8058)."""
    address = html.escape(_signed(request, email, token))
    action = html.escape("?" + request.url.query, quote=True)  # this link, wherever the server is reached
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>Unsubscribe</title>"
        '<meta name=viewport content="width=device-width"></head><body>'
        f"<p>Stop all mail to <b>{address}</b>?</p>"
        f'<form method=post action="{action}"><button type=submit>Unsubscribe</button></form>'
        "</body></html>"
    )


@router.post(
    "/unsubscribe",
    summary="One-click unsubscribe (RFC 8058), signed like the link",
    response_class=PlainTextResponse,
    responses=refusals(403),
)
def unsubscribe_one_click(request: Request, email: Email = None, token: Token = None) -> PlainTextResponse:
    return _unsubscribe(request, email, token)
