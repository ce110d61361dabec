"""What one person's identifies make the processor read, on SQLite and PostgreSQL: each identify in the
log is read (and parsed) at most once per batch, however many of the batch's messages fold the person's
set-once properties again (``ingest.set_once``).

A write key may send one person thousands of identifies (analytics.js identifies on every page), and a
message that removes a property (``$unset``), arrives older than what the lead has, or merges two leads
(an ``alias``) folds the person's properties again over every identify she has. Each such message read
and parsed all of them again: a batch of 500 cost 500 times her identifies, so her n-th identify cost
n times the first one (a batch of 500 out-of-order identifies of a person with 3,000 held SQLite's write
lock 25 CPU-s; 1,200 aliases chaining 1,200 leads 16 CPU-s against 0.3 for as many page views). Counted
here as calls of ``set_once.logged`` (one per identify read from the log), never timed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from leadscore.ingest import set_once
from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.schema import leads

T = 1_780_000_000_000
N = 60


def _batch(store: Store, messages: list[dict[str, Any]]) -> None:
    committer = GroupCommitter(store).start()
    try:
        committer.submit([event_row(normalise(m, received_ms=T), "api") for m in messages]).result()
    finally:
        committer.stop()
    assert process_pending(store, limit=len(messages)) == len(messages)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The message ids of the identifies read from the log by the set-once fold, one per read."""
    seen: list[str] = []
    real = set_once.logged

    def counted(ts: int, message_id: str, context: Any) -> set_once.Said:
        seen.append(message_id)
        return real(ts, message_id, context)

    monkeypatch.setattr(set_once, "logged", counted)
    yield seen


def _identify(i: int, ts: int, **context: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": "u", "messageId": f"m{i}", "timestamp": ts,
            "traits": {"title": f"t{i}"}, "context": context}  # fmt: skip


@pytest.mark.parametrize(
    ("second", "title"),
    [
        # each older than every identify she has (the fold runs at each): the first batch's newest stands,
        # m59 at T - 5 min + 59 ms
        pytest.param(lambda i: _identify(N + i, T - 10 * 60_000 - i), "t59", id="older"),
        # each newer and removing a property (the fold runs at each): the newest, m119 at T + 59 ms
        pytest.param(lambda i: _identify(N + i, T + i, traits_unset=["plan"]), "t119", id="unset"),
    ],
)
@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_a_batch_reads_each_logged_identify_once(
    store: Store, reads: list[str], second: Any, title: str
) -> None:
    _batch(store, [_identify(i, T - 5 * 60_000 + i) for i in range(N)])
    reads.clear()
    _batch(store, [second(i) for i in range(N)])
    # she has 2 N identifies, each read at most once (the old code: N reads of up to 2 N each, >= N²)
    assert len(reads) == len(set(reads)) <= 2 * N, (len(reads), len(set(reads)))
    with store.engine.connect() as conn:
        # a title trait is the canonical attribute job_title
        assert conn.execute(select(leads.c.attributes)).scalar_one()["job_title"] == title


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_an_alias_chain_reads_each_identify_once(store: Store, reads: list[str]) -> None:
    _batch(store, [_identify(i, T - 5 * 60_000) | {"userId": f"c{i}"} for i in range(N)])
    reads.clear()
    # c0 → c1 → … → c59: each alias merges the chain so far into the next lead
    _batch(store, [{"type": "alias", "previousId": f"c{i}", "userId": f"c{i + 1}", "messageId": f"a{i}",
                    "timestamp": T - 60_000 + i} for i in range(N - 1)])  # fmt: skip
    assert len(reads) == len(set(reads)) <= N, (len(reads), len(set(reads)))
    with store.engine.connect() as conn:
        assert len(conn.execute(select(leads.c.id)).scalars().all()) == 1


@pytest.mark.parametrize("store", ["sqlite", "postgresql"], indirect=True)
def test_an_alias_chain_reads_each_person_key_once(store: Store) -> None:
    """The fold after each merge read every person key of the merged lead again: the chain's i-th alias
    read about 2 i keys (its user ids and the merged leads' ids), a batch of n aliases n² of them."""
    _batch(store, [_identify(i, T - 5 * 60_000) | {"userId": f"c{i}"} for i in range(N)])
    keys: list[int] = []

    def counted(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        # a lead's person keys, searched by lead (SQLite quotes "key"): how many rows the statement read
        if statement.replace('"', "").startswith(
            "SELECT identities.key \nFROM identities \nWHERE identities.lead_id = "
        ):
            lead_id = int(next(iter(parameters.values())) if isinstance(parameters, dict) else parameters[0])
            count = cursor.connection.cursor()
            count.execute(f"SELECT count(*) FROM identities WHERE lead_id = {lead_id}")
            keys.append(int(count.fetchone()[0]))

    event.listen(
        Engine, "after_cursor_execute", counted
    )  # every engine of the store (SQLite: its writer too)
    try:
        _batch(store, [{"type": "alias", "previousId": f"c{i}", "userId": f"c{i + 1}", "messageId": f"a{i}",
                        "timestamp": T - 60_000 + i} for i in range(N - 1)])  # fmt: skip
    finally:
        event.remove(Engine, "after_cursor_execute", counted)
    # the person has N user ids and N - 1 merged leads' ids: each read about once (was about N² = 3,600)
    assert 0 < sum(keys) <= 3 * N, (sum(keys), len(keys))
