"""A lead rescored twice in one millisecond, the lifecycle runner evaluating between the two saves: the
runner finds rescored leads by their scoring time (``claim_dirty``), so the second save, stamped with
the time the runner already saw, must still be evaluated (a clock that stands still, or steps back to a
time already used, stamps it so too). ``scoring.run.now_ms`` is the one reading of now, so the clock is
held there, as tests/test_truth_harness.py drives it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import Connection, select, text

from leadscore.lifecycle import runner
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring import run
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.people import find_lead
from leadscore.store.results import read_current
from leadscore.store.schema import outbox
from lifecycle_model import DAY, MODEL, T0, model, person, points, send, settings

NOW = T0 + DAY


class _Clock:
    """``time`` as ``scoring.run`` sees it: held at ``at``, the rest of the module as it is."""

    def __init__(self, at: int) -> None:
        self.at = at

    def time(self) -> float:
        return self.at / 1000

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture
def clock(store: Store, monkeypatch: pytest.MonkeyPatch) -> _Clock:
    held = _Clock(NOW)
    monkeypatch.setattr(run, "time", held)
    publish(store, model())
    return held


def _stages(store: Store, user: str) -> list[str]:
    with store.connect() as conn:
        lead = find_lead(conn, external_id=user)
        assert lead is not None
        return [h["to_stage"] for h in read_stage_history(conn, lead)]


def _score(store: Store, user: str) -> float:
    with store.connect() as conn:
        lead = find_lead(conn, external_id=user)
        assert lead is not None
        current, _ = read_current(conn, lead)
        assert current is not None
        return float(current["score"])


def _round(store: Store, clock: _Clock) -> None:
    run_round(store, settings(), now_ms=clock.at, deliver=False)


def test_second_save_in_the_runners_millisecond_is_evaluated(store: Store, clock: _Clock) -> None:
    # 65 points (grade B by title): qualified (score ≥ 60) at the first round
    send(store, [person("ann"), *points("ann", 65)])
    _round(store, clock)
    assert _stages(store, "ann") == ["lead", "mql"]
    # 20 points less, saved in the same millisecond: 45 is below 60 − 5 (hysteresis), so cooled
    send(store, points("ann", -20))
    assert _score(store, "ann") == 45
    _round(store, clock)
    assert _stages(store, "ann") == ["lead", "mql", "lead"]


# the gate to MQL reads a second named score, ``product``: a point per Plus, fit none
GATED = MODEL.replace(
    "- {id: qualified, from: [lead], to: mql, when: {score_at_least: 60, grade_at_least: B}}",
    "- {id: qualified, from: [lead], to: mql, when: {score: product, score_at_least: 60}}",
)
PRODUCT = """
model: product
engagement:
  - {id: plus, name: Showed interest, event: {type: track, name: Plus}, points: 1}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
"""


def test_a_score_saved_alone_in_the_runners_millisecond_is_evaluated(store: Store, clock: _Clock) -> None:
    """One named score saved in the millisecond the runner saw another one's save: the lead's newest
    scoring time is the one the runner saw, yet the gate reads the score just saved."""
    publish(store, loads_model(GATED))
    send(store, [person("ann"), *points("ann", 65)])
    _round(store, clock)
    assert _stages(store, "ann") == ["lead"]  # no product score yet: the gate does not pass
    publish(store, loads_model(PRODUCT), score_name="product")  # ann's product score: 65
    with store.connect() as conn:
        lead = find_lead(conn, external_id="ann")
        assert lead is not None
        current, _ = read_current(conn, lead, "product")
    assert current is not None and current["score"] == 65
    _round(store, clock)
    assert _stages(store, "ann") == ["lead", "mql"]


def _waiting_or_done(conn: Connection, done: threading.Event) -> None:
    """Return once the saving thread has committed (``done``) or waits for the runner's transaction on
    ``conn`` (PostgreSQL: one of its locks; SQLite: the runner holds the write lock from its first statement,
    so the save can only wait for its commit, and the seam returns at once)."""
    if conn.dialect.name != "postgresql":
        return
    runner = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    waiting = text(
        "SELECT count(*) FROM pg_stat_activity WHERE CAST(:pid AS INT) = ANY(pg_blocking_pids(pid))"
    )
    with conn.engine.connect() as watch:
        for _ in range(6000):  # a minute at most: a hang says the seam is wrong, not the code under test
            if done.wait(0.01):
                return
            blocked = watch.execute(waiting, {"pid": runner}).scalar_one()
            watch.rollback()  # pg_stat_activity is read once a transaction
            if blocked:
                return
    pytest.fail("the concurrent save neither committed nor waited for the runner")


def test_a_save_committed_while_the_runner_evaluates_is_evaluated(
    store: Store, clock: _Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another writer saves a lead's score in the millisecond the runner read, after the runner claimed and
    read the lead and before it marks it seen (a processor beside the runner on PostgreSQL): the lead's
    newest scoring time is then the one the runner marks seen, yet the runner evaluated the score before."""
    send(store, [person("ann"), *points("ann", 50)])  # 50: below the MQL gate (60)
    errors: list[BaseException] = []
    done = threading.Event()

    def save() -> None:
        try:
            send(store, points("ann", 25))  # 75: qualified, and hot (band ≥ 70), in the same millisecond
        except BaseException as e:  # re-raised in the test's thread
            errors.append(e)
        finally:
            done.set()

    saver = threading.Thread(target=save)
    real = runner.mark_seen

    def seam(conn: Connection, *args: Any) -> None:
        if not saver.is_alive() and not done.is_set():
            saver.start()
            _waiting_or_done(conn, done)
        real(conn, *args)

    monkeypatch.setattr(runner, "mark_seen", seam)
    _round(store, clock)
    saver.join()
    assert not errors, errors
    assert _score(store, "ann") == 75
    assert _stages(store, "ann") == ["lead"]  # the round read 50
    monkeypatch.setattr(runner, "mark_seen", real)
    _round(store, clock)
    assert _stages(store, "ann") == ["lead", "mql"]
    with store.connect() as conn:
        actions = sorted(r[0] for r in conn.execute(select(outbox.c.action)))
    # the move's manager alert and the assignment's mail (lifecycle_model.MODEL), the hot crossing and the hot
    # segment's entry once
    assert actions == ["hot_crossing", "manager_alert", "segment_hot", "seller_mail"]
