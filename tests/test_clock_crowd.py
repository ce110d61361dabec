"""The clock's tick over a crowded account reads the account once a read, not once per chunk it saves: the
due colleagues are rescored on one read snapshot (up to ``clock.READ`` of them) and saved a chunk at a
time, so the tick costs the account's size, not its size times its chunks (bench/README.md, the clock tick
over a crowded account: 20,000 colleagues were 198 chunks, each sweeping all 20,000 people's events). A
writer that changes a lead between the read and its chunk's write wins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, select, update

from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import load_model
from leadscore.scoring import clock, pipeline
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import score_history, scores

NOW = parse_time("2024-06-01T00:00:00Z", "now")
DAY = 86_400_000
COMMITTEE = Path(__file__).resolve().parent / "models" / "committee.yaml"  # 40 each: 2+ probed in 30 days
PEOPLE = [f"p{i}" for i in range(12)]


def _crowd(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """p0 … p11 of y.com (more than ``COLLEAGUES_NOW``, 2 here); p0 probed two days ago (one person: 0 for
    all), p1 yesterday: p1 is scored at once (40), the 11 others are left due for the clock at p1's probe."""
    monkeypatch.setattr(pipeline, "COLLEAGUES_NOW", 2)
    publish(store, load_model(COMMITTEE), as_of=NOW)
    first = [{"type": "group", "userId": p, "groupId": "y", "messageId": f"g{p}", "timestamp": NOW - 3 * DAY,
              "traits": {"domain": "y.com"}} for p in PEOPLE]  # fmt: skip
    first.append(
        {"type": "track", "userId": "p0", "event": "Probe", "messageId": "t0", "timestamp": NOW - 2 * DAY}
    )
    probe = [{"type": "track", "userId": "p1", "event": "Probe", "messageId": "t1", "timestamp": NOW - DAY}]
    for batch in (first, probe):
        ingest(store, [normalise(m, received_ms=NOW) for m in batch], source="test", as_of=NOW)


def _scores(store: Store) -> dict[str, tuple[float, Any]]:
    with store.connect() as conn:
        ids = {find_lead(conn, external_id=p): p for p in PEOPLE}
        rows = conn.execute(select(scores.c.lead_id, scores.c.score, scores.c.scored_ms)).all()
    return {ids[lead]: (score, scored) for lead, score, scored in rows}


def test_a_crowded_accounts_tick_reads_the_account_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 11 due colleagues saved 3 a chunk: 4 write transactions, but the account's events are swept by
    one scoring statement (its ``sweep_stream``) and one window-changes statement (``change_accounts``),
    and the history rows' scoring as known sweeps it once more: 2 sweeps and 1 changes statement (the
    tick read them once per chunk before: 8 and 4). Every one of the 12 then has 40 (p0 and p1 probed
    within 30 days), the 11 with a history row of cause ``time``."""
    _crowd(store, monkeypatch)
    monkeypatch.setattr(clock, "SQLITE_CHUNK", 3)
    monkeypatch.setattr(clock, "CHUNK", 3)
    seen: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        seen.append(statement)

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        stats = tick(store, now=NOW)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert (stats.leads, stats.transactions) == (11, 4)
    assert sum("sweep_stream" in s for s in seen) == 2
    assert sum("change_accounts" in s for s in seen) == 1
    assert {p: s for p, (s, _) in _scores(store).items()} == dict.fromkeys(PEOPLE, 40.0)
    with store.connect() as conn:
        causes = (
            conn.execute(select(score_history.c.cause).where(score_history.c.at_ms == NOW)).scalars().all()
        )
    assert causes == ["time"] * 11


def test_a_lead_rescored_between_the_tick_s_read_and_its_write_keeps_its_score(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A processor rescores p5 (here: its stored score row changed to 7, scored at 12345, due in ten days)
    after the tick read the due leads and before it saves them: the tick leaves p5's row as that writer
    left it and saves the 10 others (40 each)."""
    _crowd(store, monkeypatch)
    planned = clock._plan

    def then_a_processor(*args: Any) -> Any:
        out = planned(*args)
        with store.begin() as conn:
            p5 = find_lead(conn, external_id="p5")
            conn.execute(update(scores).where(scores.c.lead_id == p5)
                         .values(score=7.0, scored_ms=12_345, due_ms=NOW + 10 * DAY))  # fmt: skip
        return out

    monkeypatch.setattr(clock, "_plan", then_a_processor)
    stats = tick(store, now=NOW)
    assert stats.leads == 10
    got = _scores(store)
    assert got.pop("p5") == (7.0, 12_345)
    assert {p: s for p, (s, _) in got.items()} == dict.fromkeys(got, 40.0)
