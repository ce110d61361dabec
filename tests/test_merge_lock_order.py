"""An alias merging lead G into lead K (``store/lead_merge.py``) beside a clock tick saving G's score
(``scoring/clock.py``: the lead lock, then ``scores``, then ``FOR KEY SHARE`` on G's stage row,
``lifecycle_tables.rescored``). The merge writes G's stage row before it deletes G's scores: unless it
waits for the lead lock first, the two take the same rows in opposite orders and PostgreSQL aborts one
(``deadlock detected``). Run together for a bounded number of rounds, neither may fail, no deadlock may be
counted, and every merged lead's point reaches the kept lead (lifecycle_model.MODEL: a point a Plus)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select, text, update

from leadscore.lifecycle.runner import run_round
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import read_current
from leadscore.store.schema import leads, scores
from lifecycle_model import model, person, points, send, settings

ROUNDS = 6
PER_ROUND = 8


def _deadlocks(store: Store) -> int:
    if store.dialect != "postgresql":
        return 0
    with store.connect() as conn:
        query = text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
        return int(conn.execute(query).scalar_one())


def test_merges_beside_ticks_saving_the_merged_leads_neither_fail_nor_deadlock(store: Store) -> None:
    publish(store, model())
    send(store, [person("kay"), *points("kay", 2)])
    before = _deadlocks(store)
    errors: list[BaseException] = []
    for r in range(ROUNDS):
        users = [f"g{r}-{i}" for i in range(PER_ROUND)]
        send(store, [m for u in users for m in (person(u), *points(u, 1))])
        run_round(store, settings(), deliver=False)  # each G has a stage row now
        with store.begin() as conn:
            ids = [find_lead(conn, external_id=u) for u in users]
            conn.execute(update(scores).where(scores.c.lead_id.in_(ids)).values(due_ms=0))  # due now

        def merges(users: list[str] = users) -> None:
            for u in users:
                send(store, [{"type": "alias", "previousId": "kay", "userId": u, "messageId": f"a-{u}"}])

        def ticks() -> None:
            for _ in range(PER_ROUND):
                tick(store)

        def loop(work: Callable[[], None]) -> None:
            try:
                work()
            except BaseException as e:  # re-raised in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=loop, args=(w,)) for w in (merges, ticks)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert not errors, errors
    assert _deadlocks(store) - before == 0
    with store.connect() as conn:
        kay = find_lead(conn, external_id="kay")
        assert kay is not None
        current, _ = read_current(conn, kay)
        assert current is not None
        # kay's 2 points and one from each merged lead
        assert float(current["score"]) == 2 + ROUNDS * PER_ROUND
        assert len(conn.execute(select(leads.c.id)).all()) == 1  # every G merged into kay
