"""``learn.labels.data_end``: the newest event (read per event type from the index) or outcome."""

from __future__ import annotations

from sqlalchemy import insert

from leadscore.learn.labels import data_end
from leadscore.store import Store
from leadscore.store.schema import events


def test_the_newest_event_of_any_type(store: Store) -> None:
    with store.connect() as conn:
        assert data_end(conn) == 0  # nothing yet
    # by hand: the newest is the track at 9,000 (the page at 5,000 and the identify at 7,000 are older)
    for number, (kind, ts) in enumerate(
        [("page", 5_000), ("track", 9_000), ("identify", 7_000), ("page", 1)]
    ):
        with store.begin() as conn:
            conn.execute(
                insert(events).values(
                    message_id=f"m{number}",
                    type=kind,
                    person_key="u:a",
                    properties={},
                    context={},
                    ts=ts,
                    received_ms=ts,
                    source="api",
                )
            )
    with store.connect() as conn:
        assert data_end(conn) == 9_000
