"""Accounts: contacts, engaged contacts and scores per account, on the score picked (``?score=NAME``);
target accounts marked and filterable."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.lifecycle.accounts import named_account_scores, target_domains
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.store.score_names import picker_names, primary_score, resolve
from leadscore.web.data import accounts as account_data
from leadscore.web.params import ScoreParam
from leadscore.web.render import page
from leadscore.web.security import LeadsReader, WebDenied

router = APIRouter()


@router.get("/accounts", response_class=HTMLResponse, include_in_schema=False)
def accounts_page(
    request: Request,
    viewer: LeadsReader,
    q: Annotated[str, Query(max_length=200)] = "",
    targets: Annotated[bool, Query()] = False,
    mqa: Annotated[bool, Query()] = False,
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
    score: ScoreParam = "",
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        name = resolve(conn, score or None)
        other = name != primary_score(conn)  # the stored account score and stage are the primary's
        if other and mqa:
            raise WebDenied(400, "The MQA filter tests the lifecycle's account stage, on the primary score.")
        active = active_model(conn)
        model = active.model if active else None
        cfg = model.lifecycle.accounts if model is not None and model.lifecycle is not None else None
        at = now_ms()

        def scored(ids: Sequence[int]) -> dict[int, tuple[float, str]]:
            assert cfg is not None
            found = named_account_scores(conn, name, ids, at)
            return {a: (s.score, s.stage(cfg)) for a, s in found.items()}

        domains = target_domains(model)
        engaged_from = account_data.engaged_at_least(model)
        result = account_data.account_page(
            conn, page_no, domains, engaged_from=engaged_from, only_targets=targets, only_mqa=mqa,
            q=q.strip(), score=name if other else None, scored=scored if other and cfg is not None else None,
        )  # fmt: skip
        names = picker_names(conn)
    base = {
        k: v
        for k, v in {
            "q": q.strip(),
            "targets": "true" if targets else "",
            "mqa": "true" if mqa else "",
            "score": score,
        }.items()
        if v
    }
    keep: dict[str, Any] = {k: v for k, v in base.items() if k not in ("score", "mqa")}
    return page(
        request,
        viewer,
        "accounts.html",
        result=result,
        q=q,
        targets=targets,
        mqa=mqa,
        mqa_rule=cfg.mqa if cfg is not None else None,
        other_score=other,
        has_targets=bool(domains),
        engaged_from=engaged_from,
        page_link=lambda n: "/accounts?" + urlencode({**base, "page": n}),
        score=score,
        score_names=names,
        keep=keep,
    )
