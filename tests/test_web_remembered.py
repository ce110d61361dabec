"""Reports remembered per state of the tables they read (``web/data/remembered.py``): the same state gives
the remembered result without computing it again; an insert or a delete in a table it reads computes it
again, so a page never shows a number a fresh computation would not give."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, func, select, update

from leadscore.lifecycle import reports
from leadscore.lifecycle.runner import run_round
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.schema import leads, stage_history
from leadscore.web.data.remembered import forget, remembered
from lifecycle_model import DAY, T0, model, person, send, settings


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
