"""``GET /v1/leads``'s cursor: where the next page of a walk starts, stable while leads change.

A page is read by keyset (sort value, lead id), never by offset. ``sort=id`` orders by a key that never
changes, so a walk shows every lead that exists throughout it exactly once, whatever is rescored or edited
between pages (a lead made during it shows on a later page when its id is past the cursor: asc).

The other sorts order by a value that changes (a score, ``updated_ms``): a lead whose value crosses the
cursor between two pages would be skipped or shown twice. So a walk keeps its start (``since``, the first
page's time) in the cursor and reads in two passes:

1. the leads unchanged since (the score's ``scored_ms``, or ``updated_ms``, before ``since``: their sort
   value is the one they had at the start) in the sort order, by (value, id);
2. then the leads changed (or made) since, by id, ascending.

A lead is in exactly one pass when it is read, and a lead moves from the first to the second only, so none
is skipped; one changed after it was shown shows again in the second pass, with its new values (a sync
client's upsert by ``lead_id`` keeps the newest). Exactly once for every order would need each lead's value
at the walk's start, which the store does not keep.

The cursor is opaque (base64 of JSON ``[sort, order, since, pass, value, id]``); one this API did not make
for the same sort and order (garbage, another sort's, numbers past 64 bits, a NUL) is a 400 naming
``cursor``: it can only ever name a position.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Select, and_, func, or_
from sqlalchemy.sql.elements import ColumnElement

from leadscore.api.errors import ApiError
from leadscore.store.schema import INT64_MAX, INT64_MIN, fits_id, leads, scores

SORTS = {
    "score": scores.c.score,
    "fit": scores.c.fit_score,
    "engagement": scores.c.engagement_score,
    "updated": leads.c.updated_ms,
    "id": leads.c.id,
}
ORDERS = ("desc", "asc")
# when a lead's sort value last changed: its score row's save, or the lead's own update
CHANGED = {
    "score": scores.c.scored_ms,
    "fit": scores.c.scored_ms,
    "engagement": scores.c.scored_ms,
    "updated": leads.c.updated_ms,
}
SORTED, CHANGED_PASS = 0, 1


def sort_key(sort: str) -> ColumnElement[Any]:
    """The value a page is ordered by (a lead with no score sorts as -1)."""
    return func.coalesce(SORTS[sort], -1.0)


@dataclass(frozen=True)
class Cursor:
    """A position in a walk: its start, its pass, and the last row shown (sort value, lead id)."""

    sort: str
    order: str
    since: int
    stage: int
    value: int | float | None
    lead_id: int

    def encode(self) -> str:
        body = [self.sort, self.order, self.since, self.stage, self.value, self.lead_id]
        return base64.urlsafe_b64encode(orjson.dumps(body)).decode()


def _refuse(message: str) -> ApiError:
    return ApiError(400, "invalid cursor", [{"field": "cursor", "message": message}])


def decode(text: str, sort: str, order: str) -> Cursor:
    """The cursor ``text`` of a walk in ``sort`` and ``order``, as this API made it; else a 400."""
    try:
        body = orjson.loads(base64.urlsafe_b64decode(text.encode("ascii", "strict")))
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise _refuse("not a cursor from this API") from None
    if body.__class__ is not list or len(body) != 6:
        raise _refuse("not a cursor from this API")
    c_sort, c_order, since, stage, value, lead_id = body
    if c_sort not in SORTS or c_order not in ORDERS:
        raise _refuse("not a cursor from this API")
    if (c_sort, c_order) != (sort, order):
        raise _refuse(f"a cursor of sort={c_sort}&order={c_order}, not of sort={sort}&order={order}")
    if not (
        _is_int(since) and 0 <= since <= INT64_MAX and _is_int(stage) and stage in (SORTED, CHANGED_PASS)
    ):
        raise _refuse("not a cursor from this API")
    if not (_is_int(lead_id) and fits_id(lead_id) and lead_id >= 0):
        raise _refuse("not a cursor from this API")
    if not (_bindable(value) or (stage == CHANGED_PASS and value is None)):
        raise _refuse("not a cursor from this API")
    return Cursor(c_sort, c_order, since, stage, value, lead_id)


def _is_int(value: Any) -> bool:
    return value.__class__ is int


def _bindable(value: Any) -> bool:
    """A number every store can compare a column with (not a list, an object, a bool, NaN or past 64 bits:
    a float as well, as JSON reads an integer too long for 64 bits)."""
    if value.__class__ is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    return value.__class__ is float and math.isfinite(value) and INT64_MIN <= value <= INT64_MAX


def sorted_pass(query: Select[Any], sort: str, order: str, since: int, at: Cursor | None) -> Select[Any]:
    """The first pass from ``at`` (the start when None): leads unchanged since ``since`` (every lead when
    the sort's key never changes), by (value, id) in ``order``."""
    key = sort_key(sort)
    if sort in CHANGED:
        query = query.where(func.coalesce(CHANGED[sort], 0) < since)
    if at is not None and at.stage == SORTED:
        if order == "desc":
            query = query.where(or_(key < at.value, and_(key == at.value, leads.c.id < at.lead_id)))
        else:
            query = query.where(or_(key > at.value, and_(key == at.value, leads.c.id > at.lead_id)))
    ordering = (key.desc(), leads.c.id.desc()) if order == "desc" else (key.asc(), leads.c.id.asc())
    return query.order_by(*ordering)


def changed_pass(query: Select[Any], sort: str, since: int, at: Cursor | None) -> Select[Any] | None:
    """The second pass from ``at``: leads changed since ``since``, by id; None for a key that never changes."""
    if sort not in CHANGED:
        return None
    query = query.where(func.coalesce(CHANGED[sort], 0) >= since)
    if at is not None and at.stage == CHANGED_PASS:
        query = query.where(leads.c.id > at.lead_id)
    return query.order_by(leads.c.id.asc())
