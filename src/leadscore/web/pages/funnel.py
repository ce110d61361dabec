"""Funnel: being nurtured / getting warmer / ready for handoff, stage-to-stage conversion per week, by
lead source, time in stage and sales acceptance (all from ``lifecycle.reports``), of the score picked:
its stages and the leads that count for it when gates name scores (``lifecycle.score_stages``)."""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from leadscore.api.state import state_of
from leadscore.lifecycle import reports
from leadscore.lifecycle.score_stages import ScoreView, view_of
from leadscore.model.lifecycle import Lifecycle
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.store.schema import leads, stage_history
from leadscore.store.score_names import picker_names
from leadscore.web.data.remembered import remembered
from leadscore.web.params import ScoreParam
from leadscore.web.render import page
from leadscore.web.security import LeadsReader

router = APIRouter()
GROUPS = {"lead_source": "lead source", "utm_campaign": "campaign"}


def _weekly_chart(counts: list[dict[str, Any]], order: list[str], names: dict[str, str]) -> dict[str, Any]:
    weeks = sorted({r["week"] for r in counts})
    entered: dict[tuple[str, str], int] = {(r["week"], r["stage"]): r["entered"] for r in counts}
    series = [
        {"label": names.get(s, s), "values": [entered.get((w, s), 0) for w in weeks]}
        for s in order
        if any((w, s) in entered for w in weeks)
    ]
    return {"type": "line", "x": weeks, "series": series, "xTitle": "week", "yTitle": "leads entering"}


def _by_group(stages: list[dict[str, Any]], order: list[str]) -> list[dict[str, Any]]:
    """Per group: each funnel stage's all-time row (entered, converted to the next, rate), in funnel order."""
    rows: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for r in stages:
        rows[r["group"]][r["stage"]] = r
    return [{"group": g, "stages": [by_stage[s] for s in order]} for g, by_stage in sorted(rows.items())]


def _funnel_chart(stages: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "bar",
        "x": [names.get(r["stage"], r["stage"]) for r in stages],
        "series": [{"label": "Leads that entered", "values": [r["entered"] for r in stages]}],
        "xTitle": "stage (funnel order)",
        "yTitle": "leads",
    }


BY = ("lead_source", "utm_campaign")  # the attributes the funnel splits by


def all_time(conn: Connection, lifecycle: Lifecycle, by: str, view: ScoreView) -> tuple[Any, Any, Any]:
    """The all-time funnel, the funnel split ``by`` and the stays of the stages ``view`` shows (a score's
    or the whole lifecycle's): they read the whole stage history, so they are computed once per state of
    what they read (``remembered``; the dashboard's warm-up computes them as the server starts:
    web/warmup.py)."""
    shape = (lifecycle.model_dump_json(), view)
    overall = remembered(
        conn, (stage_history,), ("funnel", shape), lambda: reports.funnel(conn, lifecycle, view=view)
    )
    grouped = remembered(
        conn,
        (stage_history, leads),
        ("funnel", shape, by),
        lambda: reports.funnel(conn, lifecycle, by=by, view=view),
    )
    stays = remembered(conn, (stage_history,), ("stays", shape), lambda: reports.stays(conn, lifecycle, view))
    return overall, grouped, stays


@router.get("/funnel", response_class=HTMLResponse, include_in_schema=False)
def funnel_page(
    request: Request,
    viewer: LeadsReader,
    by: Annotated[str, Query(pattern="^(lead_source|utm_campaign)$")] = "lead_source",
    score: ScoreParam = "",
) -> HTMLResponse:
    now = now_ms()
    with state_of(request).store.connect() as conn:
        picker: dict[str, Any] = {"score": score, "score_names": picker_names(conn), "keep": {"by": by}}
        active = active_model(conn)
        lifecycle = active.model.lifecycle if active is not None else None
        if lifecycle is None:
            return page(request, viewer, "funnel.html", lifecycle=None, **picker)
        # the stages, entries and leads of the score picked ("getting warmer" reads its history)
        view = view_of(conn, lifecycle, score or None)
        overall, grouped, stays = all_time(conn, lifecycle, by, view)
        context: dict[str, Any] = {
            "nurtured": reports.count_in_stages(conn, list(lifecycle.nurture), view),
            "warmer": reports.getting_warmer(conn, now, score_name=view.score),
            "ready": reports.count_ready(conn, lifecycle, view),
            "times": reports.stays_as_of(stays, now),
            "acceptance": reports.acceptance(conn, view),
            "view": view,
        }
    order = view.order(lifecycle.funnel_stages())
    names = {s.id: s.name for s in lifecycle.stages}
    stages = [r for r in overall["stages"] if r["group"] == "all"] or [
        {"group": "all", "stage": s, "entered": 0, "to": None, "converted": None, "rate": None} for s in order
    ]
    conversion = overall["conversion"][-60:]
    return page(
        request,
        viewer,
        "funnel.html",
        lifecycle=lifecycle,
        order=order,
        names=names,
        stages=stages,
        funnel_chart=_funnel_chart(stages, names),
        weekly=_weekly_chart(overall["counts"], order, names),
        conversion=conversion,
        by=by,
        groups=GROUPS,
        by_group=_by_group(grouped["stages"], order),
        **context,
        **picker,
    )
