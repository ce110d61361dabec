"""Dead letters (admins): messages the processor could not apply, each with its error; retry one once
the cause is fixed, or drop it. The same operations as ``leadscore deadletters``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from leadscore.api.state import state_of
from leadscore.errors import NotFoundError
from leadscore.scoring import dead_letters as operator
from leadscore.store import dead_letters
from leadscore.web.render import page
from leadscore.web.security import DeadLetterManager, WebDenied

router = APIRouter()


@router.get("/deadletters", response_class=HTMLResponse, include_in_schema=False)
def deadletters_page(
    request: Request,
    viewer: DeadLetterManager,
    done: Annotated[str, Query(pattern="^(|applied|dropped)$")] = "",
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        letters = dead_letters.listed(conn, limit=500)
        total = dead_letters.count(conn)
    return page(request, viewer, "deadletters.html", letters=letters, total=total, done=done)


@router.get("/deadletters/{letter_id}", response_class=HTMLResponse, include_in_schema=False)
def deadletter_page(request: Request, viewer: DeadLetterManager, letter_id: int) -> HTMLResponse:
    return _letter_page(request, viewer, letter_id)


def _letter_page(
    request: Request, viewer: DeadLetterManager, letter_id: int, status: int = 200, error: str = ""
) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        letter = dead_letters.get(conn, letter_id)
    if letter is None:
        raise WebDenied(404, f"There is no dead letter {letter_id}.")
    return page(request, viewer, "deadletter.html", status=status, letter=letter, retry_error=error)


@router.post("/deadletters/{letter_id}/retry", include_in_schema=False)
def deadletter_retry(request: Request, viewer: DeadLetterManager, letter_id: int) -> Response:
    """Apply the message now; if it fails again, the page shows the new error."""
    state = state_of(request)
    drop_unconsented = state.settings.unconsented_events == "drop"
    try:
        outcome = operator.retry(
            state.store, letter_id, actor=viewer.email, drop_unconsented=drop_unconsented
        )
    except NotFoundError:
        raise WebDenied(404, f"There is no dead letter {letter_id}.") from None
    if not outcome.applied:
        return _letter_page(request, viewer, letter_id, status=409, error=outcome.error or "")
    return RedirectResponse("/deadletters?done=applied", status_code=303)


@router.post("/deadletters/{letter_id}/drop", include_in_schema=False)
def deadletter_drop(request: Request, viewer: DeadLetterManager, letter_id: int) -> Response:
    try:
        operator.drop(state_of(request).store, letter_id, actor=viewer.email)
    except NotFoundError:
        raise WebDenied(404, f"There is no dead letter {letter_id}.") from None
    return RedirectResponse("/deadletters?done=dropped", status_code=303)
