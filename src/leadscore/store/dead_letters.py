"""Dead letters: messages the processor could not apply, kept with their error, when they failed and how
often they were tried, until an operator retries or drops them (``scoring/dead_letters.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, select, update

from leadscore.store.event_log import inbox_json
from leadscore.store.schema import dead_letters, fits_id

MAX_ERROR = 4000


def printable(text: str, limit: int) -> str:
    """``text`` as any column can hold it: NUL characters and lone surrogates spelled out, at most
    ``limit`` characters."""
    safe = text.encode("utf-8", "backslashreplace").decode("utf-8").replace("\x00", "\\x00")
    return safe if len(safe) <= limit else safe[: limit - 1] + "…"


@dataclass(frozen=True)
class DeadLetter:
    id: int
    message_id: str
    message: str  # the event-log row as JSON text (or an unreadable inbox row's text)
    error: str
    failed_ms: int
    last_attempt_ms: int
    attempts: int


def add(conn: Connection, message: Any, error: str, now_ms: int, raw: str | None = None) -> int:
    """Set ``message`` (an event-log row as read from the inbox) aside; ``raw`` instead when the inbox row
    could not even be read. Returns the dead letter's id."""
    mid = message.get("message_id") if isinstance(message, dict) else None
    values = {
        "message_id": printable(mid if isinstance(mid, str) else repr(mid), 300),
        "message": raw if raw is not None else inbox_json(message),
        "error": printable(error, MAX_ERROR),
        "failed_ms": now_ms,
        "last_attempt_ms": now_ms,
        "attempts": 1,
    }
    return int(conn.execute(dead_letters.insert().values(**values).returning(dead_letters.c.id)).scalar_one())


def listed(conn: Connection, limit: int = 100) -> list[DeadLetter]:
    """The oldest dead letters first, up to ``limit``."""
    query = select(dead_letters).order_by(dead_letters.c.id).limit(limit)
    return [DeadLetter(**r) for r in conn.execute(query).mappings()]


def get(conn: Connection, letter_id: int, lock: bool = False) -> DeadLetter | None:
    if not fits_id(letter_id):
        return None
    query = select(dead_letters).where(dead_letters.c.id == letter_id)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return DeadLetter(**row) if row is not None else None


def remove(conn: Connection, letter_id: int) -> bool:
    return bool(conn.execute(delete(dead_letters).where(dead_letters.c.id == letter_id)).rowcount)


def failed_again(conn: Connection, letter_id: int, error: str, now_ms: int) -> None:
    conn.execute(
        update(dead_letters)
        .where(dead_letters.c.id == letter_id)
        .values(
            error=printable(error, MAX_ERROR), last_attempt_ms=now_ms, attempts=dead_letters.c.attempts + 1
        )
    )


# what the audit entry of a dead letter's retry or drop keeps of its message's owner: erasure finds the
# entries of her messages by them (``privacy.tables.REDACT``), a dropped letter's message being gone
OWNER_FIELDS = ("person_key", "user_id", "anonymous_id")
OWNER_ID_CHARS = 300  # the event log's longest id column (``person_key``)


def owner_details(letter: DeadLetter) -> dict[str, str]:
    """The ids of the owner of ``letter``'s message (those of ``OWNER_FIELDS`` it has; none for an
    unreadable message), for its audit entries."""
    row = _row(letter.message)
    return {f: row[f] for f in OWNER_FIELDS if _can_be_an_id(row.get(f))}


def _can_be_an_id(value: Any) -> bool:
    """Whether ``value`` could be a person's id as the event log stores one (text of 1 to 300 characters,
    no NUL, valid UTF-8): what could not, no erasure will look for, and PostgreSQL's JSON refuses a NUL."""
    if not isinstance(value, str) or not 0 < len(value) <= OWNER_ID_CHARS or "\x00" in value:
        return False
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def _row(text: str) -> dict[str, Any]:
    try:
        row = json.loads(text)
    except ValueError:
        return {}
    return row if isinstance(row, dict) else {}


def dead_letter_rows(conn: Connection) -> Iterator[tuple[int, dict[str, Any]]]:
    """(id, event-log row) of every dead letter whose message reads as one (erasure and export find a
    person's among them); an unreadable message yields an empty row."""
    for letter_id, text in conn.execute(select(dead_letters.c.id, dead_letters.c.message)):
        yield int(letter_id), _row(text)


def count(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(dead_letters)).scalar_one())
