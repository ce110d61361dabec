"""A model measured against what happened: the numbers behind ``leadscore evaluate``.

Scores always come from the compiled query, point-in-time: each row is scored as of its own time with
the lead as known then (``scoring.as_known.score_as_known`` over the identities stitched by then), and
labelled by the outcome after it (``labels``).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from leadscore.compile import Ledger
from leadscore.errors import InputError, Problem
from leadscore.ingest.attributes import canonical
from leadscore.ingest.csv_import import ImportOptions, import_leads
from leadscore.learn import metrics
from leadscore.learn.dataset import Dataset, csv_data, duplicate_keys
from leadscore.learn.features import Attribute, number
from leadscore.learn.labels import data_end, label, outcome_times
from leadscore.learn.store_data import cutoff_pairs, known_at_cutoffs
from leadscore.learn.to_model import stated_probability
from leadscore.model import ScoringModel, walk
from leadscore.model.conditions import NUMERIC_OPS
from leadscore.model.lifecycle import BANDS
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.run import all_leads, now_ms, score
from leadscore.store import Store
from leadscore.store.schema import leads

CAPTURE_SHARES = (0.1, 0.2, 0.3)
RULE_KINDS = ("fit", "each", "once", "threshold")


@dataclass
class Evaluation:
    model: str
    outcome: str
    rows: int
    converted: int
    excluded: dict[str, int]
    roc_auc: float
    pr_auc: float
    capture: dict[str, float]
    deciles: list[metrics.Decile]
    bands: list[metrics.Group]
    cells: list[metrics.Group]
    calibration: list[metrics.CalibrationBin]
    ece: float
    probability: str  # where the probabilities for calibration came from
    rules: list[metrics.RuleLift] = field(default_factory=list)
    psi: float | None = None
    psi_periods: str = ""
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return metrics.finite(asdict(self))


def platt_cross_fit(y: npt.NDArray[Any], s: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
    """Probabilities from a score: a logistic map fitted on one half of the rows and applied to the other
    (and the reverse), so no row's probability was fitted on its own outcome."""
    y, s = np.asarray(y), np.asarray(s, float).reshape(-1, 1)
    half = np.arange(len(y)) % 2 == 0
    out = np.full(len(y), float(y.mean()) if len(y) else math.nan)
    for fit_on, apply_to in ((half, ~half), (~half, half)):
        if len(set(y[fit_on].tolist())) == 2 and apply_to.any():
            out[apply_to] = LogisticRegression().fit(s[fit_on], y[fit_on]).predict_proba(s[apply_to])[:, 1]
    return out


def evaluate_scores(
    model: str,
    outcome: str,
    y: Sequence[int],
    scores: Sequence[float],
    *,
    probabilities: Sequence[float] | None = None,
    bands: Sequence[str] = (),
    cells: Sequence[str] = (),
    rule_hits: dict[str, list[bool]] | None = None,
    periods: tuple[Sequence[float], Sequence[float], str] | None = None,
    excluded: dict[str, int] | None = None,
) -> Evaluation:
    ya, sa = np.asarray(y, dtype=np.int64), np.asarray(scores, dtype=float)
    if probabilities is None:
        p, note = (
            platt_cross_fit(ya, sa),
            "a logistic map of the score, cross-fitted on two halves of these rows",
        )
    else:
        p, note = np.asarray(probabilities, float), "the probability the model states for its points"
    table, ece = metrics.calibration(ya, p)
    warnings = one_class_warning(ya)
    return Evaluation(
        model=model,
        outcome=outcome,
        rows=len(ya),
        converted=int(ya.sum()),
        excluded=dict(excluded or {}),
        roc_auc=math.nan if warnings else metrics.roc_auc(ya, sa),
        pr_auc=math.nan if warnings else metrics.pr_auc(ya, sa),
        capture={f"top {round(100 * t)} %": metrics.capture(ya, sa, t) for t in CAPTURE_SHARES},
        deciles=metrics.gains(ya, sa),
        bands=_hot_first(metrics.by_group(ya, list(bands))) if len(bands) else [],
        cells=metrics.by_group(ya, list(cells)) if len(cells) else [],
        calibration=table,
        ece=ece,
        probability=note,
        rules=metrics.rule_lift(ya, rule_hits or {}),
        psi=metrics.psi(periods[0], periods[1]) if periods and len(periods[0]) and len(periods[1]) else None,
        psi_periods=periods[2] if periods else "",
        warnings=warnings,
    )


