"""``leadscore stage``, ``feedback accept|reject``, ``outcomes import``, ``segments list|export``,
``reports ...`` and ``lifecycle run``: the lifecycle from the command line."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from leadscore.cli.options import AsOf, Db, Format, ScoreName, fmt_time, open_store, parse_as_of, resolve_lead
from leadscore.cli.render import console, print_more, print_rows
from leadscore.errors import InputError, LeadscoreError, NotFoundError, Problem

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from leadscore.model import Lifecycle, ScoringModel
    from leadscore.store import Store


feedback_app = typer.Typer(
    help="Sales feedback: accept a lead (→ SQL) or reject it with a reason.", no_args_is_help=True
)
outcomes_app = typer.Typer(
    help="Outcomes (opportunity, won, lost, ...) from CRM exports.", no_args_is_help=True
)
segments_app = typer.Typer(help="Segments declared in the model: sizes and CSV export.", no_args_is_help=True)
reports_app = typer.Typer(
    help="Lifecycle reports: nurture, warmer, handoff, funnel, time in stage, acceptance.",
    no_args_is_help=True,
)
lifecycle_app = typer.Typer(
    help="The lifecycle runner: stage moves, assignment, notifications.", no_args_is_help=True
)

By = Annotated[str, typer.Option("--by", help="Who gives the feedback (a seller's name or id).")]


def lifecycle_model(store: Store) -> ScoringModel:
    from leadscore.scoring.pipeline import current_model

    active = current_model(store)
    if active is None or active.model.lifecycle is None:
        raise LeadscoreError("the active model has no lifecycle section (see docs/lifecycle.md)")
    return active.model


def _lifecycle(store: Store) -> Lifecycle:
    lifecycle = lifecycle_model(store).lifecycle
    assert lifecycle is not None
    return lifecycle


@dataclass(frozen=True)
class LeadStages:
    """A page of a lead's stage moves and of her notifications (``leadscore history`` shows them): ``limit``
    of each, the newest first from ``offset``, oldest first within the page; and how many there are."""

    moves: list[dict[str, Any]]
    sends: list[dict[str, Any]]
    offset: int
    total_moves: int
    total_sends: int

    @classmethod
    def read(cls, conn: Connection, lead_id: int, limit: int, offset: int) -> LeadStages:
        from leadscore.store.lifecycle_tables import stage_history_rows
        from leadscore.store.outbox import outbox_rows

        moves, total_moves = stage_history_rows(conn, lead_id, limit, offset)
        sends, total_sends = outbox_rows(conn, lead_id, limit, offset)
        return cls(moves, sends, offset, total_moves, total_sends)

    def rows(self) -> list[tuple[int, str, str, str]]:
        out = [
            (
                int(h["at_ms"]),
                f"stage {h['from_stage'] or '—'} → {h['to_stage']}",
                f"{h['cause']} ({h['transition']}): {h['cause_ref']}",
                "",
            )
            for h in self.moves
        ]
        out += [
            (
                int(o["sent_ms"] or o["created_ms"]),
                f"{o['channel']} {o['action']} to {o['target']}",
                str(o["status"]),
                o["last_error"] or "",
            )
            for o in self.sends
        ]
        return sorted(out, key=lambda r: r[0])

    def print(self) -> None:
        if not self.moves and not self.sends:
            return
        table = Table(title="Stages and notifications")
        for col in ("when", "what", "cause / status", "detail"):
            table.add_column(col)
        for at, what, cause, detail in self.rows():
            table.add_row(fmt_time(at), what, cause, detail)
        console.print(table)
        print_more(len(self.moves), self.total_moves, self.offset, "table", "stage moves")
        print_more(len(self.sends), self.total_sends, self.offset, "table", "notifications")


def stage(
    lead: Annotated[str, typer.Argument(help="Lead id, e-mail or user id.")],
    as_of: AsOf = None,
    db: Db = None,
) -> None:
    """A lead's lifecycle stage now or as of a time, with the move that put it there."""
    from leadscore.scoring.run import now_ms
    from leadscore.store.lifecycle_tables import stage_as_of

    with open_store(db) as store, store.connect() as conn:
        lead_id = resolve_lead(conn, lead)
        when = parse_as_of(as_of) or now_ms()
        row = stage_as_of(conn, lead_id, when)
    if row is None:
        console.print(f"lead {lead} had no stage at {fmt_time(when)} UTC", highlight=False)
        raise typer.Exit(1)
    console.print(
        f"{lead}: {row['to_stage']} since {fmt_time(row['at_ms'])} UTC "
        f"({row['cause']}, {row['transition']}: {row['cause_ref']})",
        highlight=False,
    )


