"""What an operator does with dead letters: retry one (apply it now, once whatever made it fail is fixed)
or drop it. ``leadscore deadletters`` and the dashboard's dead-letter page call these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from leadscore.errors import NotFoundError
from leadscore.ingest.committer import write_turn
from leadscore.scoring.processor import apply_rows, describe_error
from leadscore.scoring.run import now_ms
from leadscore.store import Store, counters, dead_letters
from leadscore.store.audit import audit
from leadscore.store.event_log import inbox_events


@dataclass(frozen=True)
class Retried:
    """The outcome of a retry: applied (the dead letter is gone) or the error it failed with again."""

    letter_id: int
    applied: bool
    error: str | None = None


def retry(store: Store, letter_id: int, *, actor: str, drop_unconsented: bool = False) -> Retried:
    """Apply dead letter ``letter_id``'s message the way the processor would have (a message id already in
    the log is skipped); on success the dead letter is deleted, else its error and attempts are updated.
    The retry is written to the audit log under ``actor``."""
    stamp = now_ms()
    with write_turn(store), store.begin() as conn:
        letter = dead_letters.get(conn, letter_id, lock=True)
        if letter is None:
            raise NotFoundError(f"no dead letter {letter_id}")
        owner = dead_letters.owner_details(letter)  # erasure finds the audit entries of her letters by it
        try:
            row: Any = inbox_events(letter.message)
            if not isinstance(row, dict) or not isinstance(row.get("message_id"), str):
                raise ValueError("not an event with a message_id: it cannot be applied, only dropped")
            with conn.begin_nested():
                scored, _ = apply_rows(conn, store, [row], drop_unconsented)
        except Exception as exc:
            error = dead_letters.printable(describe_error(exc), dead_letters.MAX_ERROR)
            dead_letters.failed_again(conn, letter_id, error, stamp)
            audit(
                conn, stamp, actor, "deadletter.retry", letter.message_id, applied=False, error=error, **owner
            )
            return Retried(letter_id, False, error)
        dead_letters.remove(conn, letter_id)
        counters.add(conn, {counters.SCORED: scored})
        audit(conn, stamp, actor, "deadletter.retry", letter.message_id, applied=True, **owner)
    return Retried(letter_id, True)


def drop(store: Store, letter_id: int, *, actor: str) -> None:
    """Delete dead letter ``letter_id`` (its message is given up); written to the audit log."""
    with store.begin() as conn:
        letter = dead_letters.get(conn, letter_id, lock=True)
        if letter is None or not dead_letters.remove(conn, letter_id):
            raise NotFoundError(f"no dead letter {letter_id}")
        audit(conn, now_ms(), actor, "deadletter.drop", letter.message_id, error=letter.error,
              **dead_letters.owner_details(letter))  # fmt: skip
