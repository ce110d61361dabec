"""The processor alone: N events waiting in the inbox, drained batch by batch, every statement timed.

    python bench/process_batches.py [--engine sqlite|postgres] [--events 10000] [--profile]

Prints events/s (wall and per CPU-second of this process), statements per batch and the statements that
took the most time in all (client-side time: round trip and server work), so a change to the
processor's statements shows as fewer statements or less time in one of them. ``--profile`` adds the
functions by own time (cProfile); for a sampling profile run it under ``py-spy record``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import time
import uuid
from typing import Any

from sqlalchemy import create_engine, event, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.scoring.processor import BATCH, SQLITE_BATCH, process_pending
from leadscore.store import Store
from leadscore.store.event_log import enqueue

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
        run(store, args.engine, args.events, args.profile)
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


def run(store: Store, engine: str, n: int, profile: bool) -> None:
    publish(store, loads_model(MODEL))
    now = int(time.time() * 1000)
    limit = BATCH if engine == "postgres" else SQLITE_BATCH
    rows = [
        event_row(
            normalise(
                {"type": "track", "event": "Clicked", "userId": f"user-{i % USERS}", "messageId": f"m-{i}"},
                received_ms=now,
            ),
            "api",
        )
        for i in range(n + limit)
    ]
    with store.begin() as conn:
        enqueue(conn, rows)
    process_pending(store, limit=limit)  # warm-up: the compiled query, the model cache
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
    statements = sum(int(c) for c, _ in timing.values())
    print(
        f"[load {os.getloadavg()[0]:.1f}] {engine}: {n:,} events in {batches} batches, {wall:.2f} s wall, "
        f"{cpu:.2f} CPU-s: {n / wall:,.0f} events/s, {n / cpu:,.0f} per CPU-second; "
        f"{statements / max(batches, 1):.1f} statements a batch"
    )
    for statement, (count, spent) in sorted(timing.items(), key=lambda kv: -kv[1][1])[:15]:
        print(f"{spent:8.3f} s {int(count):5d}x  {statement}")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
