"""Dependencies named as types: the app state behind a read token (``ReaderState``) or an admin token
(``AdminState``). Each declares its security scheme, so the OpenAPI document lists, per route, the
credential the route really checks (``api.auth.read_token``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from leadscore.api.auth import read_token
from leadscore.api.errors import ApiError
from leadscore.api.state import AppState, state_of
from leadscore.errors import NotFoundError
from leadscore.lifecycle.lead_filter import LeadFilterParams
from leadscore.model.lifecycle import SCORE_NAME
from leadscore.store import Store
from leadscore.store.score_names import resolve

# auto_error=False: these only declare the scheme; read_token answers a missing or bad token (401/403)
READ_TOKEN = HTTPBearer(
    scheme_name="readToken",
    description="A read or admin token: `leadscore keys create --kind read` (write keys cannot read).",
    auto_error=False,
)
ADMIN_TOKEN = HTTPBearer(
    scheme_name="adminToken",
    description="An admin token: `leadscore keys create --kind admin`.",
    auto_error=False,
)
Bearer = HTTPAuthorizationCredentials | None


def reader(request: Request, _: Annotated[Bearer, Security(READ_TOKEN)]) -> AppState:
    state = state_of(request)
    read_token(request, state.keys)
    return state


def admin(request: Request, _: Annotated[Bearer, Security(ADMIN_TOKEN)]) -> AppState:
    state = state_of(request)
    key = read_token(request, state.keys)
    if key.kind != "admin":
        raise ApiError(
            403, "feedback and outcomes need an admin token (`leadscore keys create --kind admin`)"
        )
    return state


ReaderState = Annotated[AppState, Depends(reader)]

# ?score=NAME, the named score a route reads: a score name, or empty (the dashboard picker's first option)
# for the primary score, as the lead list's filter reads it (``LeadFilter.score``)
SCORE_PICKED = f"^(?:{SCORE_NAME.strip('^$')})?$"


def _score_picked(
    score: Annotated[
        str,
        Query(
            max_length=63, pattern=SCORE_PICKED, description="a named score (empty or left out: the primary)"
        ),
    ] = "",
) -> str | None:
    return score or None


ScorePicked = Annotated[str | None, Depends(_score_picked)]
AdminState = Annotated[AppState, Depends(admin)]


def check_score_exists(store: Store, name: str | None) -> None:
    """A score named in a request must have been published: else 404 naming the scores that exist (None:
    the primary, nothing to check)."""
    if name is None:
        return
    with store.connect() as conn:
        try:
            resolve(conn, name)
        except NotFoundError as exc:
            raise ApiError(404, str(exc), [{"field": "score", "message": str(exc)}]) from None


def lead_filter(request: Request, f: Annotated[LeadFilterParams, Query()]) -> LeadFilterParams:
    """The lead filter of every list and export (``/v1/leads``, the dashboard's list, matrix and CSV export),
    its score checked: a score never published would otherwise match no score row, and a list or export
    would show every lead with empty score columns."""
    check_score_exists(state_of(request).store, f.score_name)
    return f


# declared after the caller's credentials (ReaderState, LeadsReader) so that a caller without them learns
# no score names
KnownLeadFilter = Annotated[LeadFilterParams, Depends(lead_filter)]
