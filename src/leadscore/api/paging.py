"""The API's offset pages, ``?limit=&offset=``: one definition for every list the API returns a page of
rows of (the hand-off queue, the nurtured leads, the accounts report, the assignments, a lead's stage
moves and notifications), each read from the store as a page, however long the list (docs/ingest.md,
"Read API"); the accounts report on a named score other than the primary still computes every account's
score to order them. An answer of two lists pages each apart, its parameters prefixed with the list's
name (``history_limit``, ``history_offset``) and its ``paging`` beside it (``page_at``).

``limit`` rows (default ``PAGE_ROWS``, at most ``MAX_ROWS``) from ``offset`` (at most ``MAX_OFFSET``);
the answer gives the list's ``total`` and ``next_offset``, null after the last page. Any other value of
either (0, negative, beyond the bound, 2^64, NUL, not a number) is a 422 naming the parameter. A row
that joins or leaves a list between two requests moves the rows after it by one (so one of them shows
twice, or is skipped): a list in the order rows are made (the assignments) grows at its end only.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

PAGE_ROWS = 100
MAX_ROWS = 1000
MAX_OFFSET = 10**9

Limit = Annotated[int, Query(ge=1, le=MAX_ROWS, description=f"rows returned, at most {MAX_ROWS:,}")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows skipped first")]


def next_offset(offset: int, shown: int, total: int) -> int | None:
    """Where the page after the one of ``shown`` rows from ``offset`` starts; None after the last."""
    end = offset + shown
    return end if end < total else None


def page_at(shown: int, total: int, limit: int, offset: int) -> dict[str, Any]:
    """Where a page of ``shown`` rows sits: the list's ``total``, the page's ``limit`` and ``offset``, and
    ``next_offset``: null after a page shorter than its limit, the list's last whatever the count (read by
    a statement of its own) says, so that no empty page points at itself."""
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset(offset, shown, total) if shown >= limit else None,
    }


def offset_page(key: str, rows: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    """The answer of a page: its ``rows`` under ``key`` and where it sits (``page_at``)."""
    return {"ok": True, key: rows, **page_at(len(rows), total, limit, offset)}
