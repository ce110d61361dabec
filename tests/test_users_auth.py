"""Users, passwords, sessions, login limits and the audit log (policy in leadscore.auth)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadscore.auth.passwords import hash_password, verify_password
from leadscore.auth.roles import PERMISSIONS, allowed
from leadscore.auth.sessions import LoginRefused, csrf_ok, current, login, logout
from leadscore.auth.throttle import FORGET_MS, delay_after
from leadscore.cli.main import app
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.schema import login_attempts
from leadscore.store.users import add_user, change_password, disable_user, record_attempt

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


def test_a_new_password_ends_every_session_of_that_user_only(store: Store) -> None:
    sam = _user(store)
    with store.begin() as conn:
        add_user(conn, "ann@example.com", "Ann", "sales", hash_password(PASSWORD), T)
        laptop = login(conn, "sam@example.com", PASSWORD, "10.0.0.1", T)
        phone = login(conn, "sam@example.com", PASSWORD, "10.0.0.2", T)
        ann = login(conn, "ann@example.com", PASSWORD, "10.0.0.3", T)
        assert change_password(conn, sam, hash_password("a brand new password")) == 2
    with store.connect() as conn:
        assert current(conn, laptop.token, T + 1000) is None
        assert current(conn, phone.token, T + 1000) is None
        kept = current(conn, ann.token, T + 1000)
        assert kept is not None and kept.user.email == "ann@example.com"
    with store.begin() as conn:
        assert login(conn, "sam@example.com", "a brand new password", "10.0.0.1", T + 2000).user.id == sam


def test_users_password_on_the_cli_ends_the_users_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = str(tmp_path / "p.db")
    store = Store.from_url(db)
    _user(store)
    with store.begin() as conn:
        stolen = login(conn, "sam@example.com", PASSWORD, "10.0.0.1", T)
    monkeypatch.setenv("LEADSCORE_NEW_PASSWORD", "a brand new password")
    out = CliRunner().invoke(app, ["users", "password", "sam@example.com", "--db", db])
    assert out.exit_code == 0, out.output
    with store.connect() as conn:
        assert current(conn, stolen.token, T + 1000) is None
    store.dispose()


def _refused(conn: Any, password: str, client: str, at: int) -> LoginRefused:
    with pytest.raises(LoginRefused) as refused:
        login(conn, "sam@example.com", password, client, at)
    return refused.value


def test_the_backoff_doubles_from_30_seconds_to_15_minutes() -> None:
    assert [delay_after(n) for n in range(12)] == [
        0, 0, 0, 0, 0, 30_000, 60_000, 120_000, 240_000, 480_000, 900_000, 900_000,
    ]  # fmt: skip
    assert delay_after(10**12) == 900_000


def test_sign_in_is_throttled_per_account_and_address(store: Store) -> None:
    """Wrong passwords slow down one address for one account; nobody is locked out (issue #16)."""
    user_id = _user(store)
    a, b = "203.0.113.7", "198.51.100.1"
    with store.begin() as conn:
        for i in range(5):
            assert not _refused(conn, "wrong password", a, T + i).throttled
        # the 5th failure (at T+4) makes the pair wait 30 s: even the right password is refused, unread
        assert _refused(conn, PASSWORD, a, T + 10).retry_after_s == 30  # ceil((T+4+30000 - (T+10)) / 1000)
        assert _refused(conn, "wrong password", a, T + 29_500).retry_after_s == 1  # 504 ms left
        # the owner signs in from their own address meanwhile, and that does not free the attacker's
        assert login(conn, "sam@example.com", PASSWORD, b, T + 20).user.id == user_id
        assert _refused(conn, PASSWORD, a, T + 30).throttled
        # when the wait is over, a 6th failure (at T+30004) doubles it: 60 s
        assert not _refused(conn, "wrong password", a, T + 30_004).throttled
        assert _refused(conn, PASSWORD, a, T + 90_003).retry_after_s == 1
        assert login(conn, "sam@example.com", PASSWORD, a, T + 90_004).user.id == user_id
        # a success starts the pair afresh
        assert not _refused(conn, "wrong password", a, T + 90_005).throttled
        disable_user(conn, user_id, T + 90_010)
        assert not _refused(conn, PASSWORD, b, T + 90_020).throttled  # disabled: refused, not throttled


def test_failures_are_forgotten_after_a_day(store: Store) -> None:
    user_id = _user(store)
    with store.begin() as conn:
        for i in range(7):  # each after the previous wait (at most 120 s here)
            record_attempt(conn, "sam@example.com", "10.0.0.2", False, T + i * 1_000_000)
        last = T + 6 * 1_000_000
        assert _refused(conn, PASSWORD, "10.0.0.2", last + 1).retry_after_s == 120  # 7 failures: 120 s
        # a day after the latest, the 7 are forgotten: 4 more failures in a row are not slowed down
        # (remembered, the first of them would be the 8th and make the next wait 240 s)
        day_later = last + FORGET_MS + 1
        for i in range(4):
            assert not _refused(conn, "wrong password", "10.0.0.2", day_later + i).throttled
        assert login(conn, "sam@example.com", PASSWORD, "10.0.0.2", day_later + 4).user.id == user_id


def test_an_address_failing_across_many_accounts_waits(store: Store) -> None:
    """Password spraying: 30 failures from one address in 15 minutes, one per e-mail, throttle it."""
    user_id = _user(store)
    with store.begin() as conn:
        # 29 failures as login records them (a password check each is slow), then the 30th through login
        for i in range(29):
            record_attempt(conn, f"user{i}@example.com", "10.9.9.9", False, T + i * 1000)
        with pytest.raises(LoginRefused) as refused:
            login(conn, "user29@example.com", "wrong password", "10.9.9.9", T + 29_000)
        assert not refused.value.throttled
        # the oldest failure (at T) leaves the 15-minute window at T + 900 s
        assert _refused(conn, PASSWORD, "10.9.9.9", T + 100_000).retry_after_s == 800
        assert login(conn, "sam@example.com", PASSWORD, "10.1.1.1", T + 100_000).user.id == user_id
        assert login(conn, "sam@example.com", PASSWORD, "10.9.9.9", T + 900_000).user.id == user_id


def test_a_burst_of_attempts_cannot_outrun_the_count(store: Store) -> None:
    """Twelve simultaneous wrong guesses from one address: five are checked, seven wait their turn."""
    _user(store)

    def attempt(_: int) -> bool:
        with store.begin() as conn:
            try:
                login(conn, "sam@example.com", "wrong password", "10.7.7.7", T)
            except LoginRefused as refused:
                return refused.throttled
        raise AssertionError("a wrong password signed in")

    with ThreadPoolExecutor(12) as pool:
        throttled = list(pool.map(attempt, range(12)))
    assert throttled.count(False) == 5 and throttled.count(True) == 7
    with store.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(login_attempts)).scalar_one()
    assert rows == 5  # throttled attempts are not counted as failures


