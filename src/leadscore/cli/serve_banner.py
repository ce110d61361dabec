"""What ``leadscore serve`` says when it starts: where it listens, the dashboard's address, how to create
the first user and key (while there are none), and a warning while no model is published (events are then
stored but nobody is scored). Also the logging set-up every server process uses: uvicorn's own (start-up
lines, the access log) with leadscore's loggers beside it, so their warnings reach the same log.

Like every module of ``cli/``, it imports the store and uvicorn inside its functions.
"""

from __future__ import annotations

import logging
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from leadscore.store import Store

log = logging.getLogger("leadscore.serve")


def log_config() -> dict[str, Any]:
    """uvicorn's logging configuration plus the ``leadscore`` loggers (INFO and above, to stderr), its
    access log redacted (``cli.access_log``)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = {
        **LOGGING_CONFIG,
        # the access log writes no e-mail, token, search or user id (``cli.access_log``)
        "filters": {"redacted": {"()": "leadscore.cli.access_log.RedactedAccessLog"}},
        "handlers": {
            **LOGGING_CONFIG["handlers"],
            "access": {**LOGGING_CONFIG["handlers"]["access"], "filters": ["redacted"]},
        },
        "loggers": {
            **LOGGING_CONFIG["loggers"],
            "leadscore": {"handlers": ["default"], "level": "INFO", "propagate": False},
        },
    }
    return config


@dataclass(frozen=True)
class StoreState:
    """What the banner needs to know about the database."""

    users: int
    live_keys: int
    model: str | None  # the active version's label


def store_state(store: Store) -> StoreState:
    from leadscore.scoring.pipeline import active_model
    from leadscore.store.keys import list_keys
    from leadscore.store.users import list_users

    with store.connect() as conn:
        active = active_model(conn)
        return StoreState(
            users=len(list_users(conn)),
            live_keys=sum(1 for k in list_keys(conn) if k.revoked_ms is None),
            model=active.version.label if active and active.version else None,
        )


def base_url(host: str, port: int) -> str:
    """The address to open: a wildcard interface is reached as localhost."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def _shown_db(db: str) -> str:
    """``--db`` as the hints repeat it: a database URL's password is masked (logs are read widely)."""
    if "://" not in db:
        return db
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(db).render_as_string(hide_password=True)
    except ArgumentError:
        return db


def banner(state: StoreState, host: str, port: int, db: str | None, workers: int) -> list[tuple[int, str]]:
    """(log level, line) for each line of the start-up banner."""
    url = base_url(host, port)
    on = f" --db {shlex.quote(_shown_db(db))}" if db else ""
    where = "all interfaces" if host in ("0.0.0.0", "::", "") else host
    lines = [
        (
            logging.INFO,
            f"leadscore listening on {url} ({where}, port {port}, {workers} worker process"
            f"{'' if workers == 1 else 'es'})",
        ),
        (logging.INFO, f"dashboard: {url}/   tracking API: {url}/v1/batch   read API: {url}/v1/leads"),
    ]
    if state.users == 0:
        lines.append(
            (
                logging.INFO,
                "no dashboard user yet: create the first with "
                f"`leadscore users create --email you@example.com --role admin{on}`",
            )
        )
    if state.live_keys == 0:
        lines.append(
            (
                logging.INFO,
                f"no API key yet: `leadscore keys create --kind write --name website{on}` for the tracking "
                f"API, `leadscore keys create --kind read --name crm{on}` for the read API",
            )
        )
    if state.model is None:
        from leadscore.scoring.pipeline import NO_MODEL

        lines.append((logging.WARNING, f"{NO_MODEL}: `leadscore model publish MODEL.yaml{on}`"))
    else:
        lines.append((logging.INFO, f"scoring with {state.model}"))
    return lines


def announce(store: Store, host: str, port: int, db: str | None, workers: int) -> None:
    """Log the banner (after ``logging.config.dictConfig(log_config())``)."""
    for level, line in banner(store_state(store), host, port, db, workers):
        log.log(level, line)
