"""The leads list with and without its owner filter: ``web.data.leadlist.list_page`` (count and first
page) and the CSV export's rows, timed best of ``--repeat`` on one existing database (e.g. built by
``bench/dashboard.py --db PATH --build-only``), for this checkout's ``src`` and, when ``--baseline-src``
names another ``src`` (e.g. ``git archive`` of main), for that one in a subprocess on the same database,
with the ratio of each figure to the baseline's.

    python bench/leads_owner.py --db /tmp/owner_dash.db --baseline-src /tmp/owner_base/src
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def measure(db: str, repeat: int) -> dict[str, float]:
    from sqlalchemy import func, select

    from leadscore.lifecycle.lead_filter import LeadFilter
    from leadscore.store import Store
    from leadscore.store.schema import assignments
    from leadscore.web.data import leadlist

    store = Store.from_url(db)
    with store.connect() as conn:
        top = select(assignments.c.seller).group_by(assignments.c.seller).order_by(func.count().desc())
        seller = conn.execute(top.limit(1)).scalar_one()
        cases: dict[str, Any] = {
            "page, no filter": lambda: leadlist.list_page(conn, LeadFilter(), "score", "desc", 1),
            "page, owner": lambda: leadlist.list_page(conn, LeadFilter(owner=seller), "score", "desc", 1),
            "page, owner, by name": lambda: leadlist.list_page(
                conn, LeadFilter(owner=seller), "name", "asc", 1
            ),
            "page, owner + hot": lambda: leadlist.list_page(
                conn, LeadFilter(owner=seller, band="hot"), "score", "desc", 1
            ),
            "export, no filter": lambda: sum(
                1 for _ in leadlist.export_rows(conn, LeadFilter(), "score", "desc")
            ),
            "export, owner": lambda: sum(
                1 for _ in leadlist.export_rows(conn, LeadFilter(owner=seller), "score", "desc")
            ),
        }
        out: dict[str, float] = {}
        for name, run in cases.items():
            run()  # warm
            best = float("inf")
            for _ in range(repeat):
                start = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - start)
            out[name] = best * 1000
    store.dispose()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", required=True, help="an existing SQLite database (bench/dashboard.py --db)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline-src", help="another src directory to time on the same database")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # the subprocess's answer
    args = parser.parse_args(argv)
    mine = measure(args.db, args.repeat)
    if args.json:
        print(json.dumps(mine))
        return 0
    base: dict[str, float] = {}
    if args.baseline_src:
        env = {**os.environ, "PYTHONPATH": str(Path(args.baseline_src).resolve())}
        cmd = [sys.executable, __file__, "--db", args.db, "--repeat", str(args.repeat), "--json"]
        base = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
    print(f"{os.getloadavg()[0]:.1f} load; best of {args.repeat}, ms")
    for name, ms in mine.items():
        if name in base:
            print(f"{name:24} {ms:8.1f}   baseline {base[name]:8.1f}   {ms / base[name]:.2f}x")
        else:
            print(f"{name:24} {ms:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
