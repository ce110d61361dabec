"""Reports that read whole tables, remembered per state of the tables they read.

A report here is a pure function of some tables (the funnel of the stage history, an evaluation of the
events, outcomes and stage moves). Its result is kept under a key made of its arguments and a
fingerprint of each table it reads, read in O(1) through indexes:

- the logs (events, stage moves, outcomes, feedback, model versions) only grow, so their largest id
  changes with every insert; rows leave them only by erasure or retention, which write the audit log,
  whose largest id is part of every fingerprint;
- leads and accounts are updated in place, and every update stamps ``updated_ms`` with its time, so their
  largest ``updated_ms`` (and largest id) changes with every write (``ix_leads_updated_ms``).

On PostgreSQL an id is taken when a row is inserted, not when it commits: a writer that inserted first
may commit after one that inserted later, and the largest id stays the same while its row comes into view.
So there the fingerprint also names the transactions under way that write one of the tables (they hold its
row-exclusive lock until they end: ``pg_locks``); once one ends, the fingerprint changes.

So a remembered result is the one a fresh computation would give: nothing is served stale, it is only
computed once per state. The numbers keep their one definition (``lifecycle.reports``, ``learn``): this
module only decides when to call it again.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Table, func, literal_column, select

from leadscore.children import child_init
from leadscore.store.schema import (
    accounts,
    audit_log,
    events,
    feedback,
    leads,
    model_versions,
    outcomes,
    stage_history,
)

T = TypeVar("T")
log = logging.getLogger(__name__)
SIZE = 32  # results kept (least recently used dropped)
# tables updated in place: the column every update stamps with its time
_STAMPED = {"leads": "updated_ms", "accounts": "updated_ms", "model_versions": "published_ms"}
# what the evaluation and the model review read: the event log (identities change only with it),
# attributes, outcomes, stage moves and sales feedback
SCORING_INPUTS = (events, leads, accounts, outcomes, stage_history, feedback)
# the sales feedback's evidence reads the same and which version was active at each decision
FEEDBACK_INPUTS = (*SCORING_INPUTS, model_versions)

_lock = threading.Lock()
# results per shelf, each shelf its own SIZE: the rule builder's live counts (one per keystroke's
# condition) never push the dashboard's reports out
_shelves: dict[str, OrderedDict[Hashable, Any]] = {}
REPORTS = "reports"


def _shelf(name: str) -> OrderedDict[Hashable, Any]:
    return _shelves.setdefault(name, OrderedDict())


def _writers(tables: tuple[Table, ...]) -> Any:
    """PostgreSQL: the transactions under way that write one of ``tables`` (each table's row-exclusive
    lock, held to the transaction's end), as one text; NULL when none (the module's docstring)."""
    names = ", ".join(f"to_regclass('{t.name}')" for t in tables)
    return literal_column(
        "(SELECT string_agg(l.relation::text || ':' || l.virtualtransaction, ','"
        " ORDER BY l.relation::text || ':' || l.virtualtransaction) FROM pg_locks AS l"
        " WHERE l.locktype = 'relation' AND l.mode = 'RowExclusiveLock'"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND l.relation IN ({names}))"
    )


def fingerprint(conn: Connection, tables: tuple[Table, ...]) -> tuple[Any, ...]:
    """The state of ``tables`` as one row: each one's largest id (and largest update stamp), and the
    audit log's largest id (erasure and retention, the only deletions, are audited)."""
    columns: list[Any] = [select(func.max(audit_log.c.id)).scalar_subquery()]
    if conn.dialect.name == "postgresql":
        columns.append(_writers((audit_log, *tables)))
    for table in tables:
        first = next(iter(table.primary_key.columns))
        columns.append(select(func.max(first)).scalar_subquery())
        if table.name in _STAMPED:
            columns.append(select(func.max(table.c[_STAMPED[table.name]])).scalar_subquery())
    return tuple(conn.execute(select(*columns)).one())


def remembered(
    conn: Connection,
    tables: tuple[Table, ...],
    key: Hashable,
    compute: Callable[[], T],
    errors: tuple[type[Exception], ...] = (),
) -> T:
    """``compute()``, or its result from an earlier call with the same key and the same ``tables``; an
    exception of ``errors`` (e.g. "not enough data") is remembered and raised again the same way."""
    memo = _shelf(REPORTS)
    full = (str(conn.engine.url), key, tuple(t.name for t in tables), fingerprint(conn, tables))
    with _lock:
        hit = memo.get(full, memo)
        if hit is not memo:
            memo.move_to_end(full)
    if hit is memo:
        try:
            hit = compute()
        except errors as exc:
            hit = _Raised(exc)
        with _lock:
            memo[full] = hit
            while len(memo) > SIZE:
                memo.popitem(last=False)
    if isinstance(hit, _Raised):
        raise hit.exc
    return hit


