"""``leadscore deadletters list|show|retry|drop``: messages the processor could not apply."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from leadscore.cli.options import Db, Format, fmt_time, open_store
from leadscore.cli.render import console, print_rows
from leadscore.errors import NotFoundError

app = typer.Typer(
    help="Messages the processor could not apply (set aside so later events are still scored).",
    no_args_is_help=True,
)
LetterId = Annotated[int, typer.Argument(help="The dead letter's id (see `leadscore deadletters list`).")]


@app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.", min=1)] = 100,
    fmt: Format = "table",
    db: Db = None,
) -> None:
    """The dead letters, oldest first: message id, when it failed, attempts, the error."""
    from leadscore.store import dead_letters

    with open_store(db) as store, store.connect() as conn:
        letters = dead_letters.listed(conn, limit)
    table = fmt == "table"
    rows = [
        {
            "id": d.id,
            # a table cell is read as rich markup: message ids and errors are anybody's text
            "message_id": escape(d.message_id) if table else d.message_id,
            "failed": fmt_time(d.failed_ms),
            "attempts": d.attempts,
            "error": escape(_first_line(d.error)) if table else d.error,
        }
        for d in letters
    ]
    if not rows and table:
        console.print("no dead letters")
        return
    print_rows(rows, fmt, title="dead letters")


def _first_line(text: str, limit: int = 120) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


@app.command("show")
def show(letter_id: LetterId, db: Db = None) -> None:
    """One dead letter in full: the message as JSON, its error, when it failed and was last tried."""
    from leadscore.store import dead_letters

    with open_store(db) as store, store.connect() as conn:
        letter = dead_letters.get(conn, letter_id)
    if letter is None:
        raise NotFoundError(f"no dead letter {letter_id}")
    print(
        json.dumps(
            {
                "id": letter.id,
                "message_id": letter.message_id,
                "failed": fmt_time(letter.failed_ms),
                "last_attempt": fmt_time(letter.last_attempt_ms),
                "attempts": letter.attempts,
                "error": letter.error,
                "message": letter.message,
            },
            indent=2,
        )
    )


@app.command("retry")
def retry(letter_id: LetterId, db: Db = None) -> None:
    """Apply the message now (after fixing what made it fail); it stays a dead letter if it fails again."""
    from leadscore.scoring import dead_letters as operator
    from leadscore.settings import Settings

    drop_unconsented = Settings().unconsented_events == "drop"
    with open_store(db) as store:
        outcome = operator.retry(store, letter_id, actor="cli", drop_unconsented=drop_unconsented)
    if not outcome.applied:
        console.print(f"dead letter {letter_id} failed again: {outcome.error}", highlight=False, markup=False)
        raise typer.Exit(1)
    console.print(f"dead letter {letter_id} applied and scored", highlight=False)


@app.command("drop")
def drop(letter_id: LetterId, db: Db = None) -> None:
    """Give the message up: delete the dead letter."""
    from leadscore.scoring import dead_letters as operator

    with open_store(db) as store:
        operator.drop(store, letter_id, actor="cli")
    console.print(f"dead letter {letter_id} dropped", highlight=False)
