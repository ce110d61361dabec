"""an account's group key (``accounts.group_key``, unique and indexed): the id a tracking client gives the
account (PostHog's ``$group_key``, Segment's ``groupId``), so a group message or an event naming its group
finds the account by one index search. Before, a group without a domain was found by its name, a search
no index served (a scan of every account per message) and wrong where two companies share a name. The
name is indexed too (``ix_accounts_name``): a group message with neither a key nor a domain, and a CSV
import's account without a domain, are still found by it.

Existing accounts take the group id they stored under ``attributes.group_id`` (the first account by id of
each key; a later one with the same key keeps it only as an attribute).

Revision ID: 0029gk
Revises: 0028pl
"""

import sqlalchemy as sa
from alembic import op

revision = "0029gk"
down_revision = "0028pl"
branch_labels = None
depends_on = None

BATCH = 2000
KEY_LENGTH = 255


def upgrade() -> None:
    op.add_column("accounts", sa.Column("group_key", sa.String(KEY_LENGTH)))
    bind = op.get_bind()
    table = sa.table(
        "accounts", sa.column("id", sa.Integer), sa.column("attributes", sa.JSON), sa.column("group_key")
    )
    taken: set[str] = set()
    keyed: list[dict[str, object]] = []
    for account_id, attributes in bind.execute(
        sa.select(table.c.id, table.c.attributes).order_by(table.c.id)
    ):
        key = attributes.get("group_id") if isinstance(attributes, dict) else None
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if isinstance(key, str) and key and len(key) <= KEY_LENGTH and key not in taken:
            taken.add(key)
            keyed.append({"row_id": account_id, "key": key})
    update = table.update().where(table.c.id == sa.bindparam("row_id")).values(group_key=sa.bindparam("key"))
    for start in range(0, len(keyed), BATCH):
        bind.execute(update, keyed[start : start + BATCH])
    op.create_index("ix_accounts_group_key", "accounts", ["group_key"], unique=True)
    op.create_index("ix_accounts_name", "accounts", ["name"])


def downgrade() -> None:
    op.drop_index("ix_accounts_name", table_name="accounts")
    op.drop_index("ix_accounts_group_key", table_name="accounts")
    # a plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+): a batch would recreate accounts, which SQLite
    # refuses to drop while leads reference it (tests/test_migration_0026ao.py downgrades with leads)
    op.drop_column("accounts", "group_key")
