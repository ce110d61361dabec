"""Handoff (the seller's desk): the leads ready for sales that the viewer may see, their own first, each
with its top reasons, last activity and SLA clock; accept / reject in place, confirmed after the action.
Who sees and acts on what is ``web.data.desk``'s rule (a rep: their own leads; a manager: the team)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.web.data.desk import desk
from leadscore.web.render import page
from leadscore.web.security import LeadsReader

router = APIRouter()


@router.get("/handoff", response_class=HTMLResponse, include_in_schema=False)
def handoff_page(
    request: Request,
    viewer: LeadsReader,
    done: Annotated[str, Query(pattern="^(|accepted|rejected)$")] = "",
    lead: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    page_number: Annotated[int, Query(alias="page", ge=1, le=10**9)] = 1,
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
        lifecycle = active.model.lifecycle if active is not None else None
        view = (
            desk(
                conn, active.model, lifecycle, viewer.email, viewer.role, viewer.can("feedback"), page_number
            )
            if active is not None and lifecycle is not None
            else None
        )
    return page(
        request,
        viewer,
        "handoff.html",
        lifecycle=lifecycle,
        stage=lifecycle.stage(lifecycle.assignment.stage).name
        if lifecycle and lifecycle.assignment
        else None,
        desk=view,
        reasons=lifecycle.rejection_reasons if lifecycle else (),
        done=done,
        done_lead=lead,
        now=now_ms(),
        page_link=lambda n: f"/handoff?page={n}",
    )
