"""Migration 0029gk: an account's group key (``accounts.group_key``, unique, indexed), taken by existing
accounts from the group id they stored under ``attributes.group_id``: the first account by id of each key
(a second with the same key keeps it as an attribute only), a number as its text, none where there is
none or it is not a text or number; every account and its attributes kept, each way."""

from __future__ import annotations

import json

from sqlalchemy import inspect, text

from leadscore.store import Store
from migration_steps import migrate

ROWS = [  # id, attributes (JSON text)
    (1, '{"group_id": "acme", "seats": 10}'),
    (2, '{"group_id": "globex"}'),
    (3, '{"group_id": "acme"}'),  # the key of account 1: stays an attribute only
    (4, '{"group_id": 42}'),
    (5, "{}"),
    (6, '{"group_id": {"nested": 1}}'),
]


def _accounts(store: Store) -> list[tuple[int, str | None]]:
    with store.engine.connect() as conn:
        return [(int(i), k) for i, k in conn.execute(text("SELECT id, group_key FROM accounts ORDER BY id"))]


def test_existing_accounts_take_their_group_ids(store: Store) -> None:
    migrate(store, "downgrade", "0028pl")
    with store.engine.begin() as conn:
        assert "group_key" not in {c["name"] for c in inspect(conn).get_columns("accounts")}
        for account_id, attributes in ROWS:
            conn.execute(
                text("INSERT INTO accounts (id, domain, name, attributes, created_ms, updated_ms) "
                     "VALUES (:id, :d, :d, :a, 0, 0)"),
                {"id": account_id, "d": f"a{account_id}.example", "a": attributes},
            )  # fmt: skip
    migrate(store, "upgrade", "heads")
    assert _accounts(store) == [(1, "acme"), (2, "globex"), (3, None), (4, "42"), (5, None), (6, None)]
    with store.engine.connect() as conn:
        indexes = {i["name"]: i for i in inspect(conn).get_indexes("accounts")}
        seats = conn.execute(text("SELECT attributes FROM accounts WHERE id = 1")).scalar()
    assert indexes["ix_accounts_group_key"]["column_names"] == ["group_key"]
    assert indexes["ix_accounts_group_key"]["unique"]
    assert indexes["ix_accounts_name"]["column_names"] == ["name"]
    assert (seats if isinstance(seats, dict) else json.loads(seats)) == {
        "group_id": "acme",
        "seats": 10,
    }
    migrate(store, "downgrade", "0028pl")
    with store.engine.connect() as conn:
        assert "group_key" not in {c["name"] for c in inspect(conn).get_columns("accounts")}
        assert conn.execute(text("SELECT count(*) FROM accounts")).scalar() == 6
    migrate(store, "upgrade", "heads")
    assert _accounts(store)[:2] == [(1, "acme"), (2, "globex")]
