"""Reports by score: the stage reports of one score's team (``lifecycle.score_stages``) against the same
reports over the whole lifecycle, on the database ``bench/dashboard.py --db PATH --build-only`` builds.

    python bench/dashboard.py --db /tmp/dash.db --build-only
    python bench/score_reports.py --db /tmp/dash.db

The bench store keeps one score, whose view is the whole lifecycle (what a store of one score pays). The
team's view is made by hand from the bench lifecycle: ``engaged`` counted as another score's stage and
``mql`` as this score's own, so every report takes the per-lead path (an index probe of the stage history
per lead in a stage now, the counted entries per lead in the funnel). Each report runs ``--rounds`` times
per view, interleaved; the medians and the ratio team / whole are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from leadscore.lifecycle import reports
from leadscore.lifecycle.score_stages import ScoreView
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.store import Store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="a database bench/dashboard.py built")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    if not Path(args.db).exists():
        sys.exit(
            f"{args.db}: no such database (build it with bench/dashboard.py --db {args.db} --build-only)"
        )
    store = Store.from_url(args.db)
    with store.connect() as conn:
        active = active_model(conn)
        assert active is not None and active.model.lifecycle is not None, "the bench model has a lifecycle"
        lifecycle = active.model.lifecycle
        name = active.version.score_name
        whole = ScoreView.of(lifecycle, name, name)
        assert whole.whole
        team = ScoreView(
            name,
            tuple(s.id for s in lifecycle.stages if s.id != "engaged"),
            frozenset({"mql"}),
            frozenset({"engaged"}),
        )
        now = now_ms()
        jobs: dict[str, Callable[[ScoreView], Any]] = {
            "being nurtured (count)": lambda v: reports.count_in_stages(conn, list(lifecycle.nurture), v),
            "ready for handoff (count)": lambda v: reports.count_ready(conn, lifecycle, v),
            "hand-off queue (rows)": lambda v: len(reports.ready_for_handoff(conn, lifecycle, v)),
            "funnel (all time)": lambda v: len(reports.funnel(conn, lifecycle, view=v)["stages"]),
            "time in stage": lambda v: len(reports.time_in_stage(conn, lifecycle, now, v)),
        }
        times: dict[tuple[str, str], list[float]] = {}
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        for _ in range(args.rounds):
            for job, run in jobs.items():
                for label, view in (("whole", whole), ("team", team)):
                    t0 = time.perf_counter()
                    run(view)
                    times.setdefault((job, label), []).append((time.perf_counter() - t0) * 1000)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
    store.dispose()
    print(f"{'report':<28} {'whole ms':>10} {'team ms':>10} {'team/whole':>11}")
    for job in jobs:
        a, b = statistics.median(times[(job, "whole")]), statistics.median(times[(job, "team")])
        print(f"{job:<28} {a:>10.1f} {b:>10.1f} {b / a:>10.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
