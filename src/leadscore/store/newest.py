"""A page of a growing list, the newest first: what the lead and account pages and ``GET /v1/leads/{ref}``
list of a lead's score history, crossings and stage moves and of an account's moves, and
``GET /v1/leads/{ref}/stage`` a lead's stage moves and notifications (a write key's batches can make any
of them as long as it likes); the pages' arithmetic is ``web.data.paging``, the API's ``api.paging``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Table, func, select


def newest_rows(
    conn: Connection,
    table: Table,
    where: Sequence[ColumnElement[bool]],
    order: Sequence[ColumnElement[Any]],
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` rows of ``table`` matching ``where``, the newest first (``order`` descending) from
    ``offset``, returned oldest first (``order`` ascending); and how many match."""
    total = int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
    query = select(table).where(*where).order_by(*(c.desc() for c in order)).limit(limit).offset(offset)
    return [dict(r) for r in conn.execute(query).mappings()][::-1], total
