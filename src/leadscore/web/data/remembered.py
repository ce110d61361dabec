"""Reports that read whole tables, remembered per state of the tables they read.

A report here is a pure function of some tables (the funnel of the stage history, an evaluation of the
events, outcomes and stage moves). Its result is kept under a key made of its arguments and a
fingerprint of each table it reads: the row count, the largest id and a sum over a column every write
changes (``at_ms`` of an appended move, ``updated_ms`` of a changed lead). An insert, a delete or an
update of those tables changes the fingerprint, so a remembered result is always the one a fresh
computation would give; nothing is ever served stale, only computed once per state. The numbers keep
their one definition (``lifecycle.reports``, ``learn``): this module only decides when to call it again.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, func, select

from leadscore.store.schema import (
    accounts,
    events,
    feedback,
    identities,
    leads,
    model_versions,
    outcomes,
    stage_history,
)

T = TypeVar("T")
SIZE = 32  # results kept (least recently used dropped)
# per table: the column whose sum changes with every insert, delete or update of a row
_CHANGES: dict[str, str] = {
    "stage_history": "at_ms",
    "leads": "updated_ms",
    "events": "ts",
    "identities": "lead_id",
    "outcomes": "at_ms",
    "feedback": "at_ms",
    "accounts": "updated_ms",
    "model_versions": "published_ms",
}
# what the evaluation and the model review read: the event log, who is who, attributes, outcomes, stages
SCORING_INPUTS = (events, identities, leads, accounts, outcomes, stage_history, feedback)
# the sales feedback's evidence reads the same and which version was active at each decision
FEEDBACK_INPUTS = (*SCORING_INPUTS, model_versions)

_lock = threading.Lock()
_memo: OrderedDict[Hashable, Any] = OrderedDict()


def fingerprint(conn: Connection, table: Table) -> tuple[Any, ...]:
    """(rows, largest id, sum of the changing column) of ``table``."""
    changes = table.c[_CHANGES[table.name]]
    first = next(iter(table.primary_key.columns))
    row = conn.execute(select(func.count(), func.max(first), func.sum(changes))).one()
    return tuple(row)


def remembered(
    conn: Connection,
    tables: tuple[Table, ...],
    key: Hashable,
    compute: Callable[[], T],
    errors: tuple[type[Exception], ...] = (),
) -> T:
    """``compute()``, or its result from an earlier call with the same key and the same ``tables``; an
    exception of ``errors`` (e.g. "not enough data") is remembered and raised again the same way."""
    full = (str(conn.engine.url), key, tuple(fingerprint(conn, t) for t in tables))
    with _lock:
        hit = _memo.get(full, _memo)
        if hit is not _memo:
            _memo.move_to_end(full)
    if hit is _memo:
        try:
            hit = compute()
        except errors as exc:
            hit = _Raised(exc)
        with _lock:
            _memo[full] = hit
            while len(_memo) > SIZE:
                _memo.popitem(last=False)
    if isinstance(hit, _Raised):
        raise hit.exc
    return hit


class _Raised:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def forget() -> None:
    """Drop every remembered result (tests)."""
    with _lock:
        _memo.clear()
