"""Migration 0031en: stored addresses composed (NFC), as ``normalise_email`` now writes and looks them up.
Two leads whose addresses are one once composed are merged into the lower id; a decomposed domain is
composed with its address; staff users' and login attempts' addresses are composed, and two staff users
who would collide stop the upgrade, naming both."""

from __future__ import annotations

import unicodedata

import pytest
from sqlalchemy import text

from leadscore.store import Store
from migration_steps import migrate

NFC = unicodedata.normalize("NFC", "renée@example.org")
NFD = unicodedata.normalize("NFD", NFC)
DOMAIN_NFC = unicodedata.normalize("NFC", "bücher.example")
DOMAIN_NFD = unicodedata.normalize("NFD", DOMAIN_NFC)
ADELE = unicodedata.normalize("NFC", "adèle@example.org")


def _lead(conn: object, lead_id: int, external: str, email: str, domain: str) -> None:
    conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO leads (id, external_id, email, email_domain, attributes, attribute_ts, created_ms, "
             "updated_ms) VALUES (:id, :x, :e, :d, '{}', '{}', 0, 0)"),
        {"id": lead_id, "x": external, "e": email, "d": domain},
    )  # fmt: skip
    conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO identities (key, lead_id, created_ms) VALUES (:k, :id, 0)"),
        {"k": f"u:{external}", "id": lead_id},
    )


def _user(conn: object, user_id: int, email: str) -> None:
    conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO users (id, email, name, role, password_hash, created_ms) "
             "VALUES (:id, :e, 'x', 'admin', 'h', 0)"),
        {"id": user_id, "e": email},
    )  # fmt: skip


def test_addresses_are_composed_and_one_persons_leads_merged(store: Store) -> None:
    migrate(store, "downgrade", "0030ts")
    with store.engine.begin() as conn:
        _lead(conn, 1, "u-1", NFD, "example.org")  # decomposed, the older lead
        _lead(conn, 2, "u-2", NFC, "example.org")  # the same address composed: the same person
        _lead(conn, 3, "u-3", f"x@{DOMAIN_NFD}", DOMAIN_NFD)
        _lead(conn, 4, "u-4", "bob@example.com", "example.com")
        _user(conn, 1, unicodedata.normalize("NFD", ADELE))
        conn.execute(
            text("INSERT INTO login_attempts (email, client, at_ms, ok) VALUES (:e, 'c', 0, true)"),
            {"e": unicodedata.normalize("NFD", ADELE)},
        )
    migrate(store, "upgrade", "heads")
    with store.engine.connect() as conn:
        leads = conn.execute(text("SELECT id, external_id, email, email_domain FROM leads ORDER BY id")).all()
        keys = dict(conn.execute(text("SELECT key, lead_id FROM identities")).all())
        users = conn.execute(text("SELECT email FROM users")).scalars().all()
        attempts = conn.execute(text("SELECT email FROM login_attempts")).scalars().all()
        merges = (
            conn.execute(text("SELECT target FROM audit_log WHERE action = 'lead.merge'")).scalars().all()
        )
    assert [tuple(r) for r in leads] == [
        (1, "u-1", NFC, "example.org"),  # lead 2 merged into lead 1, which holds the composed address
        (3, "u-3", f"x@{DOMAIN_NFC}", DOMAIN_NFC),
        (4, "u-4", "bob@example.com", "example.com"),
    ]
    assert keys == {"u:u-1": 1, "u:u-2": 1, "lead:2": 1, "u:u-3": 3, "u:u-4": 4}
    assert users == [ADELE] and attempts == [ADELE]
    assert merges == ["lead:2"]


def test_two_staff_users_of_one_address_stop_the_upgrade(store: Store) -> None:
    migrate(store, "downgrade", "0030ts")
    with store.engine.begin() as conn:
        _user(conn, 1, ADELE)
        _user(conn, 2, unicodedata.normalize("NFD", ADELE))
    with pytest.raises(RuntimeError, match="staff users 1 and 2 have the same e-mail address"):
        migrate(store, "upgrade", "heads")
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0030ts"
