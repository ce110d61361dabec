"""Evaluation: lift/gains, calibration, conversion by band, per-rule lift and drift of the active model."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.scoring.pipeline import active_model
from leadscore.store.score_names import picker_names, resolve
from leadscore.web.data import measure
from leadscore.web.data.remembered import FEEDBACK_INPUTS, SCORING_INPUTS, remembered
from leadscore.web.params import ScoreParam
from leadscore.web.render import page
from leadscore.web.security import Evaluator

router = APIRouter()


@router.get("/evaluation", response_class=HTMLResponse, include_in_schema=False)
def evaluation_page(
    request: Request,
    viewer: Evaluator,
    outcome: Annotated[str, Query(pattern="^(opportunity|sql|won)$")] = "opportunity",
    score: ScoreParam = "",
) -> HTMLResponse:
    from leadscore.learn.checks import NotEnoughDataError  # numpy: loaded when the page is first asked for
    from leadscore.learn.sales_feedback import feedback_evidence

    store = state_of(request).store
    with store.connect() as conn:
        active = active_model(conn, resolve(conn, score or None))  # the picked score's active model
        picker: dict[str, Any] = {
            "score": score,
            "score_names": picker_names(conn),
            "keep": {"outcome": outcome},
        }
    context: dict[str, Any] = {"active": active, "outcome": outcome, "outcomes": measure.OUTCOMES, **picker}
    if active is not None and active.version is not None:
        label = active.version.label
        try:
            with store.connect() as conn:  # scores every lead at each cutoff: once per state of its inputs
                ev = remembered(
                    conn,
                    SCORING_INPUTS,
                    ("evaluation", label, active.version.sha256, outcome),
                    lambda: measure.evaluation(store, active.model, label, outcome),
                    errors=(NotEnoughDataError, ValueError),
                )
        except (NotEnoughDataError, ValueError) as exc:
            context["problem"] = str(exc)
        else:
            context.update(ev=ev, charts=measure.charts(ev), period=measure.period(store))
        with store.connect() as conn:  # scores every decision as of its time: once per state as well
            context["feedback"] = remembered(
                conn,
                FEEDBACK_INPUTS,
                ("feedback", label, active.version.sha256),
                lambda: feedback_evidence(conn, store.sources(), active.model, label),
            )
    context.update(horizon=measure.HORIZON_DAYS, weeks=measure.PERIOD_DAYS // 7, every=measure.EVERY_DAYS)
    return page(request, viewer, "evaluation.html", **context)
