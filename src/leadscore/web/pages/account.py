"""Account (account-based marketing): contacts with scores and stages, the committee's activity per week,
the account score over time and its MQA status, the account score on every named score side by side; the
contacts and the chart on the score picked (``?score=NAME``; ``web.data.account``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.store.schema import fits_id
from leadscore.store.score_names import picker_names
from leadscore.web.data import account as account_data
from leadscore.web.data import product as product_data
from leadscore.web.data.paging import page_link
from leadscore.web.params import ScoreParam
from leadscore.web.render import page
from leadscore.web.security import LeadsReader, WebDenied

router = APIRouter()


def _score_chart(history: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "line",
        "x": [h["week"] for h in history],
        "series": [
            {"label": "Account score", "values": [h["score"] for h in history]},
            {"label": "Fit", "values": [h["fit"] for h in history]},
            {"label": "Committee engagement", "values": [h["engagement"] for h in history]},
        ],
        "xTitle": "week ending",
        "yTitle": "score (0–100)",
        "y": {"min": 0, "max": 100},
    }


@router.get("/accounts/{account_id}", response_class=HTMLResponse, include_in_schema=False)
def account_page(
    request: Request,
    viewer: LeadsReader,
    account_id: int,
    score: ScoreParam = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
    pql_page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    moves_page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    now = now_ms()
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
        model = active.model if active is not None else None
        found = fits_id(account_id)
        view = (
            account_data.load(conn, model, account_id, now, score or None, page_no, moves_page)
            if found
            else None
        )
        if view is None:
            raise WebDenied(404, f"There is no account {account_id}.")
        product = product_data.account_usage(conn, model, view.account, view.members, now, pql_page)
        names = picker_names(conn)
    lifecycle = model.lifecycle if model is not None else None
    cfg = lifecycle.accounts if lifecycle is not None else None
    shown = {
        "page": view.listed.page,
        "pql_page": product.qualified_at.page,
        "moves_page": view.moves_at.page,
    }

    def link(**change: int) -> str:
        return page_link(f"/accounts/{account_id}", {"score": score}, shown, **change)

    return page(
        request,
        viewer,
        "account.html",
        view=view,
        cfg=cfg,
        score_chart=_score_chart(view.history),
        scored_contact_weeks=f"{account_data.SCORED_CONTACT_WEEKS:,}",
        product=product,
        score=score,
        score_names=names,
        page_link=lambda n: link(page=n),
        pql_link=lambda n: link(pql_page=n),
        moves_link=lambda n: link(moves_page=n),
    )