@dataclass(frozen=True)
class Pending:
    """A report still being computed in the background (``remembered_within``), since ``started_ms``;
    ``previous``: the same report's newest finished result on an earlier state of its tables (``None``
    when there is none), finished at ``previous_ms``. A page may show it while the new one is computed,
    saying when it was computed: with live tracking every event changes the state, and a report of minutes
    would otherwise never be seen."""

    started_ms: int
    previous: Any = None
    previous_ms: int | None = None


_running: dict[Hashable, tuple[threading.Event, int, list[Any]]] = {}
# per report (database, key, tables): its newest finished result and when it finished, whatever the state
# of the tables was then (``Pending.previous``); the evaluation's key names the model version's hash, so a
# result of another version or outcome is never one of these
_latest: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()


def remembered_within(
    conn: Connection,
    tables: tuple[Table, ...],
    key: Hashable,
    compute: Callable[[], T],
    wait_s: float,
    errors: tuple[type[Exception], ...] = (),
    shelf: str = REPORTS,
) -> T | Pending:
    """``remembered``, but a computation runs in a background thread and the caller waits for it at most
    ``wait_s`` seconds: then it gets ``Pending`` and a later call the result, once it is done (a request
    that would read every lead's history is bounded; the numbers are the same when they come). ``compute``
    must open its own connections (it runs after the caller's has closed). A call that finds the
    computation under way (started by an earlier call) does not wait: it gets ``Pending`` at once until the
    result is there. ``shelf``: where the result is kept (a shelf holds ``SIZE`` results)."""
    report = (str(conn.engine.url), key, tuple(t.name for t in tables))
    full = (*report, fingerprint(conn, tables))
    memo = _shelf(shelf)
    with _lock:
        hit = memo.get(full, memo)
        if hit is not memo:
            memo.move_to_end(full)
        elif full in _running:  # under way since an earlier call, which waited for it: do not wait again
            done, started, box = _running[full]
            wait_s = 0.0
        else:
            done, started, box = threading.Event(), int(time.time() * 1000), []
            _running[full] = (done, started, box)
            threading.Thread(
                target=_compute_in_background,
                args=(report, full, compute, errors, done, box, memo),
                daemon=True,
            ).start()
    if hit is memo:
        if not done.wait(wait_s):
            with _lock:
                previous, previous_ms = _latest.get(report, (None, None))
            return Pending(started, previous, previous_ms)
        if not box:  # it failed (logged) and was not kept: the next call tries again
            raise RuntimeError(f"computing {key!r} failed; see the server log")
        hit = box[0]
    if isinstance(hit, _Raised):
        raise hit.exc
    return hit


def _compute_in_background(
    report: Hashable,
    full: Hashable,
    compute: Callable[[], Any],
    errors: tuple[type[Exception], ...],
    done: threading.Event,
    box: list[Any],
    memo: OrderedDict[Hashable, Any],
) -> None:
    try:
        try:
            result: Any = compute()
        except errors as exc:
            result = _Raised(exc)
        box.append(result)
        with _lock:
            memo[full] = result
            while len(memo) > SIZE:
                memo.popitem(last=False)
            if not isinstance(result, _Raised):
                _latest[report] = (result, int(time.time() * 1000))
                _latest.move_to_end(report)
                while len(_latest) > SIZE:
                    _latest.popitem(last=False)
    except Exception:
        log.exception("computing a remembered report failed")
    finally:
        with _lock:
            _running.pop(full, None)
        done.set()


CHILDREN = 2  # worker processes for computations in_child (the evaluation and its sales feedback at once)
_pool: ProcessPoolExecutor | None = None


def in_child(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` in a worker process (spawned when first needed: it inherits none of this process's
    threads or connections; its arguments and result are pickled). For a computation of minutes in pure
    Python (the evaluation scores every lead at each cutoff): in a thread of the server it would hold the
    interpreter lock against every request beside it (at 100k leads the leads list and the matrix took
    3 to 7 times as long while it ran); here the background thread only waits for it."""
    return _children().submit(fn, *args).result()


def _children() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            # below the server's priority: a request is never queued behind a background computation;
            # gone with the server, however it ends (``children``)
            _pool = ProcessPoolExecutor(
                CHILDREN,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=child_init,
                initargs=(10,),
            )
        return _pool


def start_children() -> None:
    """Start the worker processes of ``in_child`` now (the dashboard's warm-up), not on a page's first
    request: each one is a new interpreter, started while that request waits (and, beside it, taking the
    processor from the requests after it)."""
    pool = _children()
    # each busy for a moment, so that every worker is started; returns once they have all answered
    started = [pool.submit(time.sleep, 0.5) for _ in range(CHILDREN)]
    for future in started:
        future.result()


class _Raised:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc


def forget() -> None:
    """Drop every remembered result (tests)."""
    with _lock:
        for memo in _shelves.values():
            memo.clear()
        _latest.clear()
