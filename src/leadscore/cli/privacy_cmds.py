"""``leadscore privacy export|erase|retention``: GDPR portability, erasure and retention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from leadscore.cli.options import Db, open_store
from leadscore.cli.render import console

app = typer.Typer(
    help="A person's data: export it, erase it (and suppress her return); delete old events.",
    no_args_is_help=True,
)
Person = Annotated[
    str,
    typer.Argument(
        help="Lead id, e-mail or user id; or lead:<id>, u:<userId>, a:<anonymousId> (a person known only "
        "by anonymous or waiting events)."
    ),
]


@app.command("export")
def export_cmd(
    person: Person,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON here instead of printing it.")
    ] = None,
    db: Db = None,
) -> None:
    """Everything stored about a person as JSON, with the explanation of their score."""
    from leadscore.privacy.erase import pseudonym
    from leadscore.privacy.export import export_person
    from leadscore.privacy.person import find_person
    from leadscore.scoring.pipeline import active_model
    from leadscore.scoring.run import now_ms
    from leadscore.store.audit import audit

    stamp = now_ms()
    with open_store(db) as store, store.begin() as conn:
        who = find_person(conn, person)
        active = active_model(conn)
        data = export_person(conn, who, store.sources(), active.model if active else None, stamp)
        audit(conn, stamp, "cli", "privacy.export", pseudonym(who))
    text = json.dumps(data, indent=2, default=str, ensure_ascii=False)
    if out is None:
        print(text)
    else:
        out.write_text(text, encoding="utf-8")
        console.print(f"wrote {out}", highlight=False)


@app.command("erase")
def erase_cmd(
    person: Person,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
    suppress: Annotated[
        bool,
        typer.Option(
            "--suppress",
            help="Also keep peppered hashes of her user and anonymous ids and of every e-mail address she "
            "used, and drop every later message or CSV row naming one of the ids or giving one of the "
            "addresses under any id (a tracker, source or import sending her again) unstored, until "
            "`privacy unsuppress`. Without it, events sent after the erasure make a new lead.",
        ),
    ] = False,
    db: Db = None,
) -> None:
    """Remove the person's rows from every table (by exact ids and keys), verify, and scrub the files."""
    from leadscore.privacy.erase import NotErased, erase
    from leadscore.privacy.person import find_person
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    stamp = now_ms()
    with open_store(db) as store:
        with store.connect() as conn:
            who = find_person(conn, person)
        if not yes and not typer.confirm(f"Erase {who.label()} and everything about them?"):
            raise typer.Exit(1)
        try:
            report = erase(store, who, Settings().suppression_pepper, stamp, "cli", suppress_ids=suppress)
        except NotErased as exc:
            console.print(f"[red]error[/red] {exc}", highlight=False)
            raise typer.Exit(1) from None
    rows = ", ".join(f"{table} {n}" for table, n in sorted(report.deleted.items())) or "nothing"
    console.print(f"erased: {rows}; verified: no row of theirs left in any table", highlight=False)
    if report.redacted:
        kept = ", ".join(f"{table} {n}" for table, n in sorted(report.redacted.items()))
        console.print(
            f"kept with their parts redacted or rendered again without them: {kept}", highlight=False
        )
    if report.rescored:
        console.print(f"scored again without their events: {report.rescored} colleague(s)", highlight=False)
    if report.suppressed:
        console.print("their address stays suppressed from mail (kept as a hash)", highlight=False)
    if suppress:
        console.print(
            f"suppressed: {report.keys_suppressed} of their ids and {report.addresses_suppressed} of their "
            "e-mail addresses (kept as hashes); messages naming them or giving one of the addresses (under any"
            " id) are dropped unstored until `leadscore privacy unsuppress`",
            highlight=False,
        )
    else:
        console.print(
            "their ids are not suppressed: events sent for them again make a new lead (erase with --suppress)",
            highlight=False,
        )
    if report.mentions:
        where = ", ".join(f"{column} ({n})" for column, n in sorted(report.mentions.items()))
        console.print(
            f"[yellow]note[/yellow] other rows name them as a word and were kept (someone else's data; "
            f"review them): {where}",
            highlight=False,
        )
    console.print(report.disk, highlight=False)


@app.command("unsuppress")
def unsuppress_cmd(
    person: Annotated[
        str,
        typer.Argument(
            help="A user id, anonymous id or e-mail of a person erased with --suppress; or u:<userId>, "
            "a:<anonymousId>."
        ),
    ],
    db: Db = None,
) -> None:
    """Let a person erased with --suppress back: her messages are stored again (every id and e-mail
    address of hers suppressed by that erasure, or found to be hers since, is lifted)."""
    from leadscore.privacy.erase import lift_suppression
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    with open_store(db) as store:
        lifted = lift_suppression(store, person, Settings().suppression_pepper, now_ms(), "cli")
    if not lifted:
        console.print(f"[red]error[/red] nothing suppressed for {person!r}", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"lifted: {lifted} suppressed id(s) and address(es); their messages are stored again", highlight=False
    )


@app.command("retention")
def retention_cmd(
    days: Annotated[
        int, typer.Option("--older-than", min=1, help="Delete events older than this many days.")
    ],
    db: Db = None,
) -> None:
    """Delete old events now and rescore the leads that had them (the server runs this daily when
    LEADSCORE_RETENTION_DAYS is set)."""
    from leadscore.privacy.retention import apply_retention

    with open_store(db) as store:
        report = apply_retention(store, days, actor="cli")
    console.print(
        f"deleted {report.deleted_events} events older than {days} days; rescored {report.rescored_leads} leads",
        highlight=False,
    )
