"""Lists of ids bound as one parameter must still be looked up through the index, not by a scan."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.dialects import sqlite

from leadscore.store import Store
from leadscore.store.event_log import _CLAIMED, _DONE, _KNOWN, known_message_ids
from leadscore.store.results import _DELETE_LEDGER, _DELETE_SCORES, _STAMP, _STORED_SCORES


def test_sqlite_plans_use_the_index(tmp_path: Path) -> None:
    store = Store.from_url(str(tmp_path / "plans.db"))
    try:
        with store.connect() as conn:
            for statement in (
                _KNOWN,
                _CLAIMED,
                _DONE,
                _DELETE_SCORES,
                _STORED_SCORES,
                _STAMP,
                _DELETE_LEDGER,
            ):
                sql = str(statement.compile(dialect=sqlite.dialect()))
                assert " = 1" not in sql, sql  # a wrapped comparison no index can serve
                # the id list first, then any score name (statements of one named score)
                params = ("[]", *["primary"] * (sql.count("?") - 1))
                plan = " | ".join(r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
                assert "SEARCH" in plan and "SCAN events" not in plan and "SCAN inbox" not in plan, plan
            assert known_message_ids(conn, ["nope"]) == set()
    finally:
        store.dispose()
