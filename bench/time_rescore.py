"""Time-driven rescoring: leads rescored and CPU seconds per clock tick, against rescoring every lead.

    python bench/time_rescore.py [--engine sqlite|postgres] [--leads N] [--events-per-lead E] [--ticks T]

Default: SQLite, 100,000 leads, 20 events per lead, 10 ticks.

The bench data set (bench/datagen.py) and model (bench/model.yaml: windows, several half-lives, caps,
a group) are loaded and published as of the data set's as-of time, which scores every lead and stores
when each is next due. Then, interleaved so that a busy moment hits both alike:

* a clock tick (``scoring.clock.tick``) every 60 s of model time after the as-of time, T ticks: the
  leads it rescored, and its wall and CPU seconds;
* the baseline, what a clock without due times would do each tick: rescore every lead as of the same
  time and save the scores (``scoring.pipeline.rescore_all``).

Then one catch-up tick a day later counts the leads due within a day (the average load per minute is
that / 1,440). CPU seconds are this process's (``time.process_time``): SQLite runs in it; on PostgreSQL
the server's share is not in them, so the wall time is printed too.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
from rescore import PG_URL, bench_store  # noqa: E402

from leadscore.model import load_model  # noqa: E402
from leadscore.scoring.clock import tick  # noqa: E402
from leadscore.scoring.pipeline import publish, rescore_all  # noqa: E402

MINUTE = 60_000
DAY = 86_400_000


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def run(engine: str, leads: int, events_per_lead: int, ticks: int, pg_url: str) -> None:
    spec = datagen.Spec(leads=leads, events=leads * events_per_lead)
    model = load_model(BENCH / "model.yaml")
    with bench_store(engine, pg_url) as store:
        _, load_s, _ = timed(lambda: datagen.load(store, spec))
        _, publish_s, publish_cpu = timed(lambda: publish(store, model, as_of=spec.as_of))
        print(
            f"{engine}: {leads:,} leads, {spec.events:,} events (load {load_s:.1f} s); publish (score, "
            f"schedule and save every lead) {publish_s:.2f} s wall, {publish_cpu:.2f} s CPU",
            flush=True,
        )
        tick_rows: list[tuple[int, float, float]] = []
        full_rows: list[tuple[float, float]] = []
        for n in range(1, ticks + 1):
            at = spec.as_of + n * MINUTE
            stats, wall, cpu = timed(lambda at=at: tick(store, at))  # type: ignore[misc]
            tick_rows.append((stats.leads, wall, cpu))
            _, full_wall, full_cpu = timed(lambda at=at: rescore_all(store, as_of=at))  # type: ignore[misc]
            full_rows.append((full_wall, full_cpu))
            print(
                f"  tick {n:2d}: {stats.leads:7,} leads rescored  {wall:7.3f} s wall {cpu:7.3f} s CPU"
                f"   | full rescoring {leads:,} leads {full_wall:7.2f} s wall {full_cpu:7.2f} s CPU",
                flush=True,
            )
        rescored = statistics.mean(r[0] for r in tick_rows)
        tick_cpu = statistics.median(r[2] for r in tick_rows)
        tick_wall = statistics.median(r[1] for r in tick_rows)
        full_wall = statistics.median(r[0] for r in full_rows)
        full_cpu = statistics.median(r[1] for r in full_rows)
        print(
            f"  per tick (median of {ticks}): {rescored:,.1f} leads rescored, {tick_wall:.3f} s wall, "
            f"{tick_cpu:.3f} s CPU; full rescoring {full_wall:.2f} s wall, {full_cpu:.2f} s CPU; "
            f"tick / full: CPU {tick_cpu / full_cpu:.4f}, wall {tick_wall / full_wall:.4f}"
        )
        # the full rescorings above stored every lead as of the last tick; a day later, the tick takes
        # every lead due within that day
        later = spec.as_of + ticks * MINUTE + DAY
        stats, wall, cpu = timed(lambda: tick(store, later))
        print(
            f"  catch-up tick one day later: {stats.leads:,} leads due within the day "
            f"({stats.leads / 1440:,.1f} per minute on average), {wall:.2f} s wall, {cpu:.2f} s CPU"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events-per-lead", type=int, default=20)
    parser.add_argument("--ticks", type=int, default=10)
    parser.add_argument("--pg-url", default=PG_URL)
    args = parser.parse_args(argv)
    run(
        args.engine.replace("postgres", "postgresql"),
        args.leads,
        args.events_per_lead,
        args.ticks,
        args.pg_url,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
