"""Reports remembered per state of the tables they read (``web/data/remembered.py``): the same state gives
the remembered result without computing it again; an insert or a delete in a table it reads computes it
again, so a page never shows a number a fresh computation would not give."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from leadscore.lifecycle import reports
from leadscore.lifecycle.runner import run_round
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.schema import audit_log, leads, stage_history
from leadscore.web.data import remembered as remembered_module
from leadscore.web.data.remembered import SIZE, Pending, forget, in_child, remembered, remembered_within
from lifecycle_model import DAY, T0, model, person, send, settings
from web_support import signed_in, site


def _entered(result: dict[str, Any], stage: str) -> int:
    return next(r["entered"] for r in result["stages"] if r["stage"] == stage)


def test_a_report_is_computed_again_exactly_when_its_table_changes(store: Store) -> None:
    forget()
    publish(store, model())
    send(store, [person("ann"), person("bob")])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)  # both identified: 'lead'
    lifecycle = model().lifecycle
    assert lifecycle is not None
    calls: list[int] = []

    def funnel() -> dict[str, Any]:
        with store.connect() as conn:

            def compute() -> dict[str, Any]:
                calls.append(1)
                return reports.funnel(conn, lifecycle)

            return remembered(conn, (stage_history,), "funnel", compute)

    first = funnel()
    assert _entered(first, "lead") == 2 and len(calls) == 1
    assert funnel() is first and len(calls) == 1  # nothing changed: not computed again
    send(store, [person("cat")])
    run_round(store, settings(), now_ms=T0 + 2 * DAY, deliver=False)
    grown = funnel()
    assert _entered(grown, "lead") == 3 and len(calls) == 2
    with store.begin() as conn:  # a deleted move (erasure deletes a person's, and audits it) is seen too
        oldest = conn.execute(select(func.min(stage_history.c.id))).scalar_one()
        conn.execute(delete(stage_history).where(stage_history.c.id == oldest))
        audit(conn, T0 + 3 * DAY, "test", "privacy.erase", "someone")
    assert _entered(funnel(), "lead") == 2 and len(calls) == 3
    assert funnel() is not first and len(calls) == 3
    # a lead updated in place (attributes from a CSV import) stamps updated_ms: a report reading leads
    # is computed again, one reading only the stage history is not
    computed: list[int] = []

    def by_leads() -> int:
        with store.connect() as conn:
            return remembered(conn, (leads,), "leads", lambda: computed.append(1) or len(computed))

    assert by_leads() == 1 and by_leads() == 1
    with store.begin() as conn:
        newest = conn.execute(select(func.max(leads.c.updated_ms))).scalar_one()
        conn.execute(update(leads).where(leads.c.id == 1).values(updated_ms=newest + 1))
    assert by_leads() == 2
    funnel()
    assert len(calls) == 3
    # another key (another lifecycle, another grouping) is its own entry
    with store.connect() as conn:
        other = remembered(conn, (stage_history,), "other", lambda: {"stages": []})
    assert other == {"stages": []} and len(calls) == 3


def test_a_remembered_refusal_is_raised_again_without_computing(store: Store) -> None:
    forget()
    calls: list[int] = []

    def refuse() -> None:
        calls.append(1)
        raise ValueError("not enough outcomes yet")

    with store.connect() as conn:
        for _ in range(2):
            with pytest.raises(ValueError, match="not enough outcomes"):
                remembered(conn, (stage_history,), "refusal", refuse, errors=(ValueError,))
    assert len(calls) == 1
    with store.connect() as conn, pytest.raises(KeyError):  # other exceptions are not remembered
        remembered(conn, (stage_history,), "boom", lambda: {}["missing"], errors=(ValueError,))


def test_results_on_another_shelf_never_push_a_report_out(store: Store) -> None:
    """The rule builder keeps a count per keystroke's condition on its own shelf: SIZE + 8 of them
    leave the dashboard's remembered report in place (not computed again)."""
    forget()
    calls: list[int] = []

    def report() -> int:
        with store.connect() as conn:
            return remembered(conn, (stage_history,), "report", lambda: calls.append(1) or 41)

    assert report() == 41 and calls == [1]
    for n in range(SIZE + 8):
        with store.connect() as conn:
            assert remembered_within(conn, (), ("count", n), lambda n=n: n * 2, 30, shelf="counts") == n * 2
    assert report() == 41 and calls == [1]  # still remembered
    for n in range(SIZE + 8):  # the same shelf keeps its newest SIZE; a report pushes its own kind out
        with store.connect() as conn:
            remembered(conn, (stage_history,), ("other report", n), lambda n=n: n)
    assert report() == 41 and calls == [1, 1]  # pushed out by SIZE + 8 other reports: computed again


