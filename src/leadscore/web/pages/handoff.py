"""Handoff (the sales view): MQLs ready for handoff, the signed-in seller's own first, SLA timers,
accept / reject in place."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.lifecycle.reports import ready_for_handoff
from leadscore.lifecycle.stages import triggered
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.web.data.stages import seller_label
from leadscore.web.render import page
from leadscore.web.security import LeadsReader

router = APIRouter()


@router.get("/handoff", response_class=HTMLResponse, include_in_schema=False)
def handoff_page(request: Request, viewer: LeadsReader) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
        lifecycle = active.model.lifecycle if active is not None else None
        rows = ready_for_handoff(conn, lifecycle) if lifecycle is not None else []
    mine: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for row in rows:
        if lifecycle is not None:
            row["owner"], email = seller_label(lifecycle, row.get("seller"))
            row["can_accept"] = triggered(lifecycle, row["stage"], "accepted") is not None
            row["can_reject"] = triggered(lifecycle, row["stage"], "rejected") is not None
            (mine if email and email.lower() == viewer.email.lower() else others).append(row)
    return page(
        request,
        viewer,
        "handoff.html",
        lifecycle=lifecycle,
        stage=lifecycle.stage(lifecycle.assignment.stage).name
        if lifecycle and lifecycle.assignment
        else None,
        mine=mine,
        others=others,
        reasons=lifecycle.rejection_reasons if lifecycle else (),
        now=now_ms(),
    )