def reassign(
    lead: Annotated[str, typer.Argument(help="Lead id, e-mail or user id.")],
    seller: Annotated[str, typer.Argument(help="The seller's id in the model's teams (lena, paul, ...).")],
    by: Annotated[str, typer.Option("--by", help="Who moves it (a manager's name), for the audit log.")],
    seen: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="The seller you saw holding it: refused if another manager reassigned it meanwhile "
            "(default: the one holding it when the command starts).",
        ),
    ] = None,
    db: Db = None,
) -> None:
    """Give a lead's open assignment to another seller: their SLA clock starts now and they are notified."""
    from leadscore.lifecycle.feedback import reassign as reassign_lead
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    with open_store(db) as store:
        model = lifecycle_model(store)
        with store.connect() as conn:
            lead_id = resolve_lead(conn, lead)
        stamp = now_ms()
        done = reassign_lead(
            store, model, lead_id, seller, by=by, settings=Settings(), now_ms=stamp, seen_seller=seen
        )
    due = f", due {fmt_time(done.due_ms)} UTC" if done.due_ms else ""
    console.print(f"{lead}: {done.previous} → {done.seller} ({done.team}){due}", highlight=False)


def _feedback(lead: str, decision: str, reason: str | None, note: str, by: str, db: str | None) -> None:
    from leadscore.lifecycle.feedback import give_feedback
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    with open_store(db) as store:
        model = lifecycle_model(store)
        with store.connect() as conn:
            lead_id = resolve_lead(conn, lead)
        stamp = now_ms()
        move = give_feedback(
            store,
            model,
            lead_id,
            decision,
            reason=reason,
            note=note,
            by=by,
            at_ms=stamp,
            settings=Settings(),
            now_ms=stamp,
        )
    console.print(f"{lead}: {decision}; stage {move.from_stage} → {move.to_stage}", highlight=False)


@feedback_app.command("accept")
def accept(
    lead: Annotated[str, typer.Argument(help="Lead id, e-mail or user id.")],
    by: By,
    note: Annotated[str, typer.Option(help="Free text for the record.")] = "",
    db: Db = None,
) -> None:
    """Accept a lead: it takes its 'accepted' transition (MQL → SQL in the example model)."""
    _feedback(lead, "accepted", None, note, by, db)


@feedback_app.command("reject")
def reject(
    lead: Annotated[str, typer.Argument(help="Lead id, e-mail or user id.")],
    reason: Annotated[
        str, typer.Option(help="One of the model's rejection_reasons (not_icp, student, ...).")
    ],
    by: By,
    note: Annotated[str, typer.Option(help="Free text for the record.")] = "",
    db: Db = None,
) -> None:
    """Reject a lead with a reason: it takes its 'rejected' transition (back to nurture)."""
    _feedback(lead, "rejected", reason, note, by, db)


@outcomes_app.command("import")
def import_outcomes(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: lead (lead_id/email/user_id), kind, date, amount, reason.",
        ),
    ],
    decimal: Annotated[
        str | None,
        typer.Option(
            "--decimal",
            help="'.' or ',': the amount column's decimal mark; default: decided from its values.",
        ),
    ] = None,
    db: Db = None,
) -> None:
    """Record outcomes from a CRM export; each may move the lead's stage. Re-importing a file changes nothing."""
    from leadscore.lifecycle.feedback import record_outcome
    from leadscore.lifecycle.outcomes import outcome_chunks
    from leadscore.scoring.pipeline import current_model
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    if decimal not in (None, ".", ","):
        raise typer.BadParameter(f"{decimal!r}: write . or ,", param_hint="--decimal")
    stored = duplicates = moved = bad = 0
    with open_store(db) as store:
        # before any model is published outcomes are only recorded (for learning); after, each may also
        # move its lead's stage
        active = current_model(store)
        settings, stamp = Settings(), now_ms()
        # a chunk of the file at a time: a 10-million-row export is never held whole
        for rows, problems in outcome_chunks(path, decimal):  # type: ignore[arg-type]
            for problem in problems:
                console.print(f"[red]error[/red] {problem}", highlight=False)
            bad += len(problems)
            for row in rows:
                try:
                    with store.connect() as conn:
                        lead_id = resolve_lead(conn, row.lead)
                except NotFoundError as exc:
                    console.print(f"[red]error[/red] {path}:{row.row} field lead: {exc}", highlight=False)
                    bad += 1
                    continue
                try:
                    new, move = record_outcome(
                        store,
                        active.model if active is not None else None,
                        lead_id,
                        row.kind,
                        at_ms=row.at_ms,
                        amount=row.amount,
                        reason=row.reason,
                        source="csv",
                        settings=settings,
                        now_ms=stamp,
                    )
                except InputError as exc:  # one bad row never sinks the others
                    where = Problem(exc.problem.message, str(path), row.row, field=exc.problem.field)
                    console.print(f"[red]error[/red] {where}", highlight=False)
                    bad += 1
                    continue
                stored += new
                duplicates += not new
                moved += bool(move and move.to_stage)
    console.print(
        f"{stored} outcomes recorded, {duplicates} already known, {moved} stage moves, {bad} bad rows",
        highlight=False,
    )
    if bad:
        raise typer.Exit(1)


