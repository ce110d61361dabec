"""Evaluation: lift/gains, calibration, conversion by band, per-rule lift and drift of the active model."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.scoring.pipeline import active_model
from leadscore.store.score_names import picker_names, resolve
from leadscore.web.data import measure, remembered
from leadscore.web.data.remembered import FEEDBACK_INPUTS, SCORING_INPUTS, Pending, remembered_within
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
    store, wait_s = state_of(request).store, state_of(request).settings.report_wait_s
    with store.connect() as conn:
        active = active_model(conn, resolve(conn, score or None))  # the picked score's active model
        picker: dict[str, Any] = {
            "score": score,
            "score_names": picker_names(conn),
            "keep": {"outcome": outcome},
        }
    context: dict[str, Any] = {"active": active, "outcome": outcome, "outcomes": measure.OUTCOMES, **picker}
    if active is not None and active.version is not None:
        label, model, yaml = active.version.label, active.model, active.version.yaml
        url = store.engine.url.render_as_string(hide_password=False)

        def feedback() -> Any:
            # the learning stack (numpy) is loaded by the computations, in the background: never by a
            # request, which would wait seconds for it on the first evaluation after a start
            from leadscore.learn.sales_feedback import feedback_evidence

            with store.connect() as conn:
                return feedback_evidence(conn, store.sources(), model, label)

        # both score every lead (at each cutoff; at each decision): computed once per state of their
        # inputs, in the background when that takes longer than the page waits (LEADSCORE_REPORT_WAIT_S;
        # the page says so: at 100k leads the evaluation takes minutes, every lead scored at each cutoff)
        deadline = time.monotonic() + wait_s  # one wait for both
        with store.connect() as conn:
            try:
                ev = remembered_within(
                    conn,
                    SCORING_INPUTS,
                    ("evaluation", label, active.version.sha256, outcome),
                    # in a worker process: minutes of Python at 100k leads, which a thread of this
                    # server would run against every request beside it (remembered.in_child)
                    lambda: remembered.in_child(measure.evaluation_of, url, yaml, label, outcome),
                    wait_s,
                    errors=(ValueError,),  # learn.checks.NotEnoughDataError among them
                )
            except ValueError as exc:
                context["problem"] = str(exc)
            else:
                if isinstance(ev, Pending):
                    context["pending"] = ev.started_ms
                    if ev.previous is not None:  # shown, with when it was computed, until the new one is done
                        context.update(computed_ms=ev.previous_ms)
                        ev = ev.previous
                if not isinstance(ev, Pending):
                    context.update(ev=ev, charts=measure.charts(ev), period=measure.period(store))
            found = remembered_within(
                conn,
                FEEDBACK_INPUTS,
                ("feedback", label, active.version.sha256),
                feedback,
                max(0.0, deadline - time.monotonic()),
            )
            if isinstance(found, Pending):
                context["feedback_pending"] = found.started_ms
                if found.previous is not None:
                    context.update(feedback=found.previous, feedback_computed_ms=found.previous_ms)
            else:
                context["feedback"] = found
    context.update(horizon=measure.HORIZON_DAYS, weeks=measure.PERIOD_DAYS // 7, every=measure.EVERY_DAYS)
    return page(request, viewer, "evaluation.html", **context)
