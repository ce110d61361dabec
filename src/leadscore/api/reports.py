"""Report API: being nurtured, getting warmer, ready for handoff, funnel, time in stage, sales
acceptance, accounts. Read or admin tokens."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from leadscore.api.deps import ReaderState
from leadscore.api.lifecycle import lifecycle_model
from leadscore.api.openapi import refusals
from leadscore.lifecycle import reports
from leadscore.model import Lifecycle
from leadscore.scoring.run import now_ms

# every report reads the active model's lifecycle section: 409 without one
router = APIRouter(prefix="/v1/reports", tags=["reports"], responses=refusals(409))


def _lifecycle(state: ReaderState) -> tuple[Any, Lifecycle]:
    lifecycle = lifecycle_model(state).lifecycle
    assert lifecycle is not None
    return state, lifecycle


@router.get("/nurtured", summary="Leads being nurtured, hottest first")
def nurtured(state: ReaderState) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, "leads": reports.nurtured(conn, lifecycle)}


@router.get("/warmer", summary="Largest score increase over the last days")
def warmer(
    state: ReaderState,
    days: Annotated[int, Query(ge=1, le=365)] = 7,
    top: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    state, _ = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, "leads": reports.getting_warmer(conn, now_ms(), days, top)}


@router.get("/handoff", summary="Leads ready for handoff, with seller and SLA deadline")
def handoff(state: ReaderState) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, "leads": reports.ready_for_handoff(conn, lifecycle)}


@router.get("/funnel", summary="Funnel counts and stage-to-stage conversion per week (and per attribute)")
def funnel(
    state: ReaderState,
    by: Annotated[str | None, Query(max_length=100, description="e.g. lead_source")] = None,
) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, **reports.funnel(conn, lifecycle, by)}


@router.get("/time-in-stage", summary="Time spent in each stage")
def time_in_stage(state: ReaderState) -> dict[str, Any]:
    state, lifecycle = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, "stages": reports.time_in_stage(conn, lifecycle, now_ms())}


@router.get("/acceptance", summary="Sales acceptance rate and rejection reasons")
def acceptance(state: ReaderState) -> dict[str, Any]:
    state, _ = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, **reports.acceptance(conn)}


@router.get("/accounts", summary="Account scores, MQA stage and target accounts")
def accounts(state: ReaderState) -> dict[str, Any]:
    state, _ = _lifecycle(state)
    with state.store.connect() as conn:
        return {"ok": True, "accounts": reports.account_report(conn)}
