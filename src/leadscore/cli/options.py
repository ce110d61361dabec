"""Options shared by every command, and their parsing (times, lead references, the store).

Light at import, like every module of ``cli/`` (see ``cli/__init__``): the store is imported when a
command opens it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from leadscore.store import Store

Db = Annotated[
    str | None,
    typer.Option(
        "--db", help="Database URL or SQLite path (default: $LEADSCORE_DATABASE_URL or ./leadscore.db)."
    ),
]
ScoreName = Annotated[
    str | None,
    typer.Option(
        "--score",
        help="The named score (one per product line or persona, e.g. core, analytics; default: the primary).",
    ),
]
Format = Annotated[
    Literal["table", "csv", "json"], typer.Option("--format", "-f", help="table, csv or json.")
]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", help="Score as of this time: ISO date or date-time, UTC unless an offset is given."
    ),
]


@contextmanager
def open_store(db: str | None) -> Iterator[Store]:
    """The store for ``--db``, disposed (connections closed) when the command ends."""
    from leadscore.settings import database_url
    from leadscore.store import Store

    store = Store.from_url(database_url(db))
    try:
        yield store
    finally:
        store.dispose()


def parse_as_of(text: str | None) -> int | None:
    """ISO date (end of that day, UTC) or date-time → epoch ms; None stays None (now)."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = datetime.fromisoformat(text).replace(tzinfo=UTC)
            return int(day.timestamp() * 1000) + 86_400_000 - 1
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO date (2024-05-31) or date-time", param_hint="--as-of"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def fmt_time(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def resolve_lead(conn: Connection, ref: str) -> int:
    """A lead by numeric id, e-mail or external (user) id."""
    from leadscore.store.people import resolve_lead_ref

    return resolve_lead_ref(conn, ref)
