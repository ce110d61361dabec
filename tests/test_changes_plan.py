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


MIXED = """
model: mixed-changes
engagement:
  - {id: pricing, name: Pricing views, kind: threshold, event: {type: page}, where: {property: path, prefix: /pricing},
     at_least: 2, within: 7d, points: 10}
  - {id: team, name: 2+ people of the account, kind: threshold, scope: account, event: {type: track, name: Probe},
     count: {distinct: person}, at_least: 2, within: 30d, points: 40}
"""
DAY = 86_400_000


def test_window_changes_of_lead_and_account_rules_at_several_times(store: Store) -> None:
    """Hand-computed, with the account's events read once per account and as-of time (not per target and
    colleague): ann and bob of acme probed at days 1 and 5, cid (no account) at day 3; ann viewed pricing at
    day 8. An account probe leaves the 30 days at its day + 30, a pricing view the 7 days at its day + 7."""
    from leadscore.compile.changes import compile_changes, next_changes
    from leadscore.compile.ledger import columns_of
    from leadscore.scoring.run import points
    from leadscore.store.people import find_lead

    model = loads_model(MIXED, "mixed")

    def msg(user: str, i: int, day: float, **fields: Any) -> dict[str, Any]:
        return {"userId": user, "messageId": f"m{i}", "timestamp": int(day * DAY), **fields}

    probe = {"type": "track", "event": "Probe"}
    messages = [
        msg("ann", 1, 0.1, type="group", groupId="acme"),
        msg("bob", 2, 0.1, type="group", groupId="acme"),
        msg("ann", 3, 1, **probe),
        msg("bob", 4, 5, **probe),
        msg("cid", 5, 3, **probe),
        msg("ann", 6, 8, type="page", properties={"path": "/pricing"}),
    ]
    ingest(store, [normalise(m, received_ms=100 * DAY) for m in messages], source="test")
    with store.connect() as conn:
        ann, bob, cid = (find_lead(conn, external_id=u) for u in ("ann", "bob", "cid"))
        targets = [(ann, 10 * DAY), (bob, 10 * DAY), (cid, 10 * DAY), (ann, 32 * DAY), (bob, DAY // 2)]
        rows = conn.execute(compile_changes(model, store.sources(), points(targets)))
        found = columns_of(list(rows.keys()), rows.fetchall())
    got = dict(
        zip(zip(found["lead_id"], found["as_of"], strict=True), next_changes(model, found), strict=True)
    )
    assert got == {
        (ann, 10 * DAY): 15 * DAY,  # her pricing view leaves its 7 days before ann's probe leaves (day 31)
        (bob, 10 * DAY): 31 * DAY,  # ann's probe, his colleague's, leaves the 30 days
        (cid, 10 * DAY): 33 * DAY,  # alone: his own probe
        (ann, 32 * DAY): 35 * DAY,  # ann's probe has left; bob's leaves at day 35
        (bob, DAY // 2): 1 * DAY,  # ann's probe enters at day 1
    }


def _instructions(tmp_path: Path, people: int) -> int:
    """SQLite virtual-machine instructions (in thousands) of the window changes of ``people`` colleagues of
    one account who each probed once, as the clock's tick asks for them all at one time."""
    store = Store.from_url(str(tmp_path / f"crowd{people}.db"))
    model = loads_model(ACCOUNT, "crowd")
    messages = [
        m
        for i in range(people)
        for m in (
            {"type": "group", "userId": f"p{i}", "groupId": "y", "messageId": f"g{i}", "timestamp": 1_000},
            {
                "type": "track",
                "userId": f"p{i}",
                "event": "Probe",
                "messageId": f"t{i}",
                "timestamp": 2_000 + i,
            },
        )
    ]
    ingest(store, [normalise(m, received_ms=10_000) for m in messages], source="test")
    with store.connect() as conn:
        ledgers = score_leads(conn, model, store.sources(), list(range(1, people + 1)), 10_000)
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        raw = conn.connection.dbapi_connection
        raw.set_progress_handler(count, 1_000)
        try:
            due = schedule(conn, model, store.sources(), ledgers)
        finally:
            raw.set_progress_handler(None, 1_000)
    assert len(due) == people and all(d is not None for d in due.values())
    return steps[0]


def test_an_accounts_window_changes_grow_with_its_size_not_its_square(tmp_path: Path) -> None:
    """Every colleague's window changes of an account rule are the account's: read once per account and
    as-of time, the work doubles with the account (before: once per target and colleague, four times)."""
    small, large = _instructions(tmp_path, 100), _instructions(tmp_path, 200)
    assert large < 2.6 * small, (small, large)
