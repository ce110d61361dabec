"""``leadscore evaluate``, ``learn`` and ``backtest``: models measured against what actually happened."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from leadscore.cli.model_cmds import load_or_exit
from leadscore.cli.options import Db, ScoreName, fmt_time, open_store, parse_as_of
from leadscore.cli.render import console
from leadscore.errors import LeadscoreError, NotFoundError
from leadscore.learn.defaults import HOT_SHARE, WARM_SHARE

if TYPE_CHECKING:
    from leadscore.learn.backtest import BacktestResult
    from leadscore.learn.evaluate import Evaluation
    from leadscore.learn.metrics import RuleLift
    from leadscore.learn.sales_feedback import FeedbackEvidence
    from leadscore.learn.train import LearnResult
    from leadscore.model import ScoringModel
    from leadscore.store import Store
    from leadscore.store.model_versions import ModelVersion


Outcome = Annotated[
    str,
    typer.Option(
        "--outcome", help="Store: sql, opportunity, won, lost or disqualified. CSV: the outcome column."
    ),
]
Horizon = Annotated[
    str, typer.Option("--horizon", help="How long after the as-of time an outcome counts (e.g. 30d).")
]
Since = Annotated[str | None, typer.Option("--since", help="First cutoff / start of the period (ISO date).")]
Until = Annotated[
    str | None, typer.Option("--until", help="End of the period (ISO date; default: the newest data).")
]
Every = Annotated[str, typer.Option("--every", help="Time between cutoffs (e.g. 14d).")]
CsvFile = Annotated[
    Path | None,
    typer.Option(
        "--csv",
        exists=True,
        dir_okay=False,
        readable=True,
        help="A flat CSV of leads with an outcome column (instead of the store).",
    ),
]
IdColumn = Annotated[
    str | None, typer.Option("--id", help="CSV: the column that identifies a lead (holdout hash).")
]
Html = Annotated[Path | None, typer.Option("--html", help="Also write a self-contained HTML report here.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
DEFAULT_PERIOD_DAYS = 84  # twelve weeks: a quarter of history when no --since is given


def _ms(text: str) -> int:
    from leadscore.model import duration_seconds
    from leadscore.model.durations import parse_duration

    try:
        return int(duration_seconds(parse_duration(text)) * 1000)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _positive(text: str, option: str) -> float:
    """A finite number above 0 (an inverse regularisation strength), else a usage error."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{text!r} is not 'cv' or a number above 0", param_hint=option)
    return value


def _model(
    store: Store | None, ref: str | None, score_name: str | None = None
) -> tuple[str, ScoringModel, ModelVersion | None]:
    """A YAML file, a stored version (name@N, name, id) or, with no reference, the active version of the
    score ``score_name`` (the primary when None)."""
    from leadscore.scoring.run import Active
    from leadscore.store.model_versions import active_version, find_version

    if ref is not None and Path(ref).suffix in (".yaml", ".yml"):
        return ref, load_or_exit(Path(ref)), None
    if store is None:
        raise LeadscoreError("a stored model version needs --db; give a YAML file instead")
    with store.connect() as conn:
        version = find_version(conn, ref) if ref else active_version(conn, score_name)
    return version.label, Active.of(version).model, version


def _period(store: Store, since: str | None, until: str | None, horizon_ms: int = 0) -> tuple[int, int]:
    """(first, last cutoff). Without --until the last cutoff is one horizon before the newest data, so
    every cutoff's outcome window has passed (a later one labels only the rows that already converted)."""
    from leadscore.learn.labels import DAY_MS, data_end
    from leadscore.learn.store_data import check_period

    with store.connect() as conn:
        end = parse_as_of(until) or data_end(conn) - horizon_ms
    start = parse_as_of(since) or end - DEFAULT_PERIOD_DAYS * DAY_MS
    check_period(start, end)
    return start, end


def _write_html(path: Path | None, text: str) -> None:
    if path is not None:
        path.write_text(text, encoding="utf-8")
        console.print(f"report written to {path}", highlight=False)


def _rows(title: str, headers: list[str], rows: list[list[Any]]) -> None:
    table = Table(title=title)
    for h in headers:
        table.add_column(h, justify="left" if h == headers[0] else "right")
    for r in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else "—" if v is None else str(v) for v in r))
    console.print(table)


