"""The processor: moves acknowledged events from the inbox into the event log, applies them (identities,
traits, accounts), rescores the leads they touch through the compiled query, records history and
threshold crossings.

Each batch is one transaction that also deletes its inbox rows, so an event's effects happen once; an
event whose message id is already in the log (a resend) is skipped. Several processes may run
processors against one PostgreSQL database: inbox rows are claimed with ``FOR UPDATE SKIP LOCKED``, the
log's unique message id admits one copy of a message, and leads are locked while rescored
(an advisory lock per lead id: ``store/results.py: lock_leads``), so no
event is applied twice and no two processors rescore the same lead at once. Work is handed out by
person: each inbox row holds one partition of people (``store/event_log.py: partition``), the running
processors share the partitions out among themselves (``Membership``), and a partition's rows are taken
by one transaction at a time, so two processors do not take the same people's events, nor wait at each
other's lead locks (a person with two keys in two partitions is the exception: the lead lock still
serialises them).

A message the processor cannot apply (a value the database refuses, a malformed inbox row) must not stall
the ones behind it: when a batch keeps failing, it is taken again and applied in parts, each in a
savepoint, halving a failing part until the one message that fails is found; that message becomes a dead
letter (``store/dead_letters.py``) and every other one is applied once, in order, in the same
transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError, OperationalError

from leadscore.ingest.apply import Applied, apply_identities, message_from_row, row_ids, unsuppressed
from leadscore.ingest.committer import write_turn
from leadscore.ingest.limits import cut_path
from leadscore.scoring.pipeline import rescore_touched
from leadscore.scoring.run import now_ms
from leadscore.store import Store, counters, dead_letters
from leadscore.store.event_log import PART_LOCK, PARTS, append_events, arrived_since, claim, release
from leadscore.store.planner_stats import refresh_stale

log = logging.getLogger("leadscore.processor")
# events per transaction: on SQLite, acknowledgements wait for the batch in progress (one write lock), so
# a backlog is taken in shorter turns there; PostgreSQL writers do not wait for each other
BATCH = 500
SQLITE_BATCH = 100
# SQLite, once a drain is behind (its last batch was at least half full): fewer, larger turns, each costing less per
# event (the statements of a batch are mostly per batch, not per event: 5,183 against 6,197 events per
# CPU-second at 100 and 500 in bench/process_batches.py)
SQLITE_BACKLOG_BATCH = 500
RETRIES = 5
# SQLite: the pause between two batches of one drain, in proportion to how long the last one held the
# write lock (at least SQLITE_YIELD_S). Writers in other processes (a server's committer, when the
# processor runs in ``leadscore process``) wait for the turn on an flock, which is not first come, first
# served: a processor taking its next turn at once would keep them waiting for the whole backlog. With
# SQLITE_SHARE = 2 a draining processor holds the lock at most a third of the time, so acknowledgements
# keep two thirds of it, as long as scoring keeps within SQLITE_CATCH_UP_MS of the events: once the
# oldest event of a batch waited longer, the processor catches up with the floor pause only (yielding
# then would cap its rate below what arrives on a loaded machine, and the backlog would never shrink:
# measured, event -> score p99 16 s at 1,000 events/s)
SQLITE_YIELD_S = 0.002
SQLITE_SHARE = 2.0
SQLITE_CATCH_UP_MS = 250.0
# SQLite, latency slack: after a batch that emptied the inbox (not full) with its oldest event scored
# within SQLITE_GATHER_MS, the next batch starts SQLITE_GATHER_S after this one started (the poll of
# `leadscore process`), not 2 ms after it ended: a batch's statements, commits and write turns are per
# batch, and a processor keeping up on a quiet machine otherwise scored a steady 1,000 events/s in
# many small batches (2,423 events per CPU-second, against 4,000-4,800 where load made them larger)
SQLITE_GATHER_MS = 100.0
SQLITE_GATHER_S = 0.05
# PostgreSQL, the same slack: after a batch that emptied the processor's partitions with its oldest event
# scored within GATHER_MS, the next claim comes GATHER_S after this batch began. A drain that claimed again
# at once kept two processors in a loop of small batches (each about the events of the last one's few
# milliseconds) whose ~20 statements cost more than their events: the run's own processors and backends
# then took 40 % of a 2-core machine at 1,000 events/s, and every event waited for a core
GATHER_MS = 100.0
GATHER_S = 0.05
# PostgreSQL: seconds between two looks at whether the tables scoring reads need fresh planner statistics
# (store/planner_stats.py: one cheap query; an ANALYZE when a table's size moved by half since its last
# one). A started processor looks on a thread of its own: an ANALYZE of the log (100-600 ms at 20,000-60,000
# rows) held up the batches of the drain that ran it, and the events of its partitions waited for it
STATS_CHECK_S = 1.0
# PostgreSQL: a drain that is behind takes BATCH events a batch, as one that keeps up does (no growth):
# every event of a batch waits for the whole batch, and larger batches cost no less an event (0.22
# CPU-ms of processor and server at 500 and at 1,000: bench/README.md, sixteenth session), so batches
# that doubled up to 2,000 behind a backlog only held their first events back (the slowest 1 % at 1,000
# events/s were in batches of 470-860)


# SQLite, a flood: events arriving faster than the processor scores them with FLOOD_CORE_SHARE of a core,
# and scoring already behind the latency budget. Keeping up then takes the CPU, write turns and disk syncs
# the acknowledgements need (on a quiet 2-core machine a flood of `/v1/track` ran at 15 % of a bare
# endpoint beside a processor keeping up, 35 % without it). So while flooded the processor scores only ``flood_duty`` of the time (it rests
# ``flood_pause`` after each batch) in batches of ``flood_batch`` events (fewer turns, each cheaper per
# event): acknowledgements come first, scores lag, and the backlog is scored at full speed once arrivals
# fall below that share (a steady rate it keeps up with in less never counts as a flood).
# Arrivals are the events acknowledged in the last FLOOD_WINDOW_S: those still in the inbox
# (``event_log.arrived_since``) and those the processor took from it in that time (``Claimed.arrivals``).
# The inbox alone hid every event taken: a drain that takes the whole backlog a batch leaves only the
# events acknowledged during its last batch (measured in `/v1/track` floods: 19-24 % of the arrivals).
FLOOD_DUTY = 0.25
FLOOD_BATCH = 1000
FLOOD_WINDOW_S = 1.0
# the share of a core a processor can count on, beside a server and its clients on a small machine
FLOOD_CORE_SHARE = 0.5
# the processor's rates (events per second of its batches' wall time, and per CPU-second) are sums over
# its batches, each earlier batch's weight multiplied by this: about the last five count. One batch alone
# misleads (measured: 916 events per CPU-second for a small batch that also copied the log, against
# 4,115 over the run), and would call a steady 1,000 events/s a flood
FLOOD_MEMORY = 0.8


def flooded(waited_ms: float, arrived_per_s: float, capacity_per_s: float) -> bool:
    """Whether a SQLite processor is flooded: its last batch's oldest event waited longer than
    SQLITE_CATCH_UP_MS, and keeping up would take more than FLOOD_CORE_SHARE of a core (events arrive
    faster than that share of ``capacity_per_s``, its recent batches' events per CPU-second of its
    thread). Per CPU-second, not per second of wall time: on a machine busy with other work the wall-time
    rate falls below a steady rate the processor keeps up with given its share of a core (measured: false
    floods at 1,000 events/s), and a processor that keeps up with a flood at full speed does so by taking
    most of a core (measured: 5,389 events/s on a quiet machine, 81 % of a core, /v1/track at 15 % of bare)."""
    return waited_ms > SQLITE_CATCH_UP_MS and arrived_per_s > FLOOD_CORE_SHARE * capacity_per_s


def flood_pause(batch_s: float, duty: float) -> float:
    """Seconds a flooded processor rests after a batch that took ``batch_s``, so that it scores
    ``duty`` of the time (1: no rest)."""
    return batch_s * (1.0 - duty) / duty


def sqlite_pause(held_s: float, waited_ms: float = 0.0) -> float:
    """Seconds a draining processor waits before its next SQLite turn, having held the last ``held_s``
    for a batch whose oldest event had waited ``waited_ms``."""
    if waited_ms > SQLITE_CATCH_UP_MS:
        return SQLITE_YIELD_S
    return max(SQLITE_YIELD_S, SQLITE_SHARE * held_s)


def gather_pause(taken: int, batch: int, stats: ProcessorStats) -> float:
    """Seconds a PostgreSQL drain waits before its next claim, after a batch of up to ``batch`` events
    that took ``taken`` (``GATHER_MS``): none while it is behind."""
    if taken >= batch or stats.last_latency_ms >= GATHER_MS:
        return 0.0
    return max(0.0, GATHER_S - stats.last_held_s)


@dataclass
class ProcessorStats:
    batches: int = 0
    events: int = 0
    leads_rescored: int = 0
    errors: int = 0
    retries: int = 0
    dead_letters: int = 0
    last_latency_ms: float = 0.0
    last_held_s: float = 0.0  # how long the last batch held the write turn (SQLite) or its transaction
    last_batch_s: float = 0.0  # SQLite: how long the last batch took, its two turns and the scoring between
    last_batch_cpu_s: float = 0.0  # SQLite: the CPU time the last batch took (the processor's thread)
    recomputed: int = 0  # SQLite batches whose leads changed while scored outside the lock: scored again
    # the last batch's inbox rows: when each was acknowledged and its events (``Claimed.arrivals``)
    last_taken: list[tuple[int, int]] = field(default_factory=list)


def process_pending(store: Store, limit: int = BATCH, drop_unconsented: bool = False) -> int:
    """Store, apply and score the oldest inbox rows, up to ``limit`` events (at least one row); returns
    how many events they held (0: the inbox is empty, or every row is another processor's)."""
    return _process(store, limit, ProcessorStats(), drop_unconsented)


def _process(
    store: Store,
    limit: int,
    stats: ProcessorStats,
    drop_unconsented: bool = False,
    parts: Sequence[int] | None = None,
) -> int:
    """One batch (PostgreSQL: of the partitions ``parts``, default all), retried when a concurrent processor won a race (it created the same lead first, or
    the database broke a deadlock): the transaction rolled back whole, so retrying is safe. A batch that
    still fails (or fails otherwise) is taken again message by message (``_apply_isolated``)."""
    for attempt in range(RETRIES):
        try:
            return _process_once(store, limit, stats, drop_unconsented, isolate=False, parts=parts)
        except (IntegrityError, OperationalError):
            if attempt == RETRIES - 1:
                break
            stats.retries += 1
            time.sleep(0.01 * (attempt + 1))
        except Exception:
            break
    # if the database itself is unusable, this fails as well (and nothing is set aside): the caller retries
    return _process_once(store, limit, stats, drop_unconsented, isolate=True, parts=parts)


def _process_once(
    store: Store,
    limit: int,
    stats: ProcessorStats,
    drop_unconsented: bool,
    isolate: bool,
    parts: Sequence[int] | None = None,
) -> int:
    if store.dialect == "sqlite" and not isolate:
        # scored on a read snapshot, the write lock held only to log and to save (built on this module)
        from leadscore.scoring.snapshot import process_batch

        return process_batch(store, limit, stats, drop_unconsented)
    # derived data: scores are recomputed from the inbox rows this transaction deletes, if it is lost
    with write_turn(store):
        held_from = time.monotonic()
        try:
            return _in_turn(store, limit, stats, drop_unconsented, isolate, parts)
        finally:
            stats.last_held_s = time.monotonic() - held_from


def _in_turn(
    store: Store,
    limit: int,
    stats: ProcessorStats,
    drop_unconsented: bool,
    isolate: bool,
    parts: Sequence[int] | None = None,
) -> int:
    with store.begin(durable=False) as conn:
        claimed = claim(conn, limit, parts)
        if claimed is None:
            return 0
        now = now_ms()
        for text, error in claimed.unreadable:
            _set_aside(conn, None, error, now, raw=text)
        if isolate:
            scored, rescored, dead = _apply_isolated(conn, store, claimed.rows, drop_unconsented, now)
        else:
            applying = apply_rows(conn, store, claimed.rows, drop_unconsented, claimed.suppressing)
            (scored, rescored), dead = applying, 0
        if claimed.pending:  # leads a SQLite processor logged events for and stopped before scoring
            rescored += rescore_touched(conn, store.sources(), pending_leads(claimed.pending))[0]
            scored += pending_count(claimed.pending, "scored")
        dead += len(claimed.unreadable)
        release(conn, claimed)
        counters.add(
            conn,
            {
                counters.ACKNOWLEDGED: len(claimed.rows)
                + len(claimed.unreadable)
                + pending_count(claimed.pending, "acknowledged"),
                counters.SCORED: scored,
                counters.DEAD_LETTERED: dead,
            },
        )
        oldest = claimed.oldest_ms
    stats.last_taken = claimed.arrivals
    stats.batches += 1
    stats.events += len(claimed.rows)
    stats.leads_rescored += rescored
    stats.dead_letters += dead
    stats.last_latency_ms = time.time() * 1000 - oldest
    return len(claimed.rows) + len(claimed.unreadable)


def apply_rows(
    conn: Connection,
    store: Store,
    rows: list[dict[str, Any]],
    drop_unconsented: bool,
    suppressing: bool | None = None,
) -> tuple[int, int]:
    """Append event-log rows to the log (of two copies of a message the first wins; one already there is
    skipped), apply the new ones (identities, traits, accounts) and rescore the leads they touch.
    Returns (events applied, leads rescored). ``suppressing``: see ``log_rows``."""
    applied, count = log_rows(conn, rows, suppressing)
    rescored, _ = rescore_touched(conn, store.sources(), applied, drop_unconsented=drop_unconsented)
    return count, rescored


def log_rows(
    conn: Connection, rows: list[dict[str, Any]], suppressing: bool | None = None
) -> tuple[Applied, int]:
    """The first half of ``apply_rows``: append the rows to the log and apply the new ones (identities,
    traits, accounts), unscored. Returns what they changed and how many were new. Rows naming a person
    erased with ``--suppress`` are dropped first, unstored, and counted (``counters.SUPPRESSED``);
    ``suppressing`` says whether anyone is, when the claim answered it (``Claimed.suppressing``)."""
    rows, dropped = unsuppressed(conn, rows, row_ids, suppressing=suppressing)
    if dropped:
        counters.add(conn, {counters.SUPPRESSED: dropped})
    first: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["message_id"] not in first:
            # acknowledged before paths were bounded at ingest: cut as migration 0025c cut the stored ones
            path = cut_path(row.get("path"))
            first[row["message_id"]] = row if path is row.get("path") else {**row, "path": path}
    inserted = append_events(conn, list(first.values()))
    messages = [message_from_row(row) for mid, row in first.items() if mid in inserted]
    applied = apply_identities(
        conn, messages, Applied(inserted={m.message_id for m in messages}, suppressed=dropped)
    )
    return applied, len(messages)


def pending_leads(entries: list[dict[str, Any]], into: Applied | None = None) -> Applied:
    """The leads of ``event_log.mark_pending`` entries, as one batch's ``Applied`` (to rescore), added to
    ``into`` when given."""
    out = Applied() if into is None else into
    for entry in entries:
        for lead_id, at, since, causes in entry.get("leads", []):
            out.touched[int(lead_id)] = max(int(at), out.touched.get(int(lead_id), int(at)))
            out.since[int(lead_id)] = min(int(since), out.since.get(int(lead_id), int(since)))
            out.causes.setdefault(int(lead_id), []).extend(str(c) for c in causes)
        for lead_id, at, causes in entry.get("left", []):
            out.leave(int(lead_id), int(at), *(str(c) for c in causes))
    return out


def pending_entry(applied: Applied, acknowledged: int, scored: int) -> dict[str, Any]:
    """``pending_leads``'s input for the leads of ``applied`` ([lead id, time, since, message ids] each),
    with the counts (``store/counters.py``) its events add when they are scored: events taken from the
    inbox, events logged (``pending_count``)."""
    return {
        "acknowledged": acknowledged,
        "scored": scored,
        "leads": [
            [lid, at, applied.since.get(lid, at), applied.causes.get(lid, [])]
            for lid, at in sorted(applied.touched.items())
        ],
        "left": [[lid, at, causes] for lid, (at, causes) in sorted(applied.left.items())],
    }


def pending_count(entries: list[dict[str, Any]], name: str) -> int:
    """The events ``pending_entry`` entries counted (``name``: acknowledged or scored)."""
    return sum(int(entry.get(name, 0)) for entry in entries)


def _apply_isolated(
    conn: Connection, store: Store, rows: list[dict[str, Any]], drop_unconsented: bool, now: int
) -> tuple[int, int, int]:
    """``apply_rows`` in savepoints: a part that fails is rolled back and halved; a single message that
    fails (after ``RETRIES`` tries where the failure may be a race) becomes a dead letter. Returns
    (events applied, leads rescored, dead letters)."""
    totals = [0, 0, 0]

    def attempt(part: list[dict[str, Any]]) -> None:
        with conn.begin_nested():
            scored, rescored = apply_rows(conn, store, part, drop_unconsented)
        totals[0] += scored
        totals[1] += rescored

    def part(chunk: list[dict[str, Any]]) -> None:
        try:
            attempt(chunk)
            return
        except Exception as exc:
            failure: Exception = exc
        if len(chunk) > 1:
            half = len(chunk) // 2
            part(chunk[:half])
            part(chunk[half:])
            return
        for tries in range(1, RETRIES):
            if not isinstance(failure, IntegrityError | OperationalError):
                break
            time.sleep(0.01 * tries)
            try:
                attempt(chunk)
                return
            except Exception as exc:
                failure = exc
        _set_aside(conn, chunk[0], describe_error(failure), now)
        totals[2] += 1

    part(rows)
    return totals[0], totals[1], totals[2]


def describe_error(exc: BaseException) -> str:
    """An error as a dead letter shows it: its type and message (SQLAlchemy's without the statement)."""
    inner = getattr(exc, "orig", None) or exc
    return f"{type(inner).__name__}: {inner}".strip()


def _set_aside(
    conn: Connection, row: dict[str, Any] | None, error: str, now: int, raw: str | None = None
) -> None:
    letter = dead_letters.add(conn, row, error, now, raw=raw)
    mid = dead_letters.printable(str(row.get("message_id")) if row else "(unreadable inbox row)", 300)
    log.error("message %s could not be applied and is dead letter %d: %s", mid, letter, error)


# PostgreSQL: a running processor's slot (a session advisory lock, keyed by the schema like the partitions'),
# and the slots held, in the order that ranks them
SLOTS = PART_LOCK
_LEAVE = text("SELECT pg_advisory_unlock_all()")
_TAKE_SLOT = text("SELECT pg_try_advisory_lock(hashtext(current_schema()), :slot)")
_MEMBERS = text(
    "SELECT objid::integer FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2"
    " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND classid = (hashtext(current_schema())::bigint & 4294967295)::oid"
    f" AND objid < {SLOTS} ORDER BY objid"
)


def owned(rank: int, members: int) -> list[int]:
    """The inbox partitions of the processor ranked ``rank`` among ``members`` running ones."""
    return [part for part in range(PARTS) if part % members == rank]


class Membership:
    """A PostgreSQL processor's share of the inbox partitions (``store/event_log.py: partition``): while
    it runs it holds a slot (a session advisory lock, on a connection of its own, which a killed
    processor's server process releases), and ``refresh`` looks up the slots held: ranked ``r`` among
    ``n``, it owns the partitions ``p`` with ``p % n == r``. Ownership only spreads the work; correctness
    does not depend on it (a partition is taken by one transaction at a time, whoever owns it), so a
    processor whose look failed takes every partition (``parts`` None) until the next one succeeds."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.parts: list[int] | None = None
        self._conn: Connection | None = None
        self._slot = -1
        # the processor's thread and a final drain on the server's thread may look at once: one connection
        self._lock = threading.RLock()

    def refresh(self) -> list[int] | None:
        with self._lock:
            return self._refresh()

    def _refresh(self) -> list[int] | None:
        try:
            if self._conn is None:
                self._conn = self.store.engine.connect()
                self._slot = next(
                    (s for s in range(SLOTS) if self._conn.execute(_TAKE_SLOT, {"slot": s}).scalar()), -1
                )
            slots = list(self._conn.execute(_MEMBERS).scalars())
            self._conn.rollback()  # the slot is the session's; no transaction stays open
            self.parts = owned(slots.index(self._slot), len(slots)) if self._slot in slots else None
        except Exception:  # an unreachable database: every partition, as a processor without a slot
            log.warning("processor membership not refreshed; taking every partition", exc_info=True)
            self.close()
        if self.parts is None:
            self.close()  # a slot lost (or never got): taken again at the next look
        return self.parts

    def close(self) -> None:
        """Give the slot back: the connection is closed, not pooled (its session holds the lock)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        conn, self._conn, self.parts = self._conn, None, None
        if conn is not None:
            try:
                # at once: a closed connection's server process lets its locks go a moment later
                conn.execute(_LEAVE)
            except Exception:
                log.debug("giving the slot back failed; the connection's end will", exc_info=True)
            try:
                conn.invalidate()
                conn.close()
            except Exception:
                log.debug("closing the membership connection failed", exc_info=True)


class Processor:
    """A background thread that drains the inbox whenever it is woken (after each commit) or every
    ``idle_s`` (events committed by other processes). Once woken it lingers ``linger_s`` before draining,
    so that events arriving together are scored in one batch instead of one transaction each. On
    PostgreSQL a second thread keeps the planner statistics (``store/planner_stats.py``) beside the
    drain, so that no batch waits for an ANALYZE; a processor drained without ``start()`` looks at them
    in the drain."""

    def __init__(
        self,
        store: Store,
        idle_s: float = 0.5,
        drop_unconsented: bool = False,
        linger_s: float = 0.05,
        flood_duty: float = FLOOD_DUTY,
        flood_batch: int = FLOOD_BATCH,
    ) -> None:
        self.store = store
        self.flood_duty = flood_duty
        self.flood_batch = flood_batch
        self.floods = 0  # SQLite batches after which the processor rested, in the flood in progress
        # SQLite: events, wall seconds and CPU-seconds of its recent batches (FLOOD_MEMORY)
        self._recent = [0.0, 0.0, 0.0]
        # SQLite: the inbox rows it took in the last FLOOD_WINDOW_S (acknowledged when, events), arrivals too
        self._taken: list[tuple[int, int]] = []
        self.drop_unconsented = drop_unconsented
        self.idle_s = idle_s
        self.linger_s = linger_s
        self.stats = ProcessorStats()
        self._stats_checked = -STATS_CHECK_S
        self.membership = Membership(store)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-processor", daemon=True)
        self._statistician = threading.Thread(
            target=self._keep_statistics, name="leadscore-planner-stats", daemon=True
        )

    def start(self) -> Processor:
        if self.store.dialect == "postgresql":
            self._statistician.start()
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    @property
    def running(self) -> bool:
        """Whether the thread is alive (it was started and neither stopped nor died)."""
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        if self._statistician.is_alive():
            self._statistician.join()
        self.membership.close()

    def _keep_statistics(self) -> None:
        """The started processor's planner statistics, looked at every ``STATS_CHECK_S`` while it runs."""
        while True:
            self._refresh_statistics()
            if self._stop.wait(STATS_CHECK_S):
                return

    def _refresh_statistics(self) -> None:
        try:
            refresh_stale(self.store)
        except OperationalError:  # a table held elsewhere: statistics wait, scoring does not
            log.warning("planner statistics not refreshed; tried again later", exc_info=True)
        except Exception:
            log.exception("refreshing planner statistics failed; tried again later")

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(self.idle_s) and self.linger_s:
                self._stop.wait(self.linger_s)
            self._wake.clear()
            self.drain()

    def drain(self) -> None:
        """Process until the inbox is empty (or an error the messages are not to blame for, such as an
        unreachable database: retried on the next wake)."""
        sqlite = self.store.dialect == "sqlite"
        batch = SQLITE_BATCH if sqlite else BATCH
        while True:
            try:
                if not sqlite and time.monotonic() - self._stats_checked >= STATS_CHECK_S:
                    self._stats_checked = time.monotonic()
                    if not self._statistician.is_alive():  # drained without start(): looked at here
                        self._refresh_statistics()
                    self.membership.refresh()
                parts = None if sqlite else self.membership.parts
                taken = _process(self.store, batch, self.stats, self.drop_unconsented, parts)
                if not taken and parts is not None and len(parts) < PARTS:
                    # its own partitions are empty: help with the others' (those no transaction holds)
                    others = [part for part in range(PARTS) if part not in parts]
                    taken = _process(self.store, batch, self.stats, self.drop_unconsented, others)
            except Exception:
                self.stats.errors += 1
                log.exception("processing the inbox failed; it will be retried")
                return
            if not taken or self._stop.is_set():  # stopped: what is left waits for the next processor
                return
            if sqlite:
                batch, pause = self._sqlite_next(taken, batch)
            else:
                pause = gather_pause(taken, batch, self.stats)
            if pause and self._stop.wait(pause):
                return

    def _sqlite_next(self, taken: int, batch: int) -> tuple[int, float]:
        """A SQLite drain's next batch size and the pause before it, after a batch of ``batch`` that took
        ``taken`` events."""
        stats, recent = self.stats, self._recent
        since = time.time() * 1000 - FLOOD_WINDOW_S * 1000
        self._taken = [(at, n) for at, n in (*self._taken, *stats.last_taken) if at >= since]
        stats.last_taken = []
        # not the processor's first batch, which also compiled the model's query and warmed the caches
        # (measured: 191 events per CPU-second, where the run went on at 4,785)
        if stats.batches > 1:
            for at, value in enumerate((taken, stats.last_batch_s, stats.last_batch_cpu_s)):
                recent[at] = FLOOD_MEMORY * recent[at] + value
        if self.flood_duty < 1.0 and stats.last_latency_ms > SQLITE_CATCH_UP_MS and min(recent) > 0:
            with self.store.connect() as conn:
                waiting = arrived_since(conn, int(since))
            arrived = (waiting + sum(n for _, n in self._taken)) / FLOOD_WINDOW_S
            scored, capacity = recent[0] / recent[1], recent[0] / recent[2]
            if flooded(stats.last_latency_ms, arrived, capacity):
                if not self.floods:
                    log.warning(
                        "flooded: %.0f events/s arriving, %.0f/s scored (%.0f per CPU-second), %.0f ms behind;"
                        " scoring %.0f%% of the time until arrivals slow (LEADSCORE_PROCESSOR_FLOOD_DUTY)",
                        arrived,
                        scored,
                        capacity,
                        stats.last_latency_ms,
                        100 * self.flood_duty,
                    )
                self.floods += 1
                return self.flood_batch, flood_pause(stats.last_batch_s, self.flood_duty)
        if self.floods:
            log.warning("flood over after %d rested batches: scoring at full speed", self.floods)
            self.floods = 0
        pause = sqlite_pause(stats.last_held_s, stats.last_latency_ms)
        if taken < batch and stats.last_latency_ms < SQLITE_GATHER_MS:
            return SQLITE_BACKLOG_BATCH, max(pause, SQLITE_GATHER_S - stats.last_batch_s)
        # at least half full: the drain is behind (inbox rows are taken whole, so rarely exactly full)
        batch = SQLITE_BACKLOG_BATCH if 2 * taken >= batch else SQLITE_BATCH
        return batch, pause
