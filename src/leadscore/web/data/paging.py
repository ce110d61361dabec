"""Where a page sits in a list the dashboard shows a page at a time: the one pager arithmetic of the leads,
accounts, hand-off and account pages (pages from 1; a page past the last is the last, as the pages'
``?page`` is refused outside 1..1,000,000 and clamped here; an empty list has one empty page)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlencode

T = TypeVar("T")


@dataclass(frozen=True)
class Paging:
    """Page ``page`` of ``pages`` of a list of ``total`` items, ``size`` a page (the ``pager`` macro reads
    ``page`` and ``pages``)."""

    total: int
    page: int
    pages: int
    size: int

    @property
    def offset(self) -> int:
        """Items before the page (SQL's ``OFFSET``)."""
        return (self.page - 1) * self.size

    @property
    def first(self) -> int:
        """The page's first item's position (from 1) among all; 0 for an empty list."""
        return self.offset + 1 if self.total else 0

    @property
    def last(self) -> int:
        """The page's last item's position (from 1) among all; 0 for an empty list."""
        return min(self.offset + self.size, self.total)


def paging(total: int, page: int, size: int) -> Paging:
    """Page ``page`` (from 1) of ``total`` items ``size`` a page, clamped to the pages there are."""
    pages = max(1, -(-total // size))
    return Paging(total, min(max(1, page), pages), pages, size)


def paged_rows(
    read: Callable[[int, int], tuple[list[T], int]], page: int, size: int
) -> tuple[list[T], Paging]:
    """Page ``page`` of a list that ``read(limit, offset)`` reads a part of, with the length of the whole
    (one statement counts, one reads: a page past the last is read again as the last)."""
    rows, total = read(size, (max(1, page) - 1) * size)
    at = paging(total, page, size)
    if at.page != page:
        rows, _ = read(size, at.offset)
    return rows, at


def page_link(path: str, kept: Mapping[str, str], shown: Mapping[str, int], **change: int) -> str:
    """The address of ``path`` with the page ``change`` names of one of its lists, the other lists' pages
    ``shown`` (parameter → page) kept but a first page left out, and the parameters ``kept`` (the empty
    ones left out): every pager of a page with several lists."""
    query: dict[str, str | int] = {k: v for k, v in kept.items() if v}
    for key, now_shown in shown.items():
        n = change.get(key, now_shown)
        if key in change or n > 1:
            query[key] = n
    return f"{path}?" + urlencode(query)