def _print_evaluation(ev: Evaluation) -> None:
    console.print(
        f"{ev.model} against {ev.outcome}: {ev.rows} labelled rows, {ev.converted} converted", highlight=False
    )
    for why, n in ev.excluded.items():
        console.print(f"  excluded: {n} {why}", highlight=False)
    for warning in ev.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    _rows(
        "Ranking",
        ["ROC-AUC", "PR-AUC", "ECE", *ev.capture],
        [[ev.roc_auc, ev.pr_auc, ev.ece, *ev.capture.values()]],
    )
    top20 = ev.capture.get("top 20 %")
    if top20 is not None and top20 == top20:  # NaN (no conversions) says nothing
        console.print(f"the top 20 % of leads hold {100 * top20:.0f} % of conversions", highlight=False)
    _rows("Lift and gains by decile", ["decile", "leads", "converted", "rate", "lift", "cumulative capture"],
          [[d.decile, d.leads, d.converted, d.rate, d.lift, d.cumulative_capture] for d in ev.deciles])  # fmt: skip
    _rows(
        "Conversion by band",
        ["band", "leads", "converted", "rate"],
        [[g.key, g.leads, g.converted, g.rate] for g in ev.bands],
    )
    _rows("Conversion by fit × engagement (grade, level)", ["cell", "leads", "converted", "rate"],
          [[g.key, g.leads, g.converted, g.rate] for g in ev.cells])  # fmt: skip
    _rows(
        "Calibration",
        ["predicted", "observed", "leads"],
        [[c.predicted, c.observed, c.leads] for c in ev.calibration],
    )
    _rows("Rules: leads that hit the rule convert `lift` times as often", ["rule", "coverage", "rate hit", "rate otherwise", "lift"],
          [[r.rule, r.coverage, r.rate_hit, r.rate_miss, r.lift] for r in ev.rules])  # fmt: skip
    if ev.psi is not None:
        console.print(f"drift: PSI {ev.psi:.3f} ({ev.psi_periods})", highlight=False)


def print_feedback(evidence: FeedbackEvidence, outcome_rules: list[RuleLift] | None = None) -> None:
    """Acceptance by sales per model version, rejection reasons, and per-rule lift on sales judgement
    beside the rule's lift on outcomes."""
    rate = evidence.acceptance_rate
    console.print(
        f"sales feedback: {evidence.decisions} decided MQLs, {evidence.accepted} accepted"
        + (f" ({100 * rate:.0f} %)" if rate is not None else ""),
        highlight=False,
    )
    if not evidence.decisions:
        return
    _rows("MQL acceptance by model version", ["version", "accepted", "rejected", "acceptance", "rejection reasons"],
          [[v.version, v.accepted, v.rejected, v.acceptance_rate,
            ", ".join(f"{k} {n}" for k, n in v.reasons.items())] for v in evidence.versions])  # fmt: skip
    on_outcomes = {r.rule: r.lift for r in outcome_rules or []}
    _rows("Rules on sales judgement: MQLs the rule gave points to, accepted and rejected",
          ["rule", "accepted", "rejected", "acceptance hit", "acceptance otherwise", "lift (sales)",
           "lift (outcomes)", "rejection reasons"],
          [[r.rule, r.accepted, r.rejected, r.acceptance_hit, r.acceptance_miss, r.lift, on_outcomes.get(r.rule),
            ", ".join(f"{k} {n}" for k, n in r.reasons.items())] for r in evidence.rules])  # fmt: skip


