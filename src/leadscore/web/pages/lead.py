"""Lead: attributes, company, score with the full ledger, the journey chart, the score history, the
lifecycle stage with its history, owner and notes, and the seller's accept / reject."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Connection

from leadscore.api.state import state_of
from leadscore.errors import InputError
from leadscore.lifecycle.feedback import TransitionError, give_feedback
from leadscore.model.rules import RULE_ID
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import model_of, now_ms
from leadscore.store import Store
from leadscore.store.people import find_lead, lead_for_key, merged_key
from leadscore.store.schema import fits_id
from leadscore.web.data import lead as lead_data
from leadscore.web.data import product as product_data
from leadscore.web.data.desk import may_act_on, reject_refused_on
from leadscore.web.data.paging import page_link
from leadscore.web.data.stages import StageView, stage_view
from leadscore.web.render import page
from leadscore.web.security import FeedbackGiver, LeadsReader, Viewer, WebDenied, safe_next

router = APIRouter()
HIDDEN_ATTRIBUTES = frozenset({"ip"})  # never shown in full in the UI (issue 8)


def _view(conn: Connection, store: Store, lead_id: int, history_page: int = 1) -> lead_data.LeadView:
    view = lead_data.load(conn, store.sources(), lead_id, history_page) if fits_id(lead_id) else None
    if view is None:
        raise WebDenied(404, f"There is no lead {lead_id}.")
    return view


def _lead_page(
    request: Request,
    viewer: Viewer,
    lead_id: int,
    status: int = 200,
    history_page: int = 1,
    stages_page: int = 1,
    **extra: Any,
) -> HTMLResponse:
    store = state_of(request).store
    with store.connect() as conn:
        view = _view(conn, store, lead_id, history_page)
        journey = lead_data.journey(conn, store.sources(), view)
        active = active_model(conn)
        lifecycle = active.model.lifecycle if active is not None else None
        stages = stage_view(conn, lifecycle, lead_id, stages_page) if lifecycle is not None else None
        acts = may_act_on(conn, lifecycle, lead_id, viewer.email, viewer.role)
        refused = None
        if stages is not None and stages.can_reject:
            refused = reject_refused_on(conn, lifecycle, lead_id, viewer.email, viewer.role)
            stages.can_reject = refused is None
        now = now_ms()
        product = product_data.usage(conn, [lead_id], now)[lead_id]
    # the product rules of the model that scored the lead, read from its ledger (as the ledger shows it)
    scored_by = model_of(view.version.yaml, view.version.label) if view.version is not None else None
    attributes = sorted(
        (k, v) for k, v in (view.lead.get("attributes") or {}).items() if k not in HIDDEN_ATTRIBUTES
    )
    return page(
        request,
        viewer,
        "lead.html",
        status=status,
        view=view,
        attributes=attributes,
        journey=journey,
        moves=[p for p in journey["points"] if p["moved"]],
        stages=stages,
        may_act=acts,
        reject_refused=refused,
        now=now,
        product=product,
        product_lines=product_data.product_lines(scored_by, view.ledger),
        history_link=lambda n: _link(lead_id, view, stages, history_page=n),
        stages_link=lambda n: _link(lead_id, view, stages, stages_page=n),
        **extra,
    )


def _link(lead_id: int, view: lead_data.LeadView, stages: StageView | None, **change: int) -> str:
    shown = {"history_page": view.history_at.page, "stages_page": stages.history_at.page if stages else 1}
    return page_link(f"/leads/{lead_id}", {}, shown, **change)


@router.get("/leads/{lead_id}", response_class=HTMLResponse, include_in_schema=False)
def lead_page(
    request: Request,
    viewer: LeadsReader,
    lead_id: int,
    done: Annotated[str, Query(pattern="^(|accepted|rejected)$")] = "",
    history_page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    stages_page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    kept = _merged_into(request, lead_id)
    if kept is not None:  # merged into another lead by an alias: its page is that lead's
        return RedirectResponse(f"/leads/{kept}", status_code=301)
    return _lead_page(request, viewer, lead_id, done=done, history_page=history_page, stages_page=stages_page)


@router.get("/leads/{lead_id}/lines/{rule_id}", response_class=HTMLResponse, include_in_schema=False)
def line_events_page(
    request: Request,
    viewer: LeadsReader,
    lead_id: int,
    rule_id: Annotated[str, Path(pattern=RULE_ID, max_length=100)],
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    """Every event behind one engagement line of the lead's score, a page at a time (the lead page lists
    the newest ``EVENTS_SHOWN`` and links here for the rest). A lead merged away by an alias: the same
    page of the lead it was merged into, as its lead page redirects."""
    kept = _merged_into(request, lead_id)
    if kept is not None:
        return RedirectResponse(f"/leads/{kept}/lines/{rule_id}?offset={offset}", status_code=301)
    store = state_of(request).store
    with store.connect() as conn:
        view = _view(conn, store, lead_id)
        try:
            line = lead_data.line_events(conn, store.sources(), lead_id, rule_id, offset)
        except KeyError:
            raise WebDenied(
                404, f"The model that scored this lead has no engagement rule {rule_id!r}."
            ) from None
    if line is None:
        raise WebDenied(404, "This lead has no score yet.")
    return page(request, viewer, "lead_line.html", view=view, line=line)


def _merged_into(request: Request, lead_id: int) -> int | None:
    """The lead that lead ``lead_id`` was merged into, when it is gone (``people.merged_key``)."""
    if not fits_id(lead_id):
        return None
    with state_of(request).store.connect() as conn:
        if find_lead(conn, lead_id=lead_id) is not None:
            return None
        return lead_for_key(conn, merged_key(lead_id))


@router.post("/leads/{lead_id}/feedback", include_in_schema=False)
def lead_feedback(
    request: Request,
    viewer: FeedbackGiver,
    lead_id: int,
    decision: Annotated[str, Form(pattern="^(accepted|rejected)$")],
    reason: Annotated[str, Form(max_length=63)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    next: Annotated[str, Form(max_length=2000)] = "",
    stage: Annotated[str, Form(max_length=63)] = "",
    since: Annotated[int | None, Form(ge=0, le=2**63 - 1)] = None,
) -> Response:
    """A seller accepts or rejects (with a reason) the lead: its stage moves, the feedback is stored.
    ``stage`` and ``since``: the stay the page showed the lead in (its forms send them); a lead that left it
    meanwhile is not moved (409: someone else decided first, or the runner moved it)."""
    store = state_of(request).store
    with store.connect() as conn:
        _view(conn, store, lead_id)
        active = active_model(conn)
        if active is None:
            raise WebDenied(409, "No model is active, so the lead has no stage to move.")
        if not may_act_on(conn, active.model.lifecycle, lead_id, viewer.email, viewer.role):
            raise WebDenied(
                403, "This lead is assigned to another seller; only they or their manager may act on it."
            )
        refused = None
        if decision == "rejected":
            refused = reject_refused_on(conn, active.model.lifecycle, lead_id, viewer.email, viewer.role)
    if refused is not None:
        return _lead_page(request, viewer, lead_id, status=409, feedback_error=f"Not rejected: {refused}.")
    stamp = now_ms()
    try:
        give_feedback(
            store,
            active.model,
            lead_id,
            decision,
            reason=reason or None,
            note=note.strip(),
            by=viewer.email,
            at_ms=stamp,
            settings=state_of(request).settings,
            now_ms=stamp,
            seen=(stage, since) if stage and since is not None else None,
        )
    except (TransitionError, InputError) as exc:
        return _lead_page(request, viewer, lead_id, status=409, feedback_error=str(exc))
    target = safe_next(next) if next else f"/leads/{lead_id}"
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}done={decision}", status_code=303)
