"""The dashboard's pages, derived from the app's routes: every GET route of ``leadscore.web`` that renders
a page. The screenshot test (``test_web_screens.py``) and the page benchmark (``bench/dashboard.py``)
both start from this list and fail on a page they do not cover."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi.routing import APIRoute

from leadscore.web import ROUTERS

# GET routes of the dashboard that are not pages, and why
NOT_PAGES = {
    "/": "redirects to /leads",
    "/leads/export.csv": "a CSV download",
    "/model/builder/values": "a fragment of the model page (the rule builder's value picker, timed by bench/builder.py)",
}


def _walk(routes: list[Any]) -> Iterator[Any]:
    """Every route, including those of included routers (FastAPI keeps them behind a wrapper)."""
    for route in routes:
        if hasattr(route, "original_router"):
            yield from _walk(route.original_router.routes)
        else:
            yield route


def page_routes() -> set[str]:
    """The path templates of the dashboard's GET pages (``/leads/{lead_id}``...)."""
    found = {
        route.path
        for router in ROUTERS
        for route in _walk(router.routes)
        if isinstance(route, APIRoute) and "GET" in route.methods
    }
    missing = set(NOT_PAGES) - found
    assert not missing, f"NOT_PAGES names routes that are gone: {sorted(missing)}"
    return found - set(NOT_PAGES)
