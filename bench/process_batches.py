"""The processor alone: N events waiting in the inbox, drained batch by batch, every statement timed.

    python bench/process_batches.py [--engine sqlite|postgres] [--events 10000] [--limit N] [--same-time] [--profile]

Prints events/s (wall and per CPU-second of this process), statements per batch and the statements that
took the most time in all (client-side time: round trip and server work), so a change to the
processor's statements shows as fewer statements or less time in one of them. ``--profile`` adds the
functions by own time (cProfile; ``CALLERS=regex`` adds who called the functions matching it); for a
sampling profile run it under ``py-spy record``. Statements are counted as SQLAlchemy runs them: on
PostgreSQL those sent in a pipeline (``store/pipelined.py``) count although they share a round trip, and
the pipeline's own reads (``Pipeline.returning``) go to the driver directly and are not counted.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
import uuid
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import BATCH, SQLITE_BATCH, process_pending
from leadscore.store import Store
from leadscore.store.event_log import INBOX_ROW_EVENTS, enqueue
from leadscore.store.planner_stats import analyse

PG_URL = os.environ.get("LEADSCORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MODEL = """
model: process_bench
engagement:
  - {id: clicks, name: Clicks, event: {type: track, name: Clicked}, points: 10}
  - {id: pricing, name: Pricing, event: {type: page}, where: {property: path, prefix: /pricing}, points: 20}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""
USERS = 5_000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--limit", type=int, default=0, help="events a batch (default: the processor's batch for the engine)"
    )
    parser.add_argument(
        "--same-time",
        action="store_true",
        help="every event at one time (a lead's second event rewrites its history row; default: a "
        "millisecond apart, as live events arrive)",
    )
    args = parser.parse_args()
    schema = f"bench_proc_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    if args.engine == "postgres":
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    else:
        url = f"/tmp/{schema}.db"
    store = Store.from_url(url)
    try:
        run(store, args.engine, args.events, args.profile, args.limit, args.same_time)
    finally:
        store.dispose()
        if args.engine == "postgres":
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        else:
            for suffix in ("", "-wal", "-shm", "-turn"):
                if os.path.exists(url + suffix):
                    os.remove(url + suffix)
        admin.dispose()


def run(store: Store, engine: str, n: int, profile: bool, limit: int, same_time: bool) -> None:
    publish(store, loads_model(MODEL))
    limit = limit or (BATCH if engine == "postgres" else SQLITE_BATCH)
    now = int(time.time() * 1000) - n - limit
    rows = [
        event_row(
            normalise(
                {"type": "track", "event": "Clicked", "userId": f"user-{i % USERS}", "messageId": f"m-{i}"},
                received_ms=now if same_time else now + i,
            ),
            "api",
        )
        for i in range(n + limit)
    ]
    with store.begin() as conn:
        # inbox rows no larger than a batch, so that a batch of under 100 events is what --limit says
        step = min(limit, INBOX_ROW_EVENTS)
        for start in range(0, len(rows), step):
            enqueue(conn, rows[start : start + step])
    process_pending(store, limit=limit)  # warm-up: the compiled query, the model cache
    # planner statistics, as the running processor keeps them (``Processor.drain``)
    with store.begin() as conn:
        analyse(conn)
    timing: dict[str, list[float]] = {}
    started: dict[int, float] = {}

    @event.listens_for(store.engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        started[id(conn)] = time.perf_counter()

    @event.listens_for(store.engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        spent = timing.setdefault(" ".join(statement.split())[:100], [0, 0.0])
        spent[0] += 1
        spent[1] += time.perf_counter() - started.pop(id(conn))

    backends = _backends(store) if engine == "postgres" else []
    server_cpu = _cpu_s(backends)
    batches = 0
    profiler = cProfile.Profile() if profile else None
    wall, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    while process_pending(store, limit=limit):
        batches += 1
    if profiler:
        profiler.disable()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    server_cpu = _cpu_s(backends) - server_cpu
    statements = sum(int(c) for c, _ in timing.values())
    print(
        f"[load {os.getloadavg()[0]:.1f}] {engine}: {n:,} events in {batches} batches, {wall:.2f} s wall, "
        f"{cpu:.2f} CPU-s: {n / wall:,.0f} events/s, {n / cpu:,.0f} per CPU-second; "
        f"{statements / max(batches, 1):.1f} statements a batch"
        + (
            f"; server {server_cpu:.2f} CPU-s: {n / (cpu + server_cpu):,.0f} events per CPU-second of both"
            if backends
            else ""
        )
    )
    for statement, (count, spent) in sorted(timing.items(), key=lambda kv: -kv[1][1])[
        : int(os.environ.get("TOP", "15"))
    ]:
        print(f"{spent:8.3f} s {int(count):5d}x  {statement}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
        if os.environ.get("CALLERS"):
            pstats.Stats(profiler).print_callers(os.environ["CALLERS"])


def _backends(store: Store) -> list[int]:
    """The PostgreSQL server processes serving this store's connections (same machine: read from /proc)."""
    with store.connect() as conn:
        return list(
            conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " UNION SELECT pg_backend_pid()"
                )
            ).scalars()
        )


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


if __name__ == "__main__":
    main()
