"""When time next changes a score (``compile/changes.py``, read by ``scoring/due.py`` for every lead a
batch or the clock rescores) reaches each person's events through the (person_key, ts) index on SQLite,
as the scoring query does (``dialects.NotIndexed``), for rules of the lead's events and of the account's.

The type test in the join could take the (type, ts, path) index instead (migration 0025c), SQLite's choice
for an account-scope rule: every event of the rule's type in the look-back, once per target and colleague.
An account a write key filled with 800 people who sent one event each made a clock tick over 500 of them
take 23.0 CPU-s, growing with the cube of the account; 0.88 with the person's index."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.due import schedule
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import score_leads
from leadscore.store import Store

LEAD = """
model: lead-changes
engagement:
  - {id: pricing, name: Pricing views, kind: threshold, event: {type: page}, where: {property: path, prefix: /pricing},
     at_least: 2, within: 7d, points: 10}
  - {id: trial, name: Trial, kind: once, event: {type: track, name: Trial}, window: 30d, points: 5}
"""
ACCOUNT = """
model: account-changes
engagement:
  - {id: team, name: 2+ people of the account, kind: threshold, scope: account, event: {type: track, name: Probe},
     count: {distinct: person}, at_least: 2, within: 30d, points: 40}
"""


@pytest.mark.parametrize("text", [LEAD, ACCOUNT], ids=["lead", "account"])
def test_window_changes_use_the_person_index(tmp_path: Path, text: str) -> None:
    store = Store.from_url(str(tmp_path / "plan.db"))
    model = loads_model(text, "plan")
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        seen.append((statement, parameters))

    try:
        probe = {"type": "track", "userId": "ann", "event": "Probe", "messageId": "m1", "timestamp": 1_000}
        ingest(store, [normalise(probe, received_ms=1_000)], source="test")
        with store.connect() as conn:
            ledgers = score_leads(conn, model, store.sources(), [1], 1_000)
            event.listen(store.engine, "before_cursor_execute", keep)
            due = schedule(conn, model, store.sources(), ledgers)
            statement, params = next((s, p) for s, p in seen if "enter__" in s)
            plan = [row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)]
        on_events = [step for step in plan if "events" in step.split(" USING")[0]]
        assert on_events, plan
        assert all("ix_events_person_ts (person_key=?" in step for step in on_events), plan
        # her probe leaves the 30-day span (the account rule's) or is no Trial (the lead model's: none due)
        assert due == {1: 1_000 + 30 * 86_400_000 if text == ACCOUNT else None}
    finally:
        store.dispose()