def test_a_long_computation_runs_in_the_background_and_its_result_comes_later(store: Store) -> None:
    forget()
    publish(store, model())
    send(store, [person("ann"), person("bob")])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)
    lifecycle = model().lifecycle
    assert lifecycle is not None
    release = threading.Event()
    calls: list[int] = []

    def compute() -> dict[str, Any]:  # the funnel, held back until the test lets it go
        calls.append(1)
        release.wait(30)
        with store.connect() as conn:
            return reports.funnel(conn, lifecycle)

    def ask(wait_s: float) -> Any:
        with store.connect() as conn:
            return remembered_within(conn, (stage_history,), "slow funnel", compute, wait_s)

    first = ask(0.05)
    assert isinstance(first, Pending)  # the caller did not wait for it
    again = ask(30)  # under way: not waited for again
    assert isinstance(again, Pending) and again.started_ms == first.started_ms  # the same computation
    release.set()
    done = ask(0)
    for _ in range(300):  # until the background computation is done (at most 30 s)
        if not isinstance(done, Pending):
            break
        time.sleep(0.1)
        done = ask(0)
    assert not isinstance(done, Pending) and _entered(done, "lead") == 2  # ann and bob
    assert ask(0) is done and len(calls) == 1  # remembered: computed once for every call


def test_while_a_report_is_computed_again_its_previous_result_is_offered_with_its_time(store: Store) -> None:
    """With live tracking every event is a new state of the tables: a report of minutes would never be
    seen. While the new state's result is computed, ``Pending`` carries the newest finished result of the
    same report (and when it finished); never another report's."""
    forget()
    publish(store, model())
    send(store, [person("ann"), person("bob")])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)
    lifecycle = model().lifecycle
    assert lifecycle is not None
    release = threading.Event()
    release.set()

    def compute() -> dict[str, Any]:
        release.wait(30)
        with store.connect() as conn:
            return reports.funnel(conn, lifecycle)

    def ask(wait_s: float, key: str = "funnel") -> Any:
        with store.connect() as conn:
            return remembered_within(conn, (stage_history,), key, compute, wait_s)

    before_ms = int(time.time() * 1000)
    first = ask(30)
    assert not isinstance(first, Pending) and _entered(first, "lead") == 2  # ann and bob
    release.clear()
    send(store, [person("cat")])
    run_round(store, settings(), now_ms=T0 + 2 * DAY, deliver=False)  # a new state: cat entered 'lead'
    pending = ask(0.05)
    assert isinstance(pending, Pending)
    assert pending.previous is first and _entered(pending.previous, "lead") == 2  # the earlier state's
    assert pending.previous_ms is not None and before_ms <= pending.previous_ms <= pending.started_ms
    other = ask(0.05, key="another report")  # nothing finished under this key: nothing to offer
    assert isinstance(other, Pending) and other.previous is None and other.previous_ms is None
    release.set()
    done = ask(0)
    for _ in range(300):  # until the background computation is done (at most 30 s)
        if not isinstance(done, Pending):
            break
        time.sleep(0.1)
        done = ask(0)
    assert not isinstance(done, Pending) and _entered(done, "lead") == 3  # ann, bob and cat


def test_the_evaluation_page_shows_the_previous_numbers_with_their_time_while_new_ones_are_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadscore.web.data import measure

    forget()
    release = threading.Event()
    release.set()
    real = measure.evaluation

    def held_back(*args: Any, **kwargs: Any) -> Any:
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(measure, "evaluation", held_back)
    monkeypatch.setattr(remembered_module, "in_child", lambda fn, *args: fn(*args))
    monkeypatch.setenv("LEADSCORE_REPORT_WAIT_S", "0.05")
    with site(tmp_path) as demo, signed_in(demo.url, demo.email("marketing")) as client:
        for _ in range(600):  # the first evaluation, computed in full
            ready = client.get("/evaluation")
            if "being computed in the background" not in ready.text:
                break
            time.sleep(0.1)
        assert "Scored rows" in ready.text and "computed at" not in ready.text
        release.clear()
        with demo.store.begin() as conn:  # new data (an audited erasure changes every report's state)
            audit(conn, T0, "test", "privacy.erase", "someone")
        stale = client.get("/evaluation")
        assert stale.status_code == 200, stale.text
        # the earlier figures, said to be earlier, and the page asks for itself until the new ones are there
        assert "Scored rows" in stale.text and "These figures were computed at" in stale.text
        assert "a fresh evaluation started" in stale.text
        assert 'hx-get="/evaluation" hx-trigger="load delay:3s" hx-select="#main"' in stale.text
        release.set()
        for _ in range(600):
            fresh = client.get("/evaluation")
            if "These figures were computed at" not in fresh.text:
                break
            time.sleep(0.1)
    assert "Scored rows" in fresh.text and "These figures were computed at" not in fresh.text
    assert 'hx-trigger="load delay:3s"' not in fresh.text