def evaluate_cmd(
    model_ref: Annotated[
        str | None, typer.Argument(help="Model version or YAML file (default: the active version).")
    ] = None,
    outcome: Outcome = "opportunity",
    horizon: Horizon = "30d",
    since: Since = None,
    until: Until = None,
    every: Every = "14d",
    csv: CsvFile = None,
    id_column: IdColumn = None,
    html: Html = None,
    as_json: AsJson = False,
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Measure a model against outcomes: AUC, lift, capture, bands, calibration, per-rule lift, drift.

    From the store it also reports acceptance by sales per model version, the rejection reasons, and
    each rule's lift on sales judgement beside its lift on outcomes.
    """
    from leadscore.learn import report_html
    from leadscore.learn.evaluate import evaluate_csv, evaluate_store
    from leadscore.learn.sales_feedback import feedback_evidence
    from leadscore.learn.store_data import cutoffs

    evidence: FeedbackEvidence | None = None
    if csv is not None:
        if id_column is None:
            raise typer.BadParameter("--csv needs --id (the column that identifies a lead)")
        label, model, _ = _model(None, model_ref)
        ev = evaluate_csv(model, label, csv, outcome=outcome, id_column=id_column)
    else:
        with open_store(db) as store:
            label, model, _ = _model(store, model_ref, score_name)
            start, end = _period(store, since, until, _ms(horizon))
            ev = evaluate_store(store, model, label, outcome=outcome, horizon_ms=_ms(horizon),
                                at=cutoffs(start, end, _ms(every)), end_ms=parse_as_of(until))  # fmt: skip
            with store.connect() as conn:
                evidence = feedback_evidence(conn, store.sources(), model, label)
    if as_json:
        print(
            json.dumps({**ev.as_dict(), **({"feedback": evidence.as_dict()} if evidence else {})}, indent=2)
        )
    else:
        _print_evaluation(ev)
        if evidence is not None:
            print_feedback(evidence, ev.rules)
    _write_html(html, report_html.evaluation_html(ev))


def _print_learn(result: LearnResult, output: Path) -> None:
    for column, why in result.dropped:
        console.print(f"  not a feature: {column}: {why}", highlight=False)
    for why, n in result.excluded.items():
        console.print(f"  excluded rows: {n} {why}", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)
    console.print(result.holdout, highlight=False)
    if result.choice:
        console.print(result.choice, highlight=False)
    rows = [
        [m.name, m.roc_auc, m.pr_auc, m.ece]
        for m in (result.points, result.unconstrained, result.challenger)
        if m is not None
    ]
    _rows(
        f"Holdout ({result.holdout_rows} rows, {result.holdout_converted} converted)",
        ["model", "ROC-AUC", "PR-AUC", "ECE"],
        rows,
    )
    n_rules = len(result.model.fit) + len(result.model.engagement)
    console.print(f"wrote {output}: model {result.model.model!r}, {n_rules} rules", highlight=False)


def learn_cmd(
    name: Annotated[str, typer.Option("--name", help="Name of the learned model.")] = "learned",
    output: Annotated[
        Path, typer.Option("--output", "-o", dir_okay=False, help="Where to write the model YAML.")
    ] = Path("learned.yaml"),
    outcome: Outcome = "opportunity",
    horizon: Horizon = "30d",
    since: Since = None,
    until: Until = None,
    every: Every = "14d",
    windows: Annotated[
        list[str] | None, typer.Option("--window", help="Event count windows (repeat; default 30d and 90d).")
    ] = None,
    csv: CsvFile = None,
    id_column: IdColumn = None,
    exclude: Annotated[
        list[str] | None,
        typer.Option(
            "--exclude",
            help="Column or attribute that must not be a feature: sales-entered or recorded after the outcome (repeat).",
        ),
    ] = None,
    categorical: Annotated[
        list[str] | None,
        typer.Option("--categorical", help="CSV: treat this numeric-looking column as categories (repeat)."),
    ] = None,
    max_bins: Annotated[int, typer.Option("--max-bins", min=2, help="Most bins per feature.")] = 12,
    max_rules: Annotated[
        int,
        typer.Option(
            "--max-rules",
            min=2,
            max=300,
            help="Rule budget: a model with more is learned again coarser (the unconstrained one is reported beside it).",
        ),
    ] = 30,
    min_bin_share: Annotated[
        float,
        typer.Option("--min-bin-share", min=0.0, max=0.5, help="Smallest bin, as a share of training rows."),
    ] = 0.01,
    regularisation: Annotated[
        str,
        typer.Option(
            "--c", help="Inverse regularisation strength, or 'cv' to choose it by cross-validation."
        ),
    ] = "cv",
    min_outcomes: Annotated[
        int,
        typer.Option("--min-outcomes", min=1, help="Fewest conversions (and non-conversions) to learn from."),
    ] = 50,
    challenger: Annotated[
        str, typer.Option("--challenger", help="lightgbm, hist (scikit-learn) or none.")
    ] = "lightgbm",
    hot_share: Annotated[
        float, typer.Option("--hot-share", help="Share of training leads in the hot band.")
    ] = HOT_SHARE,
    warm_share: Annotated[
        float, typer.Option("--warm-share", help="Share of training leads in the warm band.")
    ] = WARM_SHARE,
    rejected_negative: Annotated[
        bool,
        typer.Option(
            "--rejected-negative",
            help="Store: a lead sales rejected within the horizon is a non-conversion at once (not censored).",
        ),
    ] = False,
    holdout: Annotated[
        str,
        typer.Option(
            "--holdout",
            help="The rows held out to measure the model: hash (a fixed 30 % of ids), none, or "
            "time:COLUMN (the newest 30 % by that CSV column; 'time' from the store: by cutoff).",
        ),
    ] = "hash",
    test_csv: Annotated[
        Path | None,
        typer.Option(
            "--test-csv",
            exists=True,
            dir_okay=False,
            readable=True,
            help="CSV: measure on this file (same columns) instead of a holdout.",
        ),
    ] = None,
    html: Html = None,
    as_json: AsJson = False,
    db: Db = None,
) -> None:
    """Learn a points model from outcomes and write it as a normal model YAML (scorecard method)."""
    from leadscore.learn import report_html
    from leadscore.learn.dataset import csv_data, duplicate_keys
    from leadscore.learn.store_data import WINDOWS, cutoffs, store_data
    from leadscore.learn.train import learn
    from leadscore.model.durations import parse_duration

    if challenger not in ("lightgbm", "hist", "none"):
        raise typer.BadParameter("--challenger is lightgbm, hist or none")
    if not output.parent.is_dir():  # said before learning, not after it
        raise typer.BadParameter(
            f"no folder {str(output.parent)!r} to write {output.name!r} in", param_hint="--output"
        )
    if csv is None and (test_csv is not None or holdout.startswith("time:")):
        # said before the store's rows are read: a store's rows are held out by cutoff (--holdout time)
        raise typer.BadParameter("--test-csv and --holdout time:COLUMN go with --csv")
    c: Any = regularisation if regularisation == "cv" else _positive(regularisation, "--c")
    test = None
    if csv is not None:
        time_column = holdout.split(":", 1)[1] if holdout.startswith("time:") else None
        data = csv_data(csv, outcome, id_column=id_column, exclude=exclude or (),
                        categorical=categorical or (), time_column=time_column)  # fmt: skip
        if id_column is not None:  # one row per lead, as evaluate reads a file
            duplicate_keys(data, id_column, str(csv))
        if test_csv is not None:
            test = csv_data(test_csv, outcome, id_column=id_column, features=data.features)
            if id_column is not None:
                duplicate_keys(test, id_column, str(test_csv))
        source = f"Learned from {csv.name} (outcome {outcome})."
    else:
        with open_store(db) as store:
            start, end = _period(store, since, until, _ms(horizon))
            with store.connect() as conn:
                data, _ = store_data(conn, store.sources(), outcome=outcome, horizon_ms=_ms(horizon),
                                     at=cutoffs(start, end, _ms(every)), end_ms=parse_as_of(until),
                                     windows=[parse_duration(w) for w in windows or WINDOWS], exclude=exclude or (),
                                     rejected_negative=rejected_negative)  # fmt: skip
        rejected = " (rejected by sales: negative)" if rejected_negative else ""
        source = f"Learned from the store: outcome {outcome}{rejected} within {horizon}, cutoffs {fmt_time(start)[:10]} to {fmt_time(end)[:10]} every {every}."
    result = learn(data, name, challenger=None if challenger == "none" else challenger,  # type: ignore[arg-type]
                   holdout=holdout, test=test, hot_share=hot_share, warm_share=warm_share, description=source, max_bins=max_bins,
                   min_bin_share=min_bin_share, C=c, min_class_count=min_outcomes, max_rules=max_rules)  # fmt: skip
    output.write_text(result.yaml, encoding="utf-8")
    if as_json:
        print(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        _print_learn(result, output)
    _write_html(html, report_html.learn_html(result))


def _print_backtest(bt: BacktestResult) -> None:
    models = [m for m in (bt.candidate, bt.baseline) if m is not None]
    console.print(
        f"backtest {fmt_time(bt.start_ms)} → {fmt_time(bt.end_ms)} UTC, outcome {bt.outcome} within {bt.horizon_days:g} days",
        highlight=False,
    )
    _rows("MQLs", ["model", "threshold", "MQLs", "already MQL", "converted", "labelled", "precision", "recall", "median days to MQL"],
          [[m.model, m.threshold, m.mqls, m.already_mql, m.converted, m.labelled, m.precision, m.recall, m.median_days_to_mql]
           for m in models])  # fmt: skip
    _rows("MQLs per week", ["week", *(m.model for m in models)],
          [[i + 1, *(m.weekly[i] for m in models)] for i in range(len(bt.candidate.weekly))])  # fmt: skip
    if bt.baseline is not None:
        console.print(
            f"gained {bt.gained} MQLs ({bt.gained_converted} converted), lost {bt.lost} ({bt.lost_converted} converted)",
            highlight=False,
        )
    a = bt.advice
    if a.capacity_threshold is not None:
        console.print(
            f"threshold {a.capacity_threshold:g} gives {a.capacity_mqls_per_week:.1f} MQLs per week",
            highlight=False,
        )
    if a.precision_threshold is not None:
        console.print(
            f"threshold {a.precision_threshold:g} reaches precision {a.precision_reached:.3f}",
            highlight=False,
        )


def backtest_cmd(
    candidate: Annotated[str, typer.Argument(help="Candidate model: YAML file or version.")],
    against: Annotated[
        str | None,
        typer.Option("--against", help="Baseline version or YAML (default: the active version, if any)."),
    ] = None,
    since: Since = None,
    until: Until = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Candidate MQL threshold: the score its lifecycle asks for to enter the MQL stage "
            "(default: the model's own; its hot band without a lifecycle).",
        ),
    ] = None,
    baseline_threshold: Annotated[
        float | None,
        typer.Option("--baseline-threshold", help="Baseline MQL threshold (default: the model's own)."),
    ] = None,
    outcome: Outcome = "opportunity",
    horizon: Horizon = "30d",
    per_week: Annotated[
        float | None, typer.Option("--mqls-per-week", help="Advise the threshold for this sales capacity.")
    ] = None,
    precision: Annotated[
        float | None, typer.Option("--target-precision", help="Advise the threshold reaching this precision.")
    ] = None,
    save: Annotated[
        bool, typer.Option("--save", help="Store the candidate as a (not active) version with this backtest.")
    ] = False,
    html: Html = None,
    as_json: AsJson = False,
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Replay history for a candidate model against the active one: MQLs per week, precision, recall.

    With --score NAME the baseline is that score's active version, MQLs are that score's team's (its
    gates and its MQL stage in the lifecycle), and --save stores the candidate as a version of that
    score."""
    from leadscore.learn import report_html
    from leadscore.learn.backtest import backtest
    from leadscore.model import dump_model
    from leadscore.model.source import read_stored_text
    from leadscore.scoring.run import now_ms
    from leadscore.store.backtests import save_backtest
    from leadscore.store.model_versions import add_version

    with open_store(db) as store:
        label, model, version = _model(store, candidate)
        base: tuple[str, ScoringModel, ModelVersion | None] | None = None
        if against is not None:
            base = _model(store, against)
        else:
            try:
                base = _model(store, None, score_name)
            except NotFoundError:
                raise  # a score named that does not exist (a typo): an error, not a backtest without baseline
            except LeadscoreError as why:  # none active (nothing published yet, or the score is retired)
                base = None
                typer.echo(
                    f"warning: no baseline to compare with ({why}); --against VERSION names one", err=True
                )
        start, end = _period(store, since, until)
        with store.connect() as conn:
            bt = backtest(
                conn, store.sources(), (label, model, threshold),
                (base[0], base[1], baseline_threshold) if base else None,
                start_ms=start, end_ms=end, outcome=outcome, horizon_ms=_ms(horizon), per_week=per_week, precision=precision,
                score=score_name,
            )  # fmt: skip
        if save:
            stamp = now_ms()
            with store.begin() as conn:
                if version is None:  # a file: stored as its author wrote it, as `model publish` will
                    text = read_stored_text(Path(label)) if Path(label).exists() else dump_model(model)
                    version, _ = add_version(
                        conn, model.model, text, stamp, note="backtested candidate", score_name=score_name
                    )
                save_backtest(conn, version_id=version.id, baseline_id=base[2].id if base and base[2] else None,
                              outcome=outcome, start_ms=start, end_ms=end, threshold=bt.candidate.threshold,
                              summary=bt.as_dict(), now_ms=stamp)  # fmt: skip
    if as_json:
        print(json.dumps(bt.as_dict(), indent=2))
    else:
        _print_backtest(bt)
        if save and version is not None:
            console.print(f"backtest stored with {version.label}", highlight=False)
    _write_html(html, report_html.backtest_html(bt))


__all__ = ["backtest_cmd", "evaluate_cmd", "learn_cmd"]