def one_class_warning(y: npt.NDArray[np.int64]) -> list[str]:
    """Ranking needs both outcomes: with one class only, ROC-AUC and PR-AUC are undefined."""
    converted = int(y.sum())
    if len(y) and 0 < converted < len(y):
        return []
    which = "no labelled row converted" if converted == 0 else "every labelled row converted"
    return [
        f"{which} ({converted} of {len(y)}): ROC-AUC and PR-AUC are undefined. From the store, rows whose "
        "horizon has not passed count only when they converted: give a period that ends at least one "
        "horizon before the newest data (--since, --until), or a shorter --horizon"
    ]


def rule_hits(model: ScoringModel, ledgers: Sequence[Ledger]) -> dict[str, list[bool]]:
    """For each rule: did it give the lead points?"""
    given = [
        {line.rule_id for line in lg.lines if line.kind in RULE_KINDS and line.value != 0} for lg in ledgers
    ]
    return {r.id: [r.id in g for g in given] for r in (*model.fit, *model.engagement)}


def evaluate_ledgers(
    model: ScoringModel, label_: str, outcome: str, ledgers: Sequence[Ledger], y: Sequence[int], **kw: Any
) -> Evaluation:
    """Calibration of the probability the model states (a learned one does), else of a cross-fitted map."""
    stated = stated_probability(model)
    return evaluate_scores(
        label_,
        outcome,
        y,
        [lg.score for lg in ledgers],
        probabilities=None
        if stated is None
        else [stated(lg.fit_points + lg.engagement_points) for lg in ledgers],
        bands=[lg.band for lg in ledgers],
        cells=[f"{lg.grade}{lg.level}" for lg in ledgers],
        rule_hits=rule_hits(model, ledgers),
        **kw,
    )


def evaluate_store(
    store: Store,
    model: ScoringModel,
    label_: str,
    *,
    outcome: str,
    horizon_ms: int,
    at: Sequence[int],
    end_ms: int | None = None,
) -> Evaluation:
    """The model scored as of each cutoff in ``at`` for every lead seen by then, against ``outcome``."""
    with store.connect() as conn:
        end = data_end(conn) if end_ms is None else end_ms
        labels = label(cutoff_pairs(conn, at), outcome_times(conn), outcome, horizon_ms, end)
        # each lead as known at each cutoff: her identities stitched by then, her attributes as known then
        by_pair = {
            pair: lg
            for known, group in known_at_cutoffs(conn, store.sources(), labels.pairs)
            for pair, lg in score_as_known(conn, model, known, group, explain=True).items()
        }
    ledgers = [by_pair[p] for p in labels.pairs]
    times = sorted({t for _, t in labels.pairs})
    periods = None
    if len(times) > 1:
        middle = times[len(times) // 2]
        early = [lg.score for lg in ledgers if lg.as_of < middle]
        late = [lg.score for lg in ledgers if lg.as_of >= middle]
        periods = (early, late, "scores as of cutoffs before the middle cutoff against those from it on")
    excluded = {k: v for k, v in labels.excluded.items() if v}
    return evaluate_ledgers(model, label_, outcome, ledgers, labels.y, periods=periods, excluded=excluded)


def evaluate_csv(model: ScoringModel, label_: str, path: Path, *, outcome: str, id_column: str) -> Evaluation:
    """The model against a flat CSV of leads: imported into a scratch SQLite store and scored by the
    compiled query (no times: every row with an outcome value is labelled). Only the columns the model
    reads (and the id, outcome and e-mail) are read: a bad cell in another sinks no row."""
    data = csv_data(path, outcome, id_column=id_column, only={*read_fields(model), "email"})
    duplicate_keys(data, id_column, str(path))
    readable_from_csv(model, set(data.columns) - {canonical(outcome)}, str(path))
    numbers_compared_with_numbers(model, data, str(path))
    truth = dict(zip(data.keys, data.y.tolist(), strict=True))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "evaluate.db"))
        try:
            options = ImportOptions(mapping={id_column: "user_id"}, ignore=frozenset({outcome}) | data.unread)
            report = import_leads(store, path, options)
            if report.problems:  # a row the store refuses (an e-mail that is not one) would go unscored
                raise InputError(*report.problems)
            with store.connect() as conn:
                external = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
                ledgers = [
                    lg
                    for lg in score(conn, model, store.sources(), all_leads(now_ms()))
                    if external[lg.lead_id] in truth
                ]
        finally:
            store.dispose()
    scored = {external[lg.lead_id] for lg in ledgers}
    lost = [(k, n) for k, n in zip(data.keys, data.lines, strict=True) if k not in scored]
    if lost:  # two ids, one e-mail: the import made them one lead, and one row's outcome would vanish
        raise InputError(Problem(f"the lead of id {lost[0][0]!r} is another row's too (the same e-mail); "
                                 f"{len(lost)} of {len(data)} rows so: one row per lead", str(path), lost[0][1],
                                 field=id_column))  # fmt: skip
    y = [truth[external[lg.lead_id]] for lg in ledgers]
    ev = evaluate_ledgers(model, label_, canonical(outcome), ledgers, y, excluded=data.excluded)
    if model.engagement:
        ev.warnings.append(f"the model's {len(model.engagement)} engagement rules read events, which a CSV "
                           "does not have: they give no lead points here")  # fmt: skip
    ev.warnings[:0] = data.notes
    return ev


