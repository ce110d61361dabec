"""``leadscore review`` (proposals from sales feedback, outcomes and capacity, each backtested),
``leadscore alerts check|list``, and the sales-feedback section of ``leadscore evaluate``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from leadscore.cli.learn_cmds import (
    AsJson,
    Horizon,
    Outcome,
    Since,
    Until,
    _model,
    _ms,
    _period,
    _rows,
    print_feedback,
)
from leadscore.cli.options import Db, ScoreName, fmt_time, open_store, parse_as_of
from leadscore.cli.render import console

if TYPE_CHECKING:
    from leadscore.learn.review import Review

alerts_app = typer.Typer(help="Health alerts of the active model: drift, calibration, volume, acceptance.",
                         no_args_is_help=True)  # fmt: skip


def _print_review(result: Review) -> None:
    print_feedback(result.evidence)
    if not result.proposals:
        console.print("no proposals: the evidence supports the model as it is", highlight=False)
        return
    for p in result.proposals:
        console.print(f"[bold]{p.id}[/bold]: {p.title}", highlight=False)
        console.print(f"  why: {p.why}", highlight=False)
        bt = p.backtest
        if bt is not None and bt.baseline is not None:
            c, b = bt.candidate, bt.baseline
            console.print(
                f"  backtest: MQLs {b.mqls} → {c.mqls}, converted {b.converted} → {c.converted}, "
                f"precision {_pct(b.precision)} → {_pct(c.precision)}, recall {_pct(b.recall)} → {_pct(c.recall)}"
                f" (gained {bt.gained}, lost {bt.lost})",
                highlight=False,
            )


def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.0f} %"


def review_cmd(
    outcome: Outcome = "sql",
    horizon: Horizon = "30d",
    since: Since = None,
    until: Until = None,
    per_week: Annotated[
        float | None,
        typer.Option(
            "--per-week", help="Sales capacity: MQLs a week (default: LEADSCORE_ALERTS_CAPACITY_PER_WEEK)."
        ),
    ] = None,
    min_support: Annotated[
        int,
        typer.Option("--min-support", min=1, help="Fewest decided MQLs a rule must have given points to."),
    ] = 5,
    accept: Annotated[
        list[str] | None, typer.Option("--accept", help="Apply this proposal (its id) to the draft (repeat).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the draft model with the accepted proposals here."),
    ] = None,
    save_draft: Annotated[
        bool, typer.Option("--save-draft", help="Store the draft as a new version (not active).")
    ] = False,
    as_json: AsJson = False,
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Review the active model (of --score, default the primary): proposals from sales feedback, outcomes
    and capacity, each backtested as that score's team runs the lifecycle.

    Proposals: rules to remove (points mostly to leads sales rejected) or re-weight (lift on sales
    judgement and outcomes), the MQL threshold for sales capacity. --accept applies them to a draft.
    """
    from leadscore.learn.review import draft, review
    from leadscore.model import dump_model
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings
    from leadscore.store.model_versions import add_version

    capacity = per_week if per_week is not None else Settings().alerts.capacity_per_week
    with open_store(db) as store:
        label, model, version = _model(store, None, score_name)
        assert version is not None  # the active version of a score
        start, end = _period(store, since, until)
        with store.connect() as conn:
            result = review(conn, store.sources(), model, label, start_ms=start, end_ms=end, outcome=outcome,
                            horizon_ms=_ms(horizon), per_week=capacity, min_support=min_support,
                            score=version.score_name)  # fmt: skip
        chosen = [p for p in result.proposals if p.id in set(accept or ())]
        unknown = sorted(set(accept or ()) - {p.id for p in result.proposals})
        if unknown:
            raise typer.BadParameter(f"no proposal {', '.join(unknown)}; the proposals are: "
                                     f"{', '.join(p.id for p in result.proposals) or 'none'}")  # fmt: skip
        if as_json:
            print(json.dumps(result.as_dict(), indent=2, default=str))
        else:
            _print_review(result)
        if not chosen:
            return
        note = "Draft from the model review: " + "; ".join(p.title for p in chosen) + "."
        model_draft = draft(model, [p.edit for p in chosen], note)
        if output is not None:
            output.write_text(dump_model(model_draft), encoding="utf-8")
            console.print(f"wrote the draft to {output}", highlight=False)
        if save_draft:
            with store.begin() as conn:
                stored, _ = add_version(conn, model_draft.model, dump_model(model_draft), now_ms(), note,
                                        version.score_name)  # fmt: skip
            console.print(f"stored the draft as {stored.label} (not active)", highlight=False)


@alerts_app.command("check")
def alerts_check(as_of: Annotated[str | None, typer.Option("--as-of", help="Check as of this time.")] = None,
                 db: Db = None) -> None:  # fmt: skip
    """Run the health checks now: raise (and deliver through the outbox) alerts for failing checks."""
    from leadscore.learn.health import run_checks
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    settings = Settings()
    with open_store(db) as store:
        run = run_checks(store, settings, parse_as_of(as_of) or now_ms())
    for check in run.checks:
        state = {None: "no data", True: "FAILING", False: "ok"}[check.failing]
        console.print(f"{check.check}: {state} — {check.message}", highlight=False)
    console.print(f"raised {len(run.raised)}, cleared {len(run.cleared)}", highlight=False)


@alerts_app.command("list")
def alerts_list(score_name: ScoreName = None, db: Db = None) -> None:
    """The newest alerts, open first; with --score, only that score's (its ``volume:NAME`` and so on)."""
    from leadscore.store.alerts import list_alerts
    from leadscore.store.score_names import resolve

    with open_store(db) as store, store.connect() as conn:
        rows = list_alerts(conn, score=None if score_name is None else resolve(conn, score_name))
    rows.sort(key=lambda r: (r["cleared_ms"] is not None, -int(r["id"])))
    _rows("Alerts", ["check", "raised", "cleared", "message"],
          [[r["check"], fmt_time(r["raised_ms"]), fmt_time(r["cleared_ms"]) if r["cleared_ms"] else "open",
            r["message"]] for r in rows])  # fmt: skip
