"""Migration 0030ts: ``tracking_suppressions`` (peppered hashes of the identity keys of people erased with
``--suppress``) is a new, empty table with its two indexes; downgrading drops it, and the rest stays."""

from __future__ import annotations

from sqlalchemy import inspect, text

from leadscore.store import Store
from migration_steps import migrate


def _tables(store: Store) -> set[str]:
    with store.engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def test_the_table_comes_and_goes(store: Store) -> None:
    assert "tracking_suppressions" in _tables(store)
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO tracking_suppressions VALUES ('h1', 'person:1', NULL, 0)"))
    migrate(store, "downgrade", "0029gk")
    assert "tracking_suppressions" not in _tables(store) and "mail_suppressions" in _tables(store)
    migrate(store, "upgrade", "heads")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM tracking_suppressions")).scalar() == 0
        indexes = {i["name"] for i in inspect(conn).get_indexes("tracking_suppressions")}
    assert indexes == {"ix_tracking_suppressions_person", "ix_tracking_suppressions_email_hash"}