def test_hostile_sign_in_values_are_refused_without_a_trace(store: Store) -> None:
    _user(store)
    with store.begin() as conn:
        for email, client in (("sam@example.com\x00", "10.0.0.1"), ("sam@example.com", "10.0.0.1\x00")):
            with pytest.raises(LoginRefused, match="wrong e-mail or password"):
                login(conn, email, PASSWORD, client, T)
        assert conn.execute(select(func.count()).select_from(login_attempts)).scalar_one() == 0


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


def test_set_role_changes_one_user_and_refuses_unknown_roles_and_users(store: Store) -> None:
    from leadscore.errors import NotFoundError, StoreError
    from leadscore.store.users import get_user, set_role

    with store.begin() as conn:
        ann = add_user(conn, "ann@example.test", "Ann", "sales", hash_password("a long password"), 0)
        bob = add_user(conn, "bob@example.test", "Bob", "sales", hash_password("a long password"), 0)
        set_role(conn, ann.id, "marketing")
        assert get_user(conn, ann.id).role == "marketing"
        assert get_user(conn, bob.id).role == "sales"
        with pytest.raises(StoreError, match="role must be one of"):
            set_role(conn, ann.id, "manager")
        with pytest.raises(NotFoundError):
            set_role(conn, bob.id + 1000, "admin")
    with store.connect() as conn:
        assert get_user(conn, ann.id).role == "marketing"