@segments_app.command("list")
def list_segments(db: Db = None) -> None:
    """Every segment with its current number of members."""
    from leadscore.store.lifecycle_tables import segment_sizes

    with open_store(db) as store:
        lifecycle = _lifecycle(store)
        with store.connect() as conn:
            sizes = segment_sizes(conn)
        rows = [{"segment": s.id, "name": s.name, "members": sizes.get(s.id, 0)} for s in lifecycle.segments]
    print_rows(rows, "table", "Segments")


@segments_app.command("export")
def export_segment(
    segment: Annotated[str, typer.Argument(help="Segment id.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    db: Db = None,
) -> None:
    """A segment's members as CSV (lead, contact, company, stage, score, grade, band, entered)."""
    from leadscore.lifecycle import segments

    with open_store(db) as store:
        lifecycle = _lifecycle(store)
        found = next((s for s in lifecycle.segments if s.id == segment), None)
        if found is None:
            raise NotFoundError(f"no segment {segment!r}")
        if output is None:
            for chunk in segments.stream_members(store, found, "csv"):
                sys.stdout.write(chunk.decode())
        else:
            with output.open("wb") as out:
                out.writelines(segments.stream_members(store, found, "csv"))


def _report(rows: list[dict[str, Any]], fmt: str, title: str) -> None:
    for row in rows:
        for key in [k for k in row if k.endswith("_ms")]:
            row[key.removesuffix("_ms")] = fmt_time(row.pop(key))
    print_rows(rows, fmt, title)


def _report_page(rows: list[dict[str, Any]], total: int, offset: int, fmt: str, title: str) -> None:
    """A report's page of ``rows`` from ``offset`` of ``total``, the total in its title, and how many more
    there are after it (on stderr with --format csv or json, so the output stays one document)."""
    _report(rows, fmt, f"{title} ({total:,} in all)")
    print_more(len(rows), total, offset, fmt)


# the reports' pages, as the API's (``api.paging``) but for the bound: a terminal asks for what it shows
PageLimit = Annotated[int, typer.Option(min=1, max=100_000, help="Rows listed, in the report's order.")]
PageOffset = Annotated[int, typer.Option(min=0, help="Rows skipped first.")]


@reports_app.command("nurtured")
def report_nurtured(
    limit: PageLimit = 100,
    offset: PageOffset = 0,
    fmt: Format = "table",
    score: ScoreName = None,
    db: Db = None,
) -> None:
    """Leads being nurtured (the model's nurture stages), hottest first (--score: that score's team's), a
    page at a time; how many more there are is said after the page."""
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.score_stages import view_of

    with open_store(db) as store, store.connect() as conn:
        lifecycle = _lifecycle(store)
        view = view_of(conn, lifecycle, score)
        rows, total = reports.nurtured_page(conn, lifecycle, view, limit, offset)
    _report_page(rows, total, offset, fmt, "Being nurtured")


@reports_app.command("warmer")
def report_warmer(
    days: Annotated[int, typer.Option(min=1, help="Look back this many days.")] = 7,
    top: Annotated[int, typer.Option(min=1)] = 20,
    fmt: Format = "table",
    score: ScoreName = None,
    db: Db = None,
) -> None:
    """Getting warmer: the largest score increases over the last days (of the score named)."""
    from leadscore.lifecycle import reports
    from leadscore.scoring.run import now_ms
    from leadscore.scoring.shown import shown_change
    from leadscore.store.score_names import resolve

    with open_store(db) as store, store.connect() as conn:
        rows = reports.getting_warmer(conn, now_ms(), days, top, score_name=resolve(conn, score))
        if fmt == "table":  # the increase as the two scores are shown (JSON and CSV keep the numbers)
            for row in rows:
                row["increase"] = shown_change(row["score"], row["score_then"])
        _report(rows, fmt, f"Getting warmer ({days} days)")


@reports_app.command("handoff")
def report_handoff(
    limit: PageLimit = 100,
    offset: PageOffset = 0,
    fmt: Format = "table",
    score: ScoreName = None,
    db: Db = None,
) -> None:
    """Ready for handoff: leads in the handoff stage with their seller and SLA deadline (--score: that
    score's team's queue, with that score), a page at a time; how many more there are is said after the
    page (on stderr with --format csv or json, so the output stays one document)."""
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.score_stages import view_of

    with open_store(db) as store, store.connect() as conn:
        lifecycle = _lifecycle(store)
        rows, total = reports.handoff_page(conn, lifecycle, view_of(conn, lifecycle, score), limit, offset)
    _report_page(rows, total, offset, fmt, "Ready for handoff")


@reports_app.command("funnel")
def report_funnel(
    by: Annotated[
        str | None, typer.Option(help="Group by this lead attribute (lead_source, utm_campaign).")
    ] = None,
    fmt: Format = "table",
    score: ScoreName = None,
    db: Db = None,
) -> None:
    """Funnel counts and stage-to-stage conversion per week of entering (--score: that score's team's
    stages, docs/named-scores.md)."""
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.score_stages import view_of

    with open_store(db) as store, store.connect() as conn:
        lifecycle = _lifecycle(store)
        result = reports.funnel(conn, lifecycle, by, view=view_of(conn, lifecycle, score))
    print_rows(result["counts"], fmt, "Entered per week")
    print_rows(result["conversion"], fmt, "Conversion to the next funnel stage")
    print_rows(result["stages"], fmt, "All time: entered each stage, and reached the next")


@reports_app.command("time-in-stage")
def report_time(fmt: Format = "table", score: ScoreName = None, db: Db = None) -> None:
    """Hours spent in each stage (completed stays) and leads in it now (--score: that score's team's)."""
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.score_stages import view_of
    from leadscore.scoring.run import now_ms

    with open_store(db) as store, store.connect() as conn:
        lifecycle = _lifecycle(store)
        view = view_of(conn, lifecycle, score)
        _report(reports.time_in_stage(conn, lifecycle, now_ms(), view), fmt, "Time in stage")


@reports_app.command("acceptance")
def report_acceptance(fmt: Format = "table", score: ScoreName = None, db: Db = None) -> None:
    """Sales acceptance rate and rejection reasons (--score: of the leads the gates of that score handed
    to sales, docs/named-scores.md)."""
    from leadscore.lifecycle import reports
    from leadscore.lifecycle.score_stages import view_of

    with open_store(db) as store, store.connect() as conn:
        lifecycle = _lifecycle(store)
        result = reports.acceptance(conn, view_of(conn, lifecycle, score))
    rate = result["acceptance_rate"]
    console.print(
        f"accepted {result['accepted']}, rejected {result['rejected']}, acceptance rate "
        + ("—" if rate is None else f"{rate:.0%}"),
        highlight=False,
    )
    if result["reasons"]:
        print_rows(result["reasons"], fmt, "Rejection reasons")


@reports_app.command("accounts")
def report_accounts(
    limit: PageLimit = 100,
    offset: PageOffset = 0,
    fmt: Format = "table",
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Account scores (fit + buying-committee engagement), MQA stage and target accounts, highest first, a
    page at a time; how many more there are is said after the page.

    With --score NAME the account scores on that score (computed now for every account, to order them;
    the lifecycle stores the primary's)."""
    from leadscore.lifecycle import reports
    from leadscore.scoring.run import now_ms

    with open_store(db) as store, store.connect() as conn:
        rows, total = reports.account_page(conn, score_name, now_ms(), limit, offset)
    _report_page(rows, total, offset, fmt, "Accounts")


@lifecycle_app.command("run")
def run(
    once: Annotated[bool, typer.Option("--once", help="One round, then exit (cron).")] = False,
    db: Db = None,
) -> None:
    """Run the lifecycle worker: stage moves, assignment, SLA timers, segment updates, deliveries.

    `leadscore serve` runs it beside the API; run it alone for batch imports or from cron.
    """
    from leadscore.lifecycle.runner import LifecycleRunner, run_round
    from leadscore.settings import Settings

    settings = Settings()
    with open_store(db) as store:
        if once:
            stats = run_round(store, settings)
            delivery = stats.delivery
            console.print(
                f"{stats.started} leads started, {stats.evaluated} evaluated, {stats.moves} stage moves, "
                f"{stats.enqueued} notifications queued, {stats.escalated} escalations"
                + (
                    f"; sent {delivery.sent}, retrying {delivery.retried}, failed {delivery.failed}"
                    if delivery
                    else ""
                ),
                highlight=False,
            )
            return
        from leadscore.learn.health import run_checks

        runner = LifecycleRunner(store, settings, run_checks).start()
        console.print("lifecycle runner started; Ctrl-C stops it", highlight=False)
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            runner.stop()