def test_the_evaluation_page_says_when_its_numbers_are_still_being_computed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from leadscore.web.data import measure

    forget()
    release = threading.Event()
    real = measure.evaluation

    def held_back(*args: Any, **kwargs: Any) -> Any:  # the real evaluation, once the test lets it go
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(measure, "evaluation", held_back)
    # in this process, where the test holds it back (the server runs it in a worker process)
    monkeypatch.setattr(remembered_module, "in_child", lambda fn, *args: fn(*args))
    monkeypatch.setenv("LEADSCORE_REPORT_WAIT_S", "0.05")
    with site(tmp_path) as demo, signed_in(demo.url, demo.email("marketing")) as client:
        pending = client.get("/evaluation")
        assert pending.status_code == 200, pending.text
        assert "The evaluation is being computed in the background" in pending.text
        assert "Scored rows" not in pending.text
        # and it asks for itself again until the numbers are there
        assert 'hx-get="/evaluation" hx-trigger="load delay:3s" hx-select="#main"' in pending.text
        again = client.get("/evaluation")  # under way: the page does not wait for it again
        assert "The evaluation is being computed in the background" in again.text
        release.set()
        for _ in range(600):  # until the background computation is done (at most a minute)
            ready = client.get("/evaluation")
            if "being computed in the background" not in ready.text:
                break
            time.sleep(0.1)
    assert "being computed in the background" not in ready.text
    assert "Scored rows" in ready.text and "Captured by the top 10 %" in ready.text
    assert 'hx-trigger="load delay:3s"' not in ready.text


def test_an_evaluation_in_a_worker_process_is_the_one_computed_here(tmp_path: Path) -> None:
    """The server computes the evaluation in a worker process (``in_child``): the store opened from its URL
    and the model from its YAML give the very numbers the same function gives in this process."""
    from leadscore.scoring.pipeline import active_model
    from leadscore.web.data import measure
    from web_support import build

    store, _ = build(tmp_path, leads=40)
    try:
        with store.connect() as conn:
            active = active_model(conn)
        assert active is not None and active.version is not None
        label, yaml = active.version.label, active.version.yaml
        here = measure.evaluation(store, active.model, label, "opportunity")
        url = store.engine.url.render_as_string(hide_password=False)
        there = in_child(measure.evaluation_of, url, yaml, label, "opportunity")
        assert repr(there) == repr(here) and here.deciles
    finally:
        store.dispose()


def test_the_review_in_a_worker_process_is_the_one_computed_here(tmp_path: Path) -> None:
    """The model review's proposals (each backtested) come from a worker process too: the same as in this
    process, proposals or the reason there are none."""
    from leadscore.scoring.pipeline import active_model
    from leadscore.web.data import measure
    from leadscore.web.pages.review import proposals_of
    from web_support import build

    store, _ = build(tmp_path, leads=40)
    try:
        with store.connect() as conn:
            active = active_model(conn)
        assert active is not None and active.version is not None
        start, end = measure.period(store)
        args = (store.engine.url.render_as_string(hide_password=False), active.version.yaml,
                active.version.label, start, end, None, 5)  # fmt: skip

        def outcome(run: Any) -> str:
            try:
                return repr(run())
            except Exception as exc:  # the same refusal, where the data allows no review
                return f"{type(exc).__name__}: {exc}"

        here = outcome(lambda: proposals_of(*args))
        assert outcome(lambda: in_child(proposals_of, *args)) == here
        assert here.startswith(("Review(", "NotEnoughDataError", "LeadscoreError", "ValueError")), here[:200]
    finally:
        store.dispose()


def test_a_row_committed_after_one_with_a_larger_id_is_seen(store: Store) -> None:
    """PostgreSQL takes an id when a row is inserted, not when it commits: a writer that inserted first
    may commit after one that inserted later, so "the largest id" alone stayed the same while a row came
    into view, and the report computed before it was served again (stale). SQLite's writers are serial
    (its ids come in commit order): there the late writer cannot be held open beside another, and the
    test checks the plain order."""
    forget()

    def audited() -> int:
        with store.connect() as conn:

            def compute() -> int:
                return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())

            return remembered(conn, (), "audited", compute)

    if store.dialect != "postgresql":
        with store.begin() as conn:
            audit(conn, T0, "test", "first", "a")
        assert audited() == 1
        with store.begin() as conn:
            audit(conn, T0, "test", "second", "b")
        assert audited() == 2
        return
    early = store.engine.connect()
    try:
        early.begin()
        audit(early, T0, "test", "early", "a")  # id 1 taken, not committed
        with store.begin() as conn:
            audit(conn, T0, "test", "late", "b")  # id 2, committed
        assert audited() == 1  # the late row alone is in view
        early.commit()
    finally:
        early.close()
    assert audited() == 2  # both: not the result of the state before the early row came into view
