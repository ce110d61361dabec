"""Score saves hold their leads' stage rows (``lifecycle_tables.rescored``: ``FOR KEY SHARE`` on
PostgreSQL) while others lock the same rows in their own order: the runner's claims (``FOR UPDATE SKIP
LOCKED``), a manager's reassignment (``FOR UPDATE``), an alias merging a lead into one being rescored, and
two processors saving the same two leads from batches in opposite order. Run together for a bounded
number of rounds, none may fail (a deadlock aborts one of them on PostgreSQL) and no event may be lost
or counted twice: every Plus is one point (lifecycle_model.MODEL: engagement only, a point a Plus)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import suppress

from sqlalchemy import select

from leadscore.errors import LeadscoreError
from leadscore.lifecycle.feedback import reassign
from leadscore.lifecycle.runner import run_round
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import read_current
from leadscore.store.schema import leads
from lifecycle_model import model, person, points, send, settings

ROUNDS = 8


def _score(store: Store, user: str) -> float:
    with store.connect() as conn:
        lead = find_lead(conn, external_id=user)
        assert lead is not None
        current, _ = read_current(conn, lead)
        assert current is not None
        return float(current["score"])


def test_saves_beside_claims_reassignments_and_merges_neither_fail_nor_lose_points(store: Store) -> None:
    publish(store, model())
    send(store, [person("ann"), *points("ann", 65), person("bob"), *points("bob", 65)])
    run_round(store, settings(), deliver=False)  # both qualified (65 ≥ 60): MQL, assigned in EMEA
    with store.connect() as conn:
        ann = find_lead(conn, external_id="ann")
    assert ann is not None
    errors: list[BaseException] = []

    def ann_then_bob() -> None:
        send(store, [*points("ann", 1), *points("bob", 1)])

    def bob_then_ann() -> None:
        send(store, [*points("bob", 1), *points("ann", 1)])

    def runner() -> None:
        run_round(store, settings(), deliver=False)

    sellers = ["lena", "paul", "ines"]

    def manager(i: int) -> None:
        with suppress(LeadscoreError):  # already hers, moved meanwhile: refusals, not failures
            reassign(store, model(), ann, sellers[i % 3], by="Tom", settings=settings(), now_ms=0)

    def merge(i: int) -> None:
        anon = f"anon-{i}"
        send(store, [{"type": "track", "event": "Plus", "anonymousId": anon, "messageId": f"m-{anon}"}])
        send(store, [{"type": "alias", "previousId": anon, "userId": "bob", "messageId": f"a-{anon}"}])

    def loop(work: Callable[[int], None]) -> None:
        try:
            for i in range(ROUNDS):
                work(i)
        except BaseException as e:  # re-raised in the test's thread
            errors.append(e)

    works: list[Callable[[int], None]] = [
        lambda i: ann_then_bob(),
        lambda i: bob_then_ann(),
        lambda i: runner(),
        manager,
        merge,
    ]
    threads = [threading.Thread(target=loop, args=(w,)) for w in works]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    # ann: 65 and a Plus from each of two processors a round; bob: the same, and each merged lead's Plus
    assert _score(store, "ann") == 65 + 2 * ROUNDS
    assert _score(store, "bob") == 65 + 3 * ROUNDS
    with store.connect() as conn:
        assert len(conn.execute(select(leads.c.id)).all()) == 2  # every anonymous lead merged
