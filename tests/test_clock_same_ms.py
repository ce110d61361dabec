"""The clock rescores due leads on a read snapshot, then saves each chunk in a write transaction of its own,
keeping a lead only when its stored score is still the snapshot's (``scoring/clock.py: _tick_score``). A
processor save of the lead in between, stamped the millisecond of the save the snapshot read and leaving
the due time as it was, looked unchanged by ``(scored_ms, due_ms)`` alone: the clock then saved over it a
score computed without the event that save added. Both stores."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.model import loads_model
from leadscore.scoring import clock, run
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.schema import scores
from test_clock import DAY, QUIET, T0, current, lead_of, track
from test_lifecycle_same_ms import _Clock

# QUIET (tests/test_clock.py) and a pricing view worth 10 points for good: no window, no decay, so it
# never makes a lead due
PRICED = QUIET.replace(
    "scale:",
    "  - {id: pricing, name: Viewed pricing, event: {type: track, name: Pricing Viewed}, points: 10}\nscale:",
)
HELD = T0 + 5 * DAY  # every save's stamp


def test_a_same_ms_save_between_the_clocks_read_and_write_is_not_overwritten(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(run, "time", _Clock(HELD))
    publish(store, loads_model(PRICED), as_of=T0)
    ingest(store, [track("ann", 1, "Demo Requested", T0), track("ann", 2, "Webinar Joined", T0)], source="t")
    ann = lead_of(store, "ann")
    # as of HELD: demo 40 + webinar 40 = 80; the demo leaves its 10-day window first
    assert (current(store, ann)["score"], current(store, ann)["due_ms"]) == (80.0, T0 + 10 * DAY)
    real = clock.write_turn
    saved: list[int] = []

    @contextlib.contextmanager
    def seam(store_: Store) -> Iterator[Any]:
        if not saved:  # the processor saves ann after the clock's read, before its write
            ingest(store, [track("ann", 3, "Pricing Viewed", T0 + 4 * DAY)], source="t")
            saved.append(ann)
            # 90 as of HELD, stamped HELD, due still at the demo's exit: the clock's two values unchanged
            with store.connect() as conn:
                row = conn.execute(select(scores).where(scores.c.lead_id == ann)).mappings().one()
            assert (row["score"], row["scored_ms"], row["due_ms"]) == (90.0, HELD, T0 + 10 * DAY)
        with real(store_) as turn:
            yield turn

    monkeypatch.setattr(clock, "write_turn", seam)
    tick(store, now=T0 + 11 * DAY)
    # the processor's save stands (the clock leaves a lead another writer changed to the next read) ...
    assert (current(store, ann)["score"], saved) == (90.0, [ann])
    tick(store, now=T0 + 11 * DAY)
    # ... which, at T0 + 11 days, finds the demo out of its window: webinar 40 + pricing 10 = 50, next due
    # the webinar's exit (before: 40, the pricing view lost until then)
    row = current(store, ann)
    assert (row["score"], row["due_ms"]) == (50.0, T0 + 20 * DAY)
