"""Handoff (the seller's desk): the leads ready for sales that the viewer may see, their own first, each
with its top reasons, last activity and SLA clock; accept / reject in place, confirmed after the action.
Who sees and acts on what is ``web.data.desk``'s rule (a rep: their own leads; a manager: the team).
With several scores, a picker chooses the score (the team) whose hand-off queue is shown
(``lifecycle.score_stages``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.lifecycle.reports import handoff_stages
from leadscore.lifecycle.score_stages import desk_score, view_of
from leadscore.model import Lifecycle
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.store.score_names import picker_names, primary_score
from leadscore.web.data.desk import desk
from leadscore.web.params import ScoreParam
from leadscore.web.render import page
from leadscore.web.security import LeadsReader

router = APIRouter()


def _names(lifecycle: Lifecycle | None, stage_ids: Sequence[str]) -> str:
    """The stages' names, as the page writes them (empty without a lifecycle or stages)."""
    return ", ".join(lifecycle.stage(s).name for s in stage_ids) if lifecycle is not None else ""


@router.get("/handoff", response_class=HTMLResponse, include_in_schema=False)
def handoff_page(
    request: Request,
    viewer: LeadsReader,
    done: Annotated[str, Query(pattern="^(|accepted|rejected)$")] = "",
    lead: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    page_number: Annotated[int, Query(alias="page", ge=1, le=10**9)] = 1,
    score: ScoreParam = "",
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
        lifecycle = active.model.lifecycle if active is not None else None
        if not score and lifecycle is not None:  # a seller's desk opens on their team's score
            score = desk_score(lifecycle, viewer.email, primary_score(conn)) or ""
        picker: dict[str, Any] = {"score": score, "score_names": picker_names(conn)}
        # the lifecycle is the primary model's; the score picked names the queue, its score and reasons
        view = view_of(conn, lifecycle, score or None) if lifecycle is not None else None
        scored = active_model(conn, view.score) if view is not None else None
        found = (
            desk(
                conn,
                scored.model,
                lifecycle,
                viewer.email,
                viewer.role,
                viewer.can("feedback"),
                page_number,
                view=view,
            )
            if scored is not None and lifecycle is not None
            else None
        )
    stages = handoff_stages(lifecycle, view) if lifecycle is not None else []
    assigned_in = lifecycle.assignment.stage_ids if lifecycle and lifecycle.assignment else ()
    here = {"score": score} if score else {}
    return page(
        request,
        viewer,
        "handoff.html",
        lifecycle=lifecycle,
        stage=_names(lifecycle, stages) or None,
        stages=len(stages),
        other_stage=_names(lifecycle, assigned_in) if not stages else None,
        other_stages=len(assigned_in),
        desk=found,
        view=view,
        here=urlencode(here),
        reasons=lifecycle.rejection_reasons if lifecycle else (),
        done=done,
        done_lead=lead,
        now=now_ms(),
        page_link=lambda n: "/handoff?" + urlencode({**here, "page": n}),
        **picker,
    )
