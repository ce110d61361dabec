"""``leadscore``: score, explain, history, validate, model versions, import, demo.

Every command module is imported here to register its commands, so each imports only typer, rich and the
standard library at module level and what its command needs inside the command function (see
``cli/__init__``); ``leadscore --help`` and ``leadscore validate`` load no database, web or learning code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from leadscore.cli import (
    batch_cmds,
    deadletters_cmds,
    demo_cmd,
    imports,
    learn_cmds,
    lifecycle_cmds,
    model_cmds,
    notify_cmds,
    privacy_cmds,
    process_cmd,
    review_cmds,
    server_cmds,
    users_cmds,
)
from leadscore.cli.options import AsOf, Db, Format, ScoreName, fmt_time, open_store, parse_as_of, resolve_lead
from leadscore.cli.render import (
    console,
    history_table,
    ledger_rows,
    ledger_table,
    print_more,
    print_rows,
    score_rows,
)
from leadscore.errors import LeadscoreError

if TYPE_CHECKING:
    from leadscore.compile.contributions import Explanation
    from leadscore.model import ScoringModel
    from leadscore.scoring.run import Active
    from leadscore.store import Store

app = typer.Typer(
    help="leadscore: lead scoring you can read. Fit + engagement models in YAML, compiled to SQL, every point explained.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command("demo")(demo_cmd.demo)
app.command("validate")(model_cmds.validate)
app.add_typer(model_cmds.app, name="model")
app.add_typer(imports.app, name="import")
app.command("evaluate")(learn_cmds.evaluate_cmd)
app.command("learn")(learn_cmds.learn_cmd)
app.command("backtest")(learn_cmds.backtest_cmd)
app.command("review")(review_cmds.review_cmd)
app.add_typer(review_cmds.alerts_app, name="alerts")
app.command("serve")(server_cmds.serve)
app.command("process")(process_cmd.process)
app.command("digest")(notify_cmds.digest)
app.add_typer(users_cmds.app, name="users")
app.command("audit")(users_cmds.audit_cmd)
app.add_typer(privacy_cmds.app, name="privacy")
app.add_typer(server_cmds.keys_app, name="keys")
app.command("stage")(lifecycle_cmds.stage)
app.command("reassign")(lifecycle_cmds.reassign)
app.add_typer(lifecycle_cmds.feedback_app, name="feedback")
app.add_typer(lifecycle_cmds.outcomes_app, name="outcomes")
app.add_typer(lifecycle_cmds.segments_app, name="segments")
app.add_typer(lifecycle_cmds.reports_app, name="reports")
app.add_typer(lifecycle_cmds.lifecycle_app, name="lifecycle")
app.add_typer(batch_cmds.app, name="batch")
app.add_typer(deadletters_cmds.app, name="deadletters")

ModelFile = Annotated[
    str | None,
    typer.Option("--model", help="Score with this model file instead of the active version (nothing saved)."),
]


def _active_or_file(store: object, model_file: str | None, score: str | None = None) -> Active:
    """The model file given, else the active version of the score ``score`` (the primary when None)."""
    from leadscore.scoring.run import Active
    from leadscore.store.model_versions import active_version

    if model_file:
        return Active(model_cmds.load_or_exit(Path(model_file)))
    with store.connect() as conn:  # type: ignore[attr-defined]
        return Active.of(active_version(conn, score))


def _people(conn: object, ids: list[int]) -> dict[int, dict[str, object]]:
    from sqlalchemy import select

    from leadscore.compile.sources import lead_company
    from leadscore.lifecycle.lead_filter import exportable
    from leadscore.store.schema import accounts, leads

    company = lead_company(leads, accounts).label("company")
    may_export = exportable(leads.c.attributes).label("exportable")
    rows = conn.execute(  # type: ignore[attr-defined]
        select(leads.c.id, leads.c.email, leads.c.first_name, leads.c.last_name, company, may_export)
        .select_from(leads.outerjoin(accounts, accounts.c.id == leads.c.account_id))
        .where(leads.c.id.in_(ids))
    ).mappings()
    return {r["id"]: dict(r) for r in rows}


@app.command("score")
def score_cmd(
    as_of: AsOf = None,
    top: Annotated[int | None, typer.Option("--top", help="Only the N highest scores.")] = None,
    fmt: Format = "table",
    model_file: ModelFile = None,
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Score every lead as of a time (default now). Scoring now with the active models saves the scores
    (every score's); the list shows the score named with --score (default: the primary). In every format
    it leaves out anyone who withdrew tracking consent (as every list of people) and says how many on
    stderr."""
    from sqlalchemy import select

    from leadscore.scoring.as_known import score_as_known
    from leadscore.scoring.pipeline import rescore_all
    from leadscore.scoring.run import all_leads, now_ms, score
    from leadscore.store.schema import leads

    with open_store(db) as store:
        when = parse_as_of(as_of)
        if model_file is None and when is None:
            ledgers = rescore_all(store, score_name=score_name)
        else:
            active = _active_or_file(store, model_file, score_name)
            with store.connect() as conn:
                if when is None:
                    ledgers = score(conn, active.model, store.sources(), all_leads(now_ms()))
                else:  # a time asked for is read as history reads it: the attributes known then
                    ids = conn.execute(select(leads.c.id).order_by(leads.c.id)).scalars()
                    pairs = [(int(lead), when) for lead in ids]
                    known = score_as_known(conn, active.model, store.sources(), pairs, explain=True)
                    ledgers = list(known.values())
        ledgers.sort(key=lambda lg: (-lg.score, lg.lead_id))
        # a list of people, in every format: less anyone who withdrew tracking consent (lead_filter)
        with store.connect() as conn:
            people = _people(conn, [lg.lead_id for lg in ledgers])
        listed = [lg for lg in ledgers if people.get(lg.lead_id, {}).get("exportable", True)]
        left_out, ledgers = len(ledgers) - len(listed), listed
        if top is not None:
            ledgers = ledgers[:top]
        title = f"Scores as of {fmt_time(ledgers[0].as_of)} UTC" if ledgers else "No leads"
        print_rows(score_rows(ledgers, people), fmt, title)
        if left_out:  # on stderr, so the output stays one document
            typer.echo(
                f"{left_out:,} lead{'s' if left_out != 1 else ''} left out: withdrew tracking consent",
                err=True,
            )


