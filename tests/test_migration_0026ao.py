"""Migration 0026ao: an account owner per account and team (``account_owners`` keyed by both, so sticky
accounts are per team), and a health alert's check up to 100 characters (``volume:NAME``). Every owner row
is kept; downgrading keeps each account's first owner."""

from __future__ import annotations

from sqlalchemy import inspect, text

from leadscore.store import Store
from migration_steps import migrate


def _key(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(inspect(conn).get_pk_constraint("account_owners")["constrained_columns"])


def _owners(store: Store) -> list[tuple[int, str, str, int]]:
    with store.engine.connect() as conn:
        rows = conn.execute(text("SELECT account_id, team, seller, at_ms FROM account_owners ORDER BY 1, 2"))
        return [(int(a), str(t), str(s), int(at)) for a, t, s, at in rows]


def test_owners_are_kept_per_account_and_team(store: Store) -> None:
    migrate(store, "downgrade", "0025c")
    assert _key(store) == ["account_id"]
    with store.engine.begin() as conn:
        for account in (1, 2):
            conn.execute(text("INSERT INTO accounts (id, domain, name, attributes, created_ms, updated_ms) "
                              "VALUES (:id, :d, :d, '{}', 0, 0)"), {"id": account, "d": f"a{account}.example"})  # fmt: skip
        conn.execute(
            text("INSERT INTO account_owners VALUES (1, 'sam', 'core', 10), (2, 'ada', 'analytics', 20)")
        )
    migrate(store, "upgrade", "heads")
    assert sorted(_key(store)) == ["account_id", "team"]
    assert _owners(store) == [(1, "core", "sam", 10), (2, "analytics", "ada", 20)]
    with store.engine.begin() as conn:  # a second team's owner of account 1, and a long alert name
        conn.execute(text("INSERT INTO account_owners VALUES (1, 'ada', 'analytics', 30)"))
        conn.execute(text("INSERT INTO alerts (\"check\", raised_ms, value, threshold, message) "
                          "VALUES (:c, 0, 1, 1, 'm')"), {"c": "calibration:" + "s" * 63})  # fmt: skip
    assert _owners(store) == [
        (1, "analytics", "ada", 30),
        (1, "core", "sam", 10),
        (2, "analytics", "ada", 20),
    ]
    migrate(store, "downgrade", "0025c")
    assert _key(store) == ["account_id"]
    assert _owners(store) == [(1, "core", "sam", 10), (2, "analytics", "ada", 20)]  # each one's first
    migrate(store, "upgrade", "heads")
