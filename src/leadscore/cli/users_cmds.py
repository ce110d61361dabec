"""``leadscore users create|list|disable|password`` and ``leadscore audit``."""

from __future__ import annotations

import getpass
import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from leadscore.cli.options import Db, fmt_time, open_store
from leadscore.cli.render import console

app = typer.Typer(help="Dashboard users and their roles (admin, marketing, sales).", no_args_is_help=True)
PASSWORD_ENV = "LEADSCORE_NEW_PASSWORD"


NO_TERMINAL = (
    f"there is no terminal to read the password from: set {PASSWORD_ENV} for this command (scripts, "
    "containers), or have an admin invite the user on the dashboard's Users page (a one-time password)"
)


def _password() -> str:
    """From $LEADSCORE_NEW_PASSWORD (scripts), else asked twice on the terminal."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():  # getpass would read stdin, find it empty and leave only "Aborted."
        raise typer.BadParameter(NO_TERMINAL, param_hint="password")
    try:
        first = getpass.getpass("password: ")
        again = getpass.getpass("again: ")
    except EOFError:
        raise typer.BadParameter(NO_TERMINAL, param_hint="password") from None
    if first != again:
        raise typer.BadParameter("the passwords differ")
    return first


@app.command("create")
def create(
    email: Annotated[str, typer.Option(help="Sign-in e-mail.")],
    role: Annotated[
        str,
        typer.Option(
            help="admin (everything), marketing (leads, models, evaluation) or sales (leads, feedback)."
        ),
    ],
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    db: Db = None,
) -> None:
    """Create a user; the password is read from the terminal (or $LEADSCORE_NEW_PASSWORD)."""
    from leadscore.auth.passwords import hash_password
    from leadscore.scoring.run import now_ms
    from leadscore.store.audit import audit
    from leadscore.store.users import ROLES, add_user

    if role not in ROLES:
        raise typer.BadParameter(f"must be one of {', '.join(ROLES)}", param_hint="--role")
    try:
        hashed = hash_password(_password())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="password") from None
    stamp = now_ms()
    with open_store(db) as store, store.begin() as conn:
        user = add_user(conn, email, name or email.split("@")[0], role, hashed, stamp)
        audit(conn, stamp, "cli", "user.create", user.email, role=role)
    console.print(f"created {role} user {user.email} (id {user.id})", highlight=False)


@app.command("password")
def password(email: Annotated[str, typer.Argument(help="The user's e-mail.")], db: Db = None) -> None:
    """Set a new password (read like `create` does) and end the user's sessions."""
    from leadscore.auth.passwords import hash_password
    from leadscore.scoring.run import now_ms
    from leadscore.store.audit import audit
    from leadscore.store.users import change_password, find_user

    try:
        hashed = hash_password(_password())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="password") from None
    stamp = now_ms()
    with open_store(db) as store, store.begin() as conn:
        user = find_user(conn, email)
        if user is None:
            raise typer.BadParameter(f"no user {email}")
        change_password(conn, user.id, hashed)
        audit(conn, stamp, "cli", "user.password", user.email)
    console.print(f"password changed for {email}", highlight=False)


@app.command("disable")
def disable(email: Annotated[str, typer.Argument(help="The user's e-mail.")], db: Db = None) -> None:
    """Disable a user and end their sessions."""
    from leadscore.scoring.run import now_ms
    from leadscore.store.audit import audit
    from leadscore.store.users import disable_user, find_user

    stamp = now_ms()
    with open_store(db) as store, store.begin() as conn:
        user = find_user(conn, email)
        if user is None:
            raise typer.BadParameter(f"no user {email}")
        disable_user(conn, user.id, stamp)
        audit(conn, stamp, "cli", "user.disable", user.email)
    console.print(f"disabled {email}", highlight=False)


@app.command("list")
def list_cmd(db: Db = None) -> None:
    """Every user with role and state."""
    from leadscore.store.users import list_users

    with open_store(db) as store, store.connect() as conn:
        rows = list_users(conn)
    table = Table(title="Users")
    for col in ("id", "email", "name", "role", "created", "disabled"):
        table.add_column(col)
    for u in rows:
        table.add_row(str(u.id), u.email, u.name, u.role, fmt_time(u.created_ms), fmt_time(u.disabled_ms))
    console.print(table)


def audit_cmd(
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="How many entries, newest first.")] = 50,
    db: Db = None,
) -> None:
    """The audit log: model publications, exports, erasures, user and key changes, lead merges."""
    from leadscore.store.audit import read_audit

    with open_store(db) as store, store.connect() as conn:
        rows = read_audit(conn, limit)
    table = Table(title="Audit log")
    for col in ("when", "actor", "action", "target", "details"):
        table.add_column(col)
    for r in rows:
        details = ", ".join(f"{k}={v}" for k, v in (r["details"] or {}).items())
        table.add_row(fmt_time(r["at_ms"]), r["actor"], r["action"], r["target"], details)
    console.print(table)