@app.command("explain")
def explain_cmd(
    lead: Annotated[str, typer.Argument(help="Lead id, e-mail or user id.")],
    as_of: AsOf = None,
    events: Annotated[
        bool, typer.Option("--events/--no-events", help="List the events each rule counted.")
    ] = True,
    fmt: Format = "table",
    model_file: ModelFile = None,
    score_name: ScoreName = None,
    line: Annotated[
        str | None,
        typer.Option(
            "--line",
            help="List every counted event of this engagement rule's line (the explanation lists each "
            "rule's newest 100), a page at a time.",
        ),
    ] = None,
    offset: Annotated[int, typer.Option(min=0, max=2**31 - 1, help="With --line: events skipped.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=100_000, help="With --line: events listed.")] = 1000,
    db: Db = None,
) -> None:
    """Every point of a lead's score traced: rule, events counted, decay, caps, fit vs engagement, grade, band."""
    from rich.markup import escape

    from leadscore.scoring.explain import explain_lead
    from leadscore.scoring.run import now_ms
    from leadscore.scoring.shown import cut_text
    from leadscore.store.lead_names import LEAD_NAMING, display_name

    if line is None and (offset, limit) != (0, 1000):
        raise typer.BadParameter("--offset and --limit page the events of one line: give --line RULE too")
    with open_store(db) as store:
        active = _active_or_file(store, model_file, score_name)
        when = parse_as_of(as_of) or now_ms()
        if line is not None:
            _line_events(store, active.model, lead, when, as_of is not None, line, offset, limit, fmt)
            return
        with store.connect() as conn:
            lead_id = resolve_lead(conn, lead)
            # a time asked for is read as history reads it: the attributes known then
            explanation = explain_lead(
                conn, active.model, store.sources(), lead_id, when, past=as_of is not None
            )
            who = _people(conn, [lead_id])[lead_id]
        if explanation is None:
            raise LeadscoreError(f"no lead {lead!r}")
        ledger = explanation.ledger
        if fmt == "json":
            payload = {
                **explanation.as_dict(),
                "lead": who,
                "model": active.version.label if active.version else "file",
            }
            print(json.dumps(payload, indent=2, default=str))
            return
        if fmt == "csv":  # the ledger's lines, as the table shows them (the events behind them: --line)
            print_rows(ledger_rows(ledger), "csv")
            return
        first, last, email = (v if isinstance(v, str) else None for v in map(who.get, LEAD_NAMING))
        name = display_name(first, last, email, lead_id)
        label = active.version.label if active.version else "model file"
        console.print(
            f"[bold]{escape(name)}[/bold] <{escape(email or '')}> — score [bold]{cut_text(ledger.score)}[/bold] "
            f"(fit {cut_text(ledger.fit_score)}, engagement {cut_text(ledger.engagement_score)}), grade {ledger.grade}, "
            f"level {ledger.level} ({ledger.grade}{ledger.level}), band {ledger.band} — as of {fmt_time(ledger.as_of)} UTC, {label}",
            highlight=False,
        )
        _print_weights(active.model)
        console.print(ledger_table(ledger, "Ledger (score points sum to the score)"))
        if events and explanation.events:
            _print_events(explanation)


LINE_EVENT_FIELDS = ("when", "event", "line_points", "adjustments", "score_points")


def _line_events(
    store: Store,
    model: ScoringModel,
    lead: str,
    when: int,
    past: bool,
    rule_id: str,
    offset: int,
    limit: int,
    fmt: str,
) -> None:
    """``explain --line``: a page of the events behind one rule's line, as the explanation shares them."""
    from leadscore.scoring.explain import EventPage, explain_line_events
    from leadscore.scoring.shown import shown_lines

    with store.connect() as conn:
        lead_id = resolve_lead(conn, lead)
        try:
            found = explain_line_events(
                conn, model, store.sources(), lead_id, when, EventPage(rule_id, offset, limit), past=past
            )
        except KeyError:
            rules = ", ".join(r.id for r in model.engagement) or "none"
            raise LeadscoreError(
                f"--line: the model has no engagement rule {rule_id!r} (its rules: {rules})"
            ) from None
    if found is None:
        raise LeadscoreError(f"no lead {lead!r}")
    if fmt == "json":
        print(json.dumps(found.as_dict(), indent=2, default=str))
        return
    from rich.markup import escape
    from rich.table import Table

    ln = found.as_dict()["line"]
    if ln is None and fmt != "csv":
        console.print(f"{rule_id}: no event has matched this rule", highlight=False)
        return
    shown = len(found.explanation.events)
    rows: list[dict[str, Any]] = [
        {
            "when": fmt_time(e.ts),
            "event": " ".join(part for part in (e.type, e.name, e.path) if part),
            "line_points": e.points,
            "adjustments": e.group_cap + e.floor + e.clamp,
            "score_points": e.score_points,
        }
        for e in found.explanation.events
    ]
    if fmt == "csv":
        print_rows(rows, "csv", fields=LINE_EVENT_FIELDS)
        print_more(shown, found.total, offset, fmt, "events")
        return
    assert ln is not None
    # the line as the ledger shows it (apportioned with the other lines: ``shown_lines``), as the lead page
    ledger = found.explanation.ledger
    at = next(i for i, x in enumerate(ledger.lines) if x.rule_id == rule_id)
    title = (
        f"{escape(ln['name'])} ({rule_id}): {shown_lines(ledger)[at]:+.2f} score points from {found.total:,} "
        f"events; {offset + 1 if shown else offset:,}–{offset + shown:,} newest first (score points each adds)"
    )
    table = Table(title=title)
    for col in ("when", "event", "line", "adjustments", "score points"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["when"]),
            escape(str(row["event"])),  # anybody's text, not markup
            *(f"{row[k]:+.4f}" for k in ("line_points", "adjustments", "score_points")),
        )
    console.print(table)
    if found.next_offset is not None:
        console.print(f"more: --offset {found.next_offset}", highlight=False)


def _print_weights(model: ScoringModel) -> None:
    s = model.scale
    total = s.weights.fit + s.weights.engagement
    console.print(
        f"score = {s.weights.fit / total:.2f} × fit (points / {s.fit_max:g} × 100) + "
        f"{s.weights.engagement / total:.2f} × engagement (points / {s.engagement_max:g} × 100)",
        highlight=False,
    )


def _print_events(explanation: Explanation) -> None:
    from rich.markup import escape
    from rich.table import Table

    from leadscore.scoring.shown import apportion, shown_lines

    table = Table(title="Events behind each line (score points; they add up to the line)")
    for col in ("line", "when", "event", "rule", "points"):
        table.add_column(col)
    for line, line_shown in zip(explanation.ledger.lines, shown_lines(explanation.ledger), strict=True):
        behind, more, rest = explanation.newest(line.rule_id)  # more: beyond each rule's EVENTS_PER_LINE
        shares = [share for _, share in behind]
        shown = apportion([*shares, rest] if more else shares, line_shown)  # adding up to the line as shown
        for (event, _), event_shown in zip(behind, shown, strict=False):
            what = escape(f"{event.type} {event.name or ''} {event.path or ''}".strip())  # not markup
            table.add_row(line.rule_id, fmt_time(event.ts), what, event.rule_id, f"{event_shown:+.2f}")
        if more:
            table.add_row(
                line.rule_id, "", f"{more:,} older event{'s' if more != 1 else ''}", "", f"{shown[-1]:+.2f}"
            )
    console.print(table)


@app.command("history")
def history_cmd(
    lead: Annotated[str, typer.Argument(help="Lead id, e-mail or user id.")],
    limit: lifecycle_cmds.PageLimit = 100,
    offset: lifecycle_cmds.PageOffset = 0,
    fmt: Format = "table",
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """The lead's score over time: one row per change, with its cause (events or a model change), a page
    at a time: --limit rows, the newest first from --offset (oldest first within the page), and how many
    more there are after it (on stderr with --format csv or json). The table's score path is the page's,
    with an ellipsis for the rows on other pages; its stage moves and notifications are paged alike."""
    from leadscore.scoring.history import score_path
    from leadscore.store.lifecycle_tables import stage_as_of
    from leadscore.store.model_versions import list_versions
    from leadscore.store.results import history_rows
    from leadscore.store.score_names import resolve

    with open_store(db) as store:
        with store.connect() as conn:
            lead_id = resolve_lead(conn, lead)
            rows, total = history_rows(conn, lead_id, limit, offset, resolve(conn, score_name))
            labels = {v.id: v.label for v in list_versions(conn)}
            if fmt == "table":
                stages = lifecycle_cmds.LeadStages.read(conn, lead_id, limit, offset)
            else:  # each row's stage then: the move at or before it, which may be older than any page's
                moved = {r["at_ms"]: stage_as_of(conn, lead_id, r["at_ms"]) for r in rows}
                stage_then = {at: m and m["to_stage"] for at, m in moved.items()}
        if fmt == "table":
            console.print(history_table(rows, labels))
            if rows:
                path = score_path(rows, older=offset + len(rows) < total, newer=offset > 0)
                console.print(f"score path: {path}", highlight=False)
            print_more(len(rows), total, offset, fmt)
            stages.print()
        else:
            out = [
                {**r, "at": fmt_time(r["at_ms"]), "model": labels.get(r["model_version_id"])} for r in rows
            ]
            print_rows([{**r, "stage": stage_then[r["at_ms"]]} for r in out], fmt)
            print_more(len(rows), total, offset, fmt)


@app.command("tick")
def tick_cmd(
    now: Annotated[
        str | None,
        typer.Option("--now", help="Run the tick as of this time (ISO date or date-time) instead of now."),
    ] = None,
    db: Db = None,
) -> None:
    """Rescore the leads whose score time alone has changed (a window, decay reaching a threshold): what
    `leadscore serve` does every LEADSCORE_CLOCK_TICK_S seconds, for cron."""
    from leadscore.scoring.clock import tick

    with open_store(db) as store:
        stats = tick(store, parse_as_of(now))
    console.print(f"{stats.leads} leads rescored, {stats.history_rows} history rows", highlight=False)


def main() -> None:
    try:
        app()
    except LeadscoreError as exc:
        console.print(f"[red]error[/red] {exc}", highlight=False)
        raise SystemExit(1) from None


if __name__ == "__main__":  # python -m leadscore.cli.main (the start-up test measures imports this way)
    main()
