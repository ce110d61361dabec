"""store.pipelined: writes sent together read back as sent, and errors surface as SQLAlchemy's, on both
engines."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from leadscore.store import Store
from leadscore.store.bulk import insert_rows
from leadscore.store.pipelined import pipelined
from leadscore.store.schema import counters


def _values(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return {str(n): int(v) for n, v in conn.execute(select(counters.c.name, counters.c.value)).all()}


def test_rows_returned_are_those_before_the_writes_sent_after(store: Store) -> None:
    with store.begin() as conn:
        insert_rows(conn, counters, [{"name": "a", "value": 1}, {"name": "b", "value": 2}])
    with store.begin() as conn, pipelined(conn) as pipeline:
        gone = pipeline.returning(
            delete(counters).where(counters.c.name == "a").returning(counters.c.name, counters.c.value), {}
        )
        insert_rows(conn, counters, [{"name": "a", "value": 10}, {"name": "c", "value": 3}])
        conn.execute(delete(counters).where(counters.c.name == "b"))
        assert list(gone) == [{"name": "a", "value": 1}]
    assert _values(store) == {"a": 10, "c": 3}


def test_an_error_in_the_pipeline_is_sqlalchemys_and_rolls_the_transaction_back(store: Store) -> None:
    with store.begin() as conn:
        insert_rows(conn, counters, [{"name": "a", "value": 1}])
    with pytest.raises(IntegrityError), store.begin() as conn, pipelined(conn):
        insert_rows(conn, counters, [{"name": "b", "value": 2}])
        insert_rows(conn, counters, [{"name": "a", "value": 5}])  # the key exists
        insert_rows(conn, counters, [{"name": "c", "value": 3}])
    assert _values(store) == {"a": 1}
