"""Accounts: contacts, engaged contacts and scores per account; target accounts marked and filterable."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from leadscore.api.state import state_of
from leadscore.scoring.pipeline import active_model
from leadscore.web.data import accounts as account_data
from leadscore.web.render import page
from leadscore.web.security import LeadsReader

router = APIRouter()


@router.get("/accounts", response_class=HTMLResponse, include_in_schema=False)
def accounts_page(
    request: Request,
    viewer: LeadsReader,
    q: Annotated[str, Query(max_length=200)] = "",
    targets: Annotated[bool, Query()] = False,
    mqa: Annotated[bool, Query()] = False,
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        active = active_model(conn)
        domains = account_data.target_domains(active.model if active else None)
        engaged_from = account_data.engaged_at_least(active.model if active else None)
        result = account_data.account_page(
            conn, page_no, domains, engaged_from=engaged_from, only_targets=targets, only_mqa=mqa, q=q.strip()
        )
    base = {
        k: v
        for k, v in {
            "q": q.strip(),
            "targets": "true" if targets else "",
            "mqa": "true" if mqa else "",
        }.items()
        if v
    }
    return page(
        request,
        viewer,
        "accounts.html",
        result=result,
        q=q,
        targets=targets,
        mqa=mqa,
        mqa_rule=active.model.lifecycle.accounts.mqa
        if active and active.model.lifecycle and active.model.lifecycle.accounts
        else None,
        has_targets=bool(domains),
        engaged_from=engaged_from,
        page_link=lambda n: "/accounts?" + urlencode({**base, "page": n}),
    )