def numbers_compared_with_numbers(model: ScoringModel, data: Dataset, file: str) -> None:
    """Refuse a model comparing a field with a number (``gte: 500``) where the CSV's column holds texts
    (``11-50``, a CRM's size range): no text is at least 500, so every lead would miss the rule."""
    texts = {f.name: j for j, f in enumerate(data.features)
             if f.kind == "categorical" and isinstance(f.source, Attribute)}  # fmt: skip
    for rule in model.fit:
        for c in walk(rule.when):
            if c.subject != "attribute" or c.field not in texts or c.op not in (*NUMERIC_OPS, "between"):
                continue
            j = texts[c.field]
            i = next(i for i, v in enumerate(data.X[:, j]) if v is not None and math.isnan(number(v)))
            raise InputError(Problem(f"rule {rule.id!r} compares {c.field!r} with a number ({c.op}), and the "
                                     f"column holds texts such as {data.X[i, j]!r}", file, data.lines[i],
                                     field=c.field))  # fmt: skip


# lead fields a CSV fills from another column (the e-mail's domain; a full name split in two)
_FILLED_FROM = {"email_domain": "email", "first_name": "name", "last_name": "name"}


def read_fields(model: ScoringModel) -> set[str]:
    """The attributes the model's fit rules read, and the columns a store fills them from."""
    fields = {c.field for rule in model.fit for c in walk(rule.when) if c.subject == "attribute"}
    return fields | {_FILLED_FROM[f] for f in fields if f in _FILLED_FROM}


def readable_from_csv(model: ScoringModel, columns: set[str], file: str) -> None:
    """Refuse a model whose fit rules read a field no column of the CSV holds: every lead would miss
    the rule, and the numbers would measure a model other than the one given. A rule on the account
    alone (``account.*``) is refused too, a CSV of leads has no accounts; a rule reading the account's
    copy of a field, else the lead's (a learned model's ``account.employees`` else ``employees``), reads
    the lead's."""
    for rule in model.fit:
        fields = [c.field for c in walk(rule.when) if c.subject == "attribute"]
        lead = [f for f in fields if not f.startswith("account.")]
        if fields and not lead:
            raise InputError(Problem(f"rule {rule.id!r} reads only the account ({fields[0]}), and a CSV of "
                                     "leads has no accounts", file, 1))  # fmt: skip
        absent = next((f for f in lead if f not in columns and _FILLED_FROM.get(f) not in columns), None)
        if absent is not None:
            raise InputError(Problem(f"rule {rule.id!r} reads {absent!r}, and no column of the file is "
                                     f"read as {absent!r}", file, 1))  # fmt: skip


def _hot_first(groups: list[metrics.Group]) -> list[metrics.Group]:
    """Bands in the order people read them: hot, warm, cold (any other key after them)."""
    return sorted(groups, key=lambda g: (BANDS.index(g.key) if g.key in BANDS else len(BANDS), g.key))
