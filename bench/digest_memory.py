"""The daily digest's peak memory against the length of the hand-off queue: a store with ``--leads``
leads waiting in MQL (EMEA's, in turn Lena's, Paul's and Ines's, half of them past their SLA), written
straight into the tables, and the digest of EMEA's manager, who is told of every one of them.

    python bench/digest_memory.py --db /tmp/digest.db --build --leads 200000
    python bench/digest_memory.py --db /tmp/digest.db          # one digest, in this process

Each run makes the day's digest again (the outbox rows of earlier runs are deleted first) and prints the
peak RSS (``ru_maxrss``) before and after it, the peak of Python's own allocations during it
(``tracemalloc``: the rows and notes held, without SQLite's page cache, which the store sizes at up to
64 MiB a connection: ``store.engine``), the time it took and the SELECT statements it ran.
Run it with another checkout's ``src`` on ``PYTHONPATH`` to measure that code on the same store.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event

from leadscore.lifecycle.notify import send_digests
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.notifications import NotificationSettings, save_settings
from leadscore.store.schema import (
    assignments,
    digest_leads,
    lead_stages,
    leads,
    outbox,
    scores,
    stage_history,
)
from leadscore.store.users import add_user

MODEL = """
model: digest_bench
engagement:
  - {id: plus, name: Showed interest, event: {type: track, name: Plus}, points: 1}
lifecycle:
  initial: lead
  stages: [{id: lead, name: Lead}, {id: mql, name: MQL}, {id: sql, name: SQL}]
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 60}}
    - {id: accepted, from: [mql], to: sql, trigger: accepted}
  teams:
    - id: emea
      name: EMEA
      manager: {name: Tom Becker, email: tom@vendor.example}
      sellers:
        - {id: lena, name: Lena Vogt, email: lena@vendor.example}
        - {id: paul, name: Paul Martin, email: paul@vendor.example}
        - {id: ines, name: Ines Garcia, email: ines@vendor.example}
  assignment: {stage: mql, default_team: emea, sla: 4h}
"""
MANAGER = "tom@vendor.example"
NOW = 1_714_986_000_000  # 2024-05-06T09:00:00Z
HOUR = 3_600_000
CHUNK = 10_000


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def build(store: Store, n: int) -> None:
    version, _ = publish(store, loads_model(MODEL))
    with store.begin() as conn:
        user = add_user(conn, MANAGER, "Tom Becker", "sales", "x", 0)
        save_settings(conn, user.id, NotificationSettings(mail_digest=True), 0)
    sellers = ("lena", "paul", "ines")
    for start in range(1, n + 1, CHUNK):
        ids = range(start, min(start + CHUNK, n + 1))
        # half assigned 5 h before NOW (past the 4 h SLA), half 1 h before (new)
        at = {i: NOW - (5 if i % 2 else 1) * HOUR for i in ids}
        with store.begin() as conn:
            conn.execute(leads.insert(), [
                {"id": i, "external_id": f"p{i}", "email": f"p{i}@example.com", "email_domain": "example.com",
                 "first_name": f"P{i}", "last_name": "Bench", "company": "Acme", "attributes": {},
                 "attribute_ts": {}, "created_ms": at[i], "updated_ms": at[i]}
                for i in ids
            ])  # fmt: skip
            conn.execute(scores.insert(), [
                {"lead_id": i, "score_name": "primary", "model_version_id": version.id, "as_of_ms": at[i],
                 "score": 60.0 + i % 40, "fit_score": 0.0, "engagement_score": 60.0 + i % 40, "grade": "D",
                 "level": 0, "band": "", "scored_ms": at[i], "due_ms": None}
                for i in ids
            ])  # fmt: skip
            conn.execute(stage_history.insert(), [
                {"id": i, "lead_id": i, "from_stage": "lead", "to_stage": "mql", "at_ms": at[i],
                 "transition": "qualified", "cause": "score", "cause_ref": "bench", "recorded_ms": at[i]}
                for i in ids
            ])  # fmt: skip
            conn.execute(lead_stages.insert(), [
                {"lead_id": i, "stage": "mql", "entered_ms": at[i], "seen_scored_ms": at[i], "updated_ms": at[i]}
                for i in ids
            ])  # fmt: skip
            conn.execute(assignments.insert(), [
                {"id": i, "lead_id": i, "stage_move_id": i, "team": "emea", "seller": sellers[i % 3],
                 "reason": "default", "at_ms": at[i], "due_ms": at[i] + 4 * HOUR}
                for i in ids
            ])  # fmt: skip


def run(store: Store) -> dict[str, Any]:
    with store.begin() as conn:
        conn.execute(delete(digest_leads))
        conn.execute(delete(outbox))
    model = loads_model(MODEL)
    counted = {"selects": 0, "rows": 0}

    def seen(_c: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            counted["selects"] += 1

    event.listen(store.engine, "after_cursor_execute", seen)
    before = peak_rss_mib()
    tracemalloc.start()
    start = time.perf_counter()
    done = send_digests(store, model, Settings(), NOW, email=MANAGER)
    seconds = time.perf_counter() - start
    python_peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    after = peak_rss_mib()
    event.remove(store.engine, "after_cursor_execute", seen)
    with store.connect() as conn:
        body = conn.execute(outbox.select()).mappings().first()
    subject = body["payload"]["subject"] if body is not None else None
    return {"sent": done.sent, "seconds": round(seconds, 2), "peak_rss_before_mib": round(before, 1),
            "peak_rss_after_mib": round(after, 1),
            "python_peak_mib": round(python_peak, 2), "selects": counted["selects"], "subject": subject}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--build", action="store_true", help="build the store (a new file)")
    parser.add_argument("--leads", type=int, default=200_000)
    args = parser.parse_args(argv)
    if args.build:
        if Path(args.db).exists():
            sys.exit(f"{args.db} exists: remove it first")
        store = Store.from_url(args.db)
        build(store, args.leads)
        print(f"built {args.leads:,} queued hand-offs in {args.db}")
        return 0
    store = Store.from_url(args.db)
    print(run(store))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
