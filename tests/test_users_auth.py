"""Users, passwords, sessions, login limits and the audit log (policy in leadscore.auth)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.auth.passwords import hash_password, verify_password
from leadscore.auth.roles import PERMISSIONS, allowed
from leadscore.auth.sessions import MAX_FAILURES, WINDOW_MS, LoginRefused, csrf_ok, current, login, logout
from leadscore.cli.main import app
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.users import add_user, disable_user

T = 1_700_000_000_000
PASSWORD = "correct horse battery"


def _user(store: Store, role: str = "sales") -> int:
    with store.begin() as conn:
        return add_user(conn, "Sam@Example.com", "Sam", role, hash_password(PASSWORD), T).id


def test_passwords_are_argon2_and_verified() -> None:
    hashed = hash_password(PASSWORD)
    assert hashed.startswith("$argon2id$") and PASSWORD not in hashed
    assert verify_password(hashed, PASSWORD) and not verify_password(hashed, PASSWORD + "!")
    with pytest.raises(ValueError, match="at least 10"):
        hash_password("short")


def test_session_lifecycle(store: Store) -> None:
    user_id = _user(store)
    with store.begin() as conn:
        session = login(conn, "sam@example.com", PASSWORD, "10.0.0.1", T)
    assert session.user.id == user_id and session.user.role == "sales"
    with store.connect() as conn:
        again = current(conn, session.token, T + 1000)
        assert again is not None and again.user.email == "sam@example.com"
        assert current(conn, session.token, T + 13 * 3600 * 1000) is None  # expired after 12 h
        assert current(conn, "forged", T) is None
    assert csrf_ok(again, session.csrf) and not csrf_ok(again, "x") and not csrf_ok(again, None)
    with store.begin() as conn:
        logout(conn, session.token)
    with store.connect() as conn:
        assert current(conn, session.token, T + 1000) is None


def test_login_rate_limit_and_disabled_users(store: Store) -> None:
    user_id = _user(store)
    with store.begin() as conn:
        for i in range(MAX_FAILURES):
            with pytest.raises(LoginRefused) as refused:
                login(conn, "sam@example.com", "wrong password", "10.0.0.2", T + i)
            assert not refused.value.locked
        # the right password is refused too while locked
        with pytest.raises(LoginRefused) as locked:
            login(conn, "sam@example.com", PASSWORD, "10.0.0.2", T + 10)
        assert locked.value.locked
        assert login(conn, "sam@example.com", PASSWORD, "10.0.0.2", T + WINDOW_MS + 10).user.id == user_id
        disable_user(conn, user_id, T + WINDOW_MS + 20)
        with pytest.raises(LoginRefused):
            login(conn, "sam@example.com", PASSWORD, "10.0.0.2", T + WINDOW_MS + 30)


def test_roles() -> None:
    assert allowed("marketing", "model.publish") and not allowed("sales", "model.publish")
    assert allowed("sales", "feedback") and not allowed("marketing", "users.manage")
    assert PERMISSIONS["admin"] >= PERMISSIONS["marketing"] | PERMISSIONS["sales"]
    assert not allowed("nobody", "leads.read")


def test_users_cli_and_audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = str(tmp_path / "u.db")
    monkeypatch.setenv("LEADSCORE_NEW_PASSWORD", PASSWORD)
    runner = CliRunner()
    out = runner.invoke(
        app, ["users", "create", "--email", "ann@example.com", "--role", "marketing", "--db", db]
    )
    assert out.exit_code == 0, out.output
    assert "created marketing user ann@example.com" in out.output
    assert (
        runner.invoke(
            app, ["users", "create", "--email", "x@example.com", "--role", "boss", "--db", db]
        ).exit_code
        == 2
    )
    assert (
        runner.invoke(app, ["keys", "create", "--kind", "read", "--name", "crm", "--db", db]).exit_code == 0
    )
    assert runner.invoke(app, ["users", "disable", "ann@example.com", "--db", db]).exit_code == 0
    store = Store.from_url(db)
    with store.connect() as conn:
        actions = [(a["action"], a["target"]) for a in reversed(read_audit(conn))]
    store.dispose()
    assert actions == [
        ("user.create", "ann@example.com"),
        ("key.create", "key:1"),
        ("user.disable", "ann@example.com"),
    ]
    listing = runner.invoke(app, ["audit", "--db", db]).output
    assert "user.disable" in listing and "key.create" in listing
