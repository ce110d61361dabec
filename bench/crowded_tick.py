"""The clock's tick over a crowded account: one account that ``group`` calls filled with ``--people`` people,
each with a probe of an account-scope committee rule (``tests/models/committee.yaml``, as
``bench/write_key_costs.py``'s tick), leaves its colleagues due for the clock; one tick rescores them.
Prints the tick's CPU seconds (this process; wall seconds too, where PostgreSQL's work shows), the leads
and transactions, and a digest of every stored score and history row after it (``float.hex``, rows in key
order), so the start code and a branch can be compared on the same store.

    python bench/crowded_tick.py --people 20000 --db /tmp/crowd_tick.db   # SQLite, kept; each run a copy
    python bench/crowded_tick.py --people 5000 --url postgresql://postgres@127.0.0.1:5432/test

``--db PATH`` keeps the loaded SQLite store (built when missing); each run ticks a copy of it, so the start
code and a branch tick the same store: run it with ``PYTHONPATH`` at each one's ``src``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rescore import add_url_option, url_store
from write_key_costs import COMMITTEE, DAY, NOW, fill_account

from leadscore.model import load_model
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.schema import score_history, scores


def digest(store: Store) -> str:
    """Every stored score (lead, name, score, fit, engagement, due) and history row (lead, name, time,
    score, cause and its reference) in key order, hashed."""
    h = hashlib.sha256()
    s, sh = scores.c, score_history.c
    tables = (((s.lead_id, s.score_name, s.score, s.fit_score, s.engagement_score, s.due_ms), 2),
              ((sh.lead_id, sh.score_name, sh.at_ms, sh.score, sh.cause, sh.cause_ref, sh.recorded_ms), 3))  # fmt: skip
    with store.connect() as conn:
        for cols, key in tables:
            for row in conn.execute(select(*cols).order_by(*cols[:key], *cols[key:])):
                h.update(repr(tuple(v.hex() if isinstance(v, float) else v for v in row)).encode())
    return h.hexdigest()[:16]


def timed_tick(store: Store, label: str) -> None:
    cpu, wall = time.process_time(), time.perf_counter()
    stats = tick(store, now=NOW + DAY)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{label} tick: {stats.leads} leads in {stats.transactions} transactions, {cpu:.2f} CPU-s "
          f"({wall:.2f} s wall); scores digest {digest(store)}; load {load}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000, help="people in the account")
    parser.add_argument("--db", type=Path, help="a SQLite file kept between runs (built when missing)")
    parser.add_argument("--label", default="", help="printed before the figures")
    add_url_option(parser)
    args = parser.parse_args()
    if args.url or args.db is None:
        with url_store(args.url) as store:
            publish(store, load_model(COMMITTEE))
            fill_account(store, args.people)
            timed_tick(store, args.label)
        return
    if not args.db.exists():
        store = Store.from_url(str(args.db))
        try:
            publish(store, load_model(COMMITTEE))
            fill_account(store, args.people)
        finally:
            store.dispose()
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "tick.db"
        for suffix in ("", "-wal"):  # the write-ahead log too, where a checkpoint left one
            if Path(f"{args.db}{suffix}").exists():
                shutil.copyfile(f"{args.db}{suffix}", f"{copy}{suffix}")
        store = Store.from_url(str(copy))
        try:
            timed_tick(store, args.label)
        finally:
            store.dispose()


if __name__ == "__main__":
    main()
