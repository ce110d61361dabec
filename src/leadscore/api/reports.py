"""Report API: being nurtured, getting warmer, ready for handoff, funnel, time in stage, sales
acceptance, accounts. Read or admin tokens. ``?score=NAME``: the stage reports of that score's team
(``lifecycle.score_stages``) and its score, the sales decisions on its hand-offs, the accounts' scores on
it (default: the primary; an unknown name is a 404 naming the scores there are)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from leadscore.api.deps import ReaderState, ScorePicked
from leadscore.api.lifecycle import lifecycle_model
from leadscore.api.openapi import refusals
from leadscore.api.paging import PAGE_ROWS, Limit, Offset, offset_page
from leadscore.lifecycle import reports
from leadscore.lifecycle.score_stages import view_of
from leadscore.model import Lifecycle
from leadscore.scoring.run import now_ms

# every report reads the active model's lifecycle section: 409 without one
router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=refusals(409))


def _lifecycle(state: ReaderState) -> tuple[Any, Lifecycle]:
    lifecycle = lifecycle_model(state).lifecycle
    assert lifecycle is not None
    return state, lifecycle


@router.get("/nurtured", summary="Leads being nurtured, hottest first", responses=refusals(404))
def nurtured(
    state: ReaderState, score: ScorePicked, limit: Limit = PAGE_ROWS, offset: Offset = 0
) -> dict[str, Any]:
    """A page of the leads in the nurture stages (``api.paging``)."""
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        view = view_of(conn, lifecycle, score)
        rows, total = reports.nurtured_page(conn, lifecycle, view, limit, offset)
    return offset_page("leads", rows, total, limit, offset)


@router.get("/warmer", summary="Largest score increase over the last days", responses=refusals(404))
def warmer(
    state: ReaderState,
    score: ScorePicked,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    top: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        name = view_of(conn, lifecycle, score).score
        return {"ok": True, "leads": reports.getting_warmer(conn, now_ms(), days, top, score_name=name)}


@router.get(
    "/handoff", summary="Leads ready for handoff, with seller and SLA deadline", responses=refusals(404)
)
def handoff(
    state: ReaderState, score: ScorePicked, limit: Limit = PAGE_ROWS, offset: Offset = 0
) -> dict[str, Any]:
    """A page of the queue, hottest first (``api.paging``)."""
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        view = view_of(conn, lifecycle, score)
        rows, total = reports.handoff_page(conn, lifecycle, view, limit, offset)
    return offset_page("leads", rows, total, limit, offset)


@router.get(
    "/funnel",
    summary="Funnel counts and stage-to-stage conversion per week (and per attribute)",
    responses=refusals(404),
)
def funnel(
    state: ReaderState,
    score: ScorePicked,
    by: Annotated[str | None, Query(max_length=100, description="e.g. lead_source")] = None,
) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, **reports.funnel(conn, lifecycle, by, view=view_of(conn, lifecycle, score))}


@router.get("/time-in-stage", summary="Time spent in each stage", responses=refusals(404))
def time_in_stage(state: ReaderState, score: ScorePicked) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        view = view_of(conn, lifecycle, score)
        return {"ok": True, "stages": reports.time_in_stage(conn, lifecycle, now_ms(), view)}


@router.get("/acceptance", summary="Sales acceptance rate and rejection reasons", responses=refusals(404))
def acceptance(state: ReaderState, score: ScorePicked) -> dict[str, Any]:
    """The decisions on the leads the score's gates handed to sales (``ScoreView.decided``)."""
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, **reports.acceptance(conn, view_of(conn, lifecycle, score))}


@router.get("/accounts", summary="Account scores, MQA stage and target accounts", responses=refusals(404))
def accounts(
    state: ReaderState, score: ScorePicked, limit: Limit = PAGE_ROWS, offset: Offset = 0
) -> dict[str, Any]:
    """A page of the accounts by score (``api.paging``)."""
    state, _ = _lifecycle(state)
    with state.store.connect() as conn:
        rows, total = reports.account_page(conn, score, now_ms(), limit, offset)
    return offset_page("accounts", rows, total, limit, offset)
