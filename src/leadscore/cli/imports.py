"""``leadscore import leads|accounts|events``: CSV exports and Segment JSONL into the store.

Exit status: 0 when every row was imported, 1 when some were rejected (the good ones are kept),
2 when the file cannot be read at all.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from leadscore.cli.options import Db, open_store
from leadscore.cli.render import console
from leadscore.errors import InputError, Problem
from leadscore.spreadsheet import csv_safe

if TYPE_CHECKING:
    from leadscore.ingest import csv_import
    from leadscore.ingest.csv_import import ImportReport
    from leadscore.ingest.jsonl_import import EventImportReport


app = typer.Typer(
    help="Import leads and accounts (CSV exports) and events (Segment JSONL).", no_args_is_help=True
)

SHOWN_ERRORS = 50

File = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="The file to import.")]
Maps = Annotated[
    list[str] | None,
    typer.Option("--map", "-m", help="'Header=attribute': read a column as this attribute (repeatable)."),
]
Ignore = Annotated[list[str] | None, typer.Option("--ignore", help="A column to leave out (repeatable).")]
MaxErrors = Annotated[
    int | None,
    typer.Option("--max-errors", min=1, help="Stop after N rejected rows (those read before stay)."),
]
ErrorsOut = Annotated[
    Path | None, typer.Option("--errors-out", help="Write every rejected row to this CSV file.")
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="The file's encoding (e.g. cp1252, latin-1); default: detected."),
]
Decimal = Annotated[
    str | None,
    typer.Option(
        "--decimal",
        help="'.' or ',': the decimal mark of every numeric column; default: decided per column from its values.",
    ),
]
ShowProgress = Annotated[
    bool | None,
    typer.Option("--progress/--no-progress", help="A progress bar (default: only on a terminal)."),
]


def parse_maps(maps: list[str] | None) -> dict[str, str]:
    """``["Work Mail=email"]`` → ``{"Work Mail": "email"}``."""
    out: dict[str, str] = {}
    for item in maps or []:
        header, sep, attribute = item.rpartition("=")
        if not sep or not header.strip() or not attribute.strip():
            raise typer.BadParameter(f"{item!r}: write 'Header=attribute'", param_hint="--map")
        out[header] = attribute.strip()
    return out


@contextmanager
def _progress_bar(path: Path, wanted: bool | None) -> Iterator[csv_import.Progress | None]:
    if not (sys.stdout.isatty() if wanted is None else wanted):
        yield None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task(f"importing {path.name}", total=path.stat().st_size)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _summary(title: str, counts: dict[str, int]) -> None:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what")
    table.add_column("count", justify="right")
    for what, count in counts.items():
        table.add_row(what, f"{count:,}")
    console.print(table)


def _report_problems(problems: list[Problem], where: str, errors_out: Path | None, aborted: bool) -> None:
    if problems:
        table = Table(title=f"Rejected ({len(problems):,})", title_justify="left")
        for col in (where, "field" if where == "row" else "column", "reason"):
            table.add_column(col)
        for p in problems[:SHOWN_ERRORS]:
            detail = p.field if where == "row" else p.column
            table.add_row(str(p.line or ""), "" if detail is None else str(detail), p.message)
        console.print(table)
        if len(problems) > SHOWN_ERRORS:
            more = (
                f"; all of them in {errors_out}"
                if errors_out
                else "; --errors-out FILE.csv writes all of them"
            )
            console.print(f"{len(problems) - SHOWN_ERRORS:,} more not shown{more}", highlight=False)
    if errors_out is not None:
        with errors_out.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow([where, "column", "field", "reason"])
            # opened in a spreadsheet: a field is a header of the imported file, a reason may quote a cell
            writer.writerows(
                [p.line, p.column or "", csv_safe(p.field or ""), csv_safe(p.message)] for p in problems
            )
    if aborted:
        console.print(
            "[red]stopped early[/red]: --max-errors reached; rows after that were not read", highlight=False
        )


def _run_csv(kind: str, path: Path, maps: list[str] | None, ignore: list[str] | None, max_errors: int | None,
             errors_out: Path | None, progress: bool | None, db: str | None, encoding: str | None = None,
             decimal: str | None = None) -> ImportReport:  # fmt: skip
    from leadscore.ingest import csv_import
    from leadscore.ingest.csv_import import ImportOptions
    from leadscore.scoring.pipeline import rescore_leads

    if decimal not in (None, ".", ","):
        raise typer.BadParameter(f"{decimal!r}: write . or ,", param_hint="--decimal")
    options = ImportOptions(
        mapping=parse_maps(maps),
        ignore=frozenset(ignore or ()),
        max_errors=max_errors,
        encoding=encoding,
        decimal="," if decimal == "," else "." if decimal == "." else None,
    )
    run = csv_import.import_leads if kind == "leads" else csv_import.import_accounts
    with open_store(db) as store:
        try:
            with _progress_bar(path, progress) as bar:
                report = run(store, path, options, bar)
        except InputError as exc:
            console.print(f"[red]error[/red] {exc}", highlight=False)
            raise typer.Exit(2) from None
        rescored = rescore_leads(store, report.changed_leads, cause_ref=f"{kind} {path.name}")
    for note in report.notes:
        console.print(f"[yellow]note[/yellow] {note}", highlight=False)
    counts = {"rows": report.rows, "created": report.created, "updated": report.updated, "unchanged": report.unchanged,
              "rejected": report.rejected}  # fmt: skip
    if report.skipped:
        counts["skipped (suppressed)"] = report.suppressed
    if kind == "accounts":
        counts["leads linked by e-mail domain"] = report.leads_linked
    counts["leads rescored"] = rescored
    _summary(f"Imported {kind} from {path.name}", counts)
    console.print(
        f"{report.created:,} created, {report.updated:,} updated, {report.unchanged:,} unchanged, "
        f"{report.rejected:,} rejected",
        highlight=False,
    )
    for skipped in report.skipped:  # left out on purpose: not errors, the import still succeeds
        console.print(f"[yellow]skipped[/yellow] row {skipped.line}: {skipped.message}", highlight=False)
    _report_problems(report.problems, "row", errors_out, report.aborted)
    return report


@app.command("leads")
def leads_cmd(path: File, maps: Maps = None, ignore: Ignore = None, max_errors: MaxErrors = None,
              errors_out: ErrorsOut = None, progress: ShowProgress = None, db: Db = None,
              encoding: EncodingOpt = None, decimal: Decimal = None) -> None:  # fmt: skip
    """Leads from a CSV export (HubSpot, Salesforce or any spreadsheet): matched by id, then e-mail."""
    report = _run_csv("leads", path, maps, ignore, max_errors, errors_out, progress, db, encoding, decimal)
    if report.problems:
        raise typer.Exit(1)


@app.command("accounts")
def accounts_cmd(path: File, maps: Maps = None, ignore: Ignore = None, max_errors: MaxErrors = None,
                 errors_out: ErrorsOut = None, progress: ShowProgress = None, db: Db = None,
                 encoding: EncodingOpt = None, decimal: Decimal = None) -> None:  # fmt: skip
    """Accounts from a CSV export: matched by domain (from a domain or website column), else name."""
    report = _run_csv("accounts", path, maps, ignore, max_errors, errors_out, progress, db, encoding, decimal)
    if report.problems:
        raise typer.Exit(1)


@app.command("events")
def events_cmd(path: File, max_errors: MaxErrors = None, errors_out: ErrorsOut = None,
               progress: ShowProgress = None, db: Db = None,
               chunk_size: Annotated[int, typer.Option("--chunk-size", min=1, max=100_000,
                   help="Messages stored per transaction (memory grows with it, not with the file).")] = 5000,
               parse_workers: Annotated[int | None, typer.Option("--parse-workers", min=0, max=16,
                   help="Processes parsing lines beside the one storing them (0: parse in it; default: "
                        "1 for files of 8 MiB or more while a core is idle, else 0).")] = None,
               ) -> None:  # fmt: skip
    """Segment-spec messages, one JSON object a line (.jsonl or .jsonl.gz); the touched leads are rescored once, at the end."""
    from leadscore.ingest import jsonl_import
    from leadscore.scoring.pipeline import Backfill

    with open_store(db) as store:
        backfill = Backfill(store, source="import", cause_ref=f"import {path.name}")
        with _progress_bar(path, progress) as bar:
            report: EventImportReport = jsonl_import.import_events(
                path, backfill.add, chunk_size=chunk_size, max_errors=max_errors, progress=bar,
                workers=parse_workers,
            )  # fmt: skip
        with _rescore_bar(len(backfill.leads()), progress) as bar:
            report.leads_rescored, _ = backfill.finish(bar)
    counts = {"lines": report.lines, "accepted": report.accepted, "already imported": report.duplicates,
              "suppressed (dropped)": report.suppressed, "rejected": report.rejected, "leads created": report.leads_created,
              "leads rescored": report.leads_rescored}  # fmt: skip
    _summary(f"Imported events from {path.name}", counts)
    _report_problems(report.problems, "line", errors_out, report.aborted)
    if report.problems:
        raise typer.Exit(1)


@contextmanager
def _rescore_bar(leads: int, wanted: bool | None) -> Iterator[csv_import.Progress | None]:
    if not leads or not (sys.stdout.isatty() if wanted is None else wanted):
        yield None
        return
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        task = bar.add_task("rescoring leads", total=leads)
        yield lambda done, total: bar.update(task, completed=done, total=total)
