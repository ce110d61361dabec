"""Dashboard users, their server-side sessions and login attempts (storage only; policy lives in auth/)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, delete, func, select, update

from leadscore.errors import NotFoundError, StoreError
from leadscore.store.people import normalise_email
from leadscore.store.schema import fits_id, login_attempts, sessions, users

ROLES = ("admin", "marketing", "sales")


@dataclass(frozen=True)
class User:
    id: int
    email: str
    name: str
    role: str
    password_hash: str
    created_ms: int
    disabled_ms: int | None

    @property
    def active(self) -> bool:
        return self.disabled_ms is None


def _user(row: object) -> User:
    return User(**dict(row._mapping))  # type: ignore[attr-defined]


def add_user(conn: Connection, email: str, name: str, role: str, password_hash: str, now_ms: int) -> User:
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    email = normalise_email(email)
    if conn.execute(select(users.c.id).where(users.c.email == email)).first():
        raise StoreError(f"a user {email} already exists")
    new_id = conn.execute(
        users.insert()
        .values(email=email, name=name, role=role, password_hash=password_hash, created_ms=now_ms)
        .returning(users.c.id)
    ).scalar_one()
    return get_user(conn, int(new_id))


def get_user(conn: Connection, user_id: int) -> User:
    row = conn.execute(select(users).where(users.c.id == user_id)).first() if fits_id(user_id) else None
    if row is None:
        raise NotFoundError(f"no user {user_id}")
    return _user(row)


def find_user(conn: Connection, email: str) -> User | None:
    row = conn.execute(select(users).where(users.c.email == normalise_email(email))).first()
    return _user(row) if row else None


def list_users(conn: Connection) -> list[User]:
    return [_user(r) for r in conn.execute(select(users).order_by(users.c.id))]


def rehash_password(conn: Connection, user_id: int, password_hash: str) -> None:
    """The same password in a newer hash (sign-in upgrades old parameters); sessions stay. A new password
    is ``change_password``."""
    conn.execute(update(users).where(users.c.id == user_id).values(password_hash=password_hash))


def change_password(conn: Connection, user_id: int, password_hash: str) -> int:
    """A new password, and every session of the user ended: whoever held a session (a stolen cookie, a
    shared computer) must sign in with the new one. Returns how many sessions ended."""
    get_user(conn, user_id)
    rehash_password(conn, user_id, password_hash)
    return end_sessions(conn, user_id)


def end_sessions(conn: Connection, user_id: int) -> int:
    """Sign the user out everywhere."""
    return conn.execute(delete(sessions).where(sessions.c.user_id == user_id)).rowcount or 0


def set_role(conn: Connection, user_id: int, role: str) -> None:
    if role not in ROLES:
        raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    get_user(conn, user_id)
    conn.execute(update(users).where(users.c.id == user_id).values(role=role))


def disable_user(conn: Connection, user_id: int, now_ms: int) -> None:
    get_user(conn, user_id)
    conn.execute(update(users).where(users.c.id == user_id).values(disabled_ms=now_ms))
    end_sessions(conn, user_id)


def enable_user(conn: Connection, user_id: int) -> None:
    """A disabled user may sign in again (with the password they had; sessions ended at the disabling)."""
    get_user(conn, user_id)
    conn.execute(update(users).where(users.c.id == user_id).values(disabled_ms=None))


def disabled_emails(conn: Connection) -> frozenset[str]:
    """The e-mail addresses (lower case, as stored) of disabled users: a seller of the model with one of
    these has left and is given no new leads (``lifecycle.assignment``)."""
    query = select(users.c.email).where(users.c.disabled_ms.is_not(None))
    return frozenset(str(e) for e in conn.execute(query).scalars())


def add_session(
    conn: Connection, token_hash: str, user_id: int, csrf: str, now_ms: int, expires_ms: int
) -> None:
    conn.execute(
        sessions.insert().values(
            token_hash=token_hash, user_id=user_id, csrf_token=csrf, created_ms=now_ms, expires_ms=expires_ms
        )
    )


def session_user(conn: Connection, token_hash: str, now_ms: int) -> tuple[User, str] | None:
    """The live session's user and CSRF token, or None (unknown, expired or user disabled)."""
    row = conn.execute(
        select(users, sessions.c.csrf_token)
        .join(sessions, sessions.c.user_id == users.c.id)
        .where(
            sessions.c.token_hash == token_hash, sessions.c.expires_ms > now_ms, users.c.disabled_ms.is_(None)
        )
    ).first()
    if row is None:
        return None
    data = dict(row._mapping)
    csrf = data.pop("csrf_token")
    return User(**data), csrf


def drop_session(conn: Connection, token_hash: str) -> None:
    conn.execute(delete(sessions).where(sessions.c.token_hash == token_hash))


def record_attempt(conn: Connection, email: str, client: str, ok: bool, now_ms: int) -> None:
    conn.execute(
        login_attempts.insert().values(email=normalise_email(email), client=client, ok=ok, at_ms=now_ms)
    )


def hold_attempts(conn: Connection, email: str, client: str) -> None:
    """Make this transaction the only one signing in this e-mail from this client until it ends, so that
    concurrent attempts see each other's failures (SQLite's write transactions already queue)."""
    if conn.dialect.name == "postgresql":
        key = f"{normalise_email(email)}\x1f{client}"
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def pair_failures(conn: Connection, email: str, client: str, since_ms: int) -> tuple[int, int | None]:
    """Failed sign-ins for this e-mail from this client since ``since_ms`` and since the pair's last
    success: (how many, when the latest was)."""
    email = normalise_email(email)
    pair = (login_attempts.c.email == email, login_attempts.c.client == client)
    last_ok = (
        select(func.coalesce(func.max(login_attempts.c.at_ms), since_ms - 1))
        .where(*pair, login_attempts.c.ok.is_(True), login_attempts.c.at_ms >= since_ms)
        .scalar_subquery()
    )
    query = select(func.count(), func.max(login_attempts.c.at_ms)).where(
        *pair,
        login_attempts.c.ok.is_(False),
        login_attempts.c.at_ms >= since_ms,
        login_attempts.c.at_ms > last_ok,
    )
    count, latest = conn.execute(query).one()
    return int(count), None if latest is None else int(latest)


def client_failures(conn: Connection, client: str, since_ms: int) -> tuple[int, int | None]:
    """Failed sign-ins from this client (for any e-mail) since ``since_ms``: (how many, the oldest's time)."""
    query = select(func.count(), func.min(login_attempts.c.at_ms)).where(
        login_attempts.c.client == client, login_attempts.c.ok.is_(False), login_attempts.c.at_ms >= since_ms
    )
    count, oldest = conn.execute(query).one()
    return int(count), None if oldest is None else int(oldest)
