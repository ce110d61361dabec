"""Self-contained HTML reports: tables and plots drawn here as inline SVG (no scripts, no network)."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from typing import Any

from leadscore.learn.backtest import BacktestResult
from leadscore.learn.evaluate import Evaluation
from leadscore.learn.train import LearnResult

WIDTH, HEIGHT, PAD = 420, 260, 40
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:60em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}svg{margin:.5em 1em .5em 0}
.axis{stroke:#888}.line{fill:none;stroke:#1f6fb4;stroke-width:2}.ref{stroke:#bbb;stroke-dasharray:4 3}
.bar{fill:#1f6fb4}.bar2{fill:#e07b39}text{font-size:11px;fill:#444}"""


def _num(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.{digits}f}" if isinstance(v, float) else html.escape(str(v))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_num(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _frame(title: str, body: str, xlabel: str, ylabel: str) -> str:
    x0, y0, x1 = PAD, HEIGHT - PAD, WIDTH - 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img">'
        f"<title>{html.escape(title)}</title>"
        f'<text x="{WIDTH / 2}" y="14" text-anchor="middle">{html.escape(title)}</text>'
        f'<line class="axis" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}"/><line class="axis" x1="{x0}" y1="20" x2="{x0}" y2="{y0}"/>'
        f'<text x="{(x0 + x1) / 2}" y="{HEIGHT - 8}" text-anchor="middle">{html.escape(xlabel)}</text>'
        f'<text x="12" y="{HEIGHT / 2}" transform="rotate(-90 12 {HEIGHT / 2})" text-anchor="middle">{html.escape(ylabel)}</text>'
        f"{body}</svg>"
    )


def _xy(x: float, y: float, ymax: float = 1.0) -> tuple[float, float]:
    """Data (x in 0..1, y in 0..ymax) to pixels."""
    return PAD + x * (WIDTH - 10 - PAD), HEIGHT - PAD - (y / ymax if ymax else 0) * (HEIGHT - PAD - 20)


def line_chart(
    title: str, points: Sequence[tuple[float, float]], xlabel: str, ylabel: str, diagonal: bool = True
) -> str:
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (_xy(px, py) for px, py in points))
    ref = ""
    if diagonal:
        (ax, ay), (bx, by) = _xy(0, 0), _xy(1, 1)
        ref = f'<line class="ref" x1="{ax}" y1="{ay}" x2="{bx}" y2="{by}"/>'
    return _frame(title, f'{ref}<polyline class="line" points="{path}"/>', xlabel, ylabel)


def bar_chart(
    title: str, series: Sequence[Sequence[float]], labels: Sequence[str], xlabel: str, ylabel: str
) -> str:
    n = max((len(s) for s in series), default=0)
    top = max((v for s in series for v in s if not math.isnan(v)), default=0.0) or 1.0
    slot = (WIDTH - 10 - PAD) / max(n, 1)
    width = slot * 0.8 / max(len(series), 1)
    bars = []
    for k, s in enumerate(series):
        for i, v in enumerate(s):
            x, y = _xy(0, 0 if math.isnan(v) else v, top)
            x += i * slot + k * width
            bars.append(f'<rect class="{"bar" if k == 0 else "bar2"}" x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" '
                        f'height="{HEIGHT - PAD - y:.1f}"><title>{_num(v)}</title></rect>')  # fmt: skip
    ticks = "".join(
        f'<text x="{_xy(0, 0)[0] + (i + 0.5) * slot:.1f}" y="{HEIGHT - PAD + 12}" text-anchor="middle">{html.escape(lbl)}</text>'
        for i, lbl in enumerate(labels)
    )
    scale = f'<text x="{PAD - 4}" y="24" text-anchor="end">{top:.3g}</text>'
    return _frame(title, "".join(bars) + ticks + scale, xlabel, ylabel)


def page(title: str, sections: Sequence[str]) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>{''.join(sections)}</body></html>\n")  # fmt: skip


def evaluation_html(ev: Evaluation) -> str:
    gains = [(0.0, 0.0)] + [(d.decile / len(ev.deciles), d.cumulative_capture) for d in ev.deciles]
    calib = [(c.predicted, c.observed) for c in ev.calibration]
    sections = [
        f"<p>Model <b>{html.escape(ev.model)}</b> against outcome <b>{html.escape(ev.outcome)}</b>: "
        f"{ev.rows} labelled rows, {ev.converted} converted.</p>",
        table(["excluded rows", "count"], list(ev.excluded.items())) if ev.excluded else "",
        table(
            ["ROC-AUC", "PR-AUC", "ECE", *ev.capture], [[ev.roc_auc, ev.pr_auc, ev.ece, *ev.capture.values()]]
        ),
        line_chart(
            "Gains: share of conversions in the top-scored leads",
            gains,
            "share of leads",
            "share of conversions",
        ),
        bar_chart(
            "Lift by decile",
            [[d.lift for d in ev.deciles]],
            [str(d.decile) for d in ev.deciles],
            "decile",
            "lift",
        ),
        line_chart("Calibration", calib, "predicted probability", "observed rate"),
        f"<p>Probabilities for calibration: {html.escape(ev.probability)}.</p>",
        "<h2>Deciles</h2>",
        table(
            ["decile", "leads", "converted", "rate", "lift", "cumulative capture", "min score", "max score"],
            [
                [
                    d.decile,
                    d.leads,
                    d.converted,
                    d.rate,
                    d.lift,
                    d.cumulative_capture,
                    d.min_score,
                    d.max_score,
                ]
                for d in ev.deciles
            ],
        ),
        "<h2>Bands</h2>",
        table(
            ["band", "leads", "converted", "rate"], [[g.key, g.leads, g.converted, g.rate] for g in ev.bands]
        ),
        "<h2>Fit × engagement (grade and level)</h2>",
        table(
            ["cell", "leads", "converted", "rate"], [[g.key, g.leads, g.converted, g.rate] for g in ev.cells]
        ),
        "<h2>Rules</h2>",
        table(
            ["rule", "coverage", "rate when hit", "rate otherwise", "lift"],
            [[r.rule, r.coverage, r.rate_hit, r.rate_miss, r.lift] for r in ev.rules],
        ),
        f"<p>Drift (PSI, {html.escape(ev.psi_periods)}): {_num(ev.psi)}</p>" if ev.psi is not None else "",
    ]
    return page(f"leadscore evaluation: {ev.model}", sections)


def learn_html(result: LearnResult) -> str:
    rows = [[m.name, m.roc_auc, m.pr_auc, m.ece] for m in (result.points, result.challenger) if m is not None]
    bins = [
        [r.feature.name, r.index, r.count, r.events, r.rate, r.woe, r.points]
        for r in result.scorecard.table()
    ]
    sections = [
        f"<p>{result.train_rows} training rows, {result.holdout_rows} held out ({result.holdout_converted} converted).</p>",
        table(["model (holdout)", "ROC-AUC", "PR-AUC", "ECE"], rows),
        "".join(f"<p><b>warning</b> {html.escape(w)}</p>" for w in result.warnings),
        "<h2>Scorecard</h2>",
        table(["feature", "bin", "leads", "converted", "rate", "WoE", "points"], bins),
        "<h2>Model YAML</h2>",
        f"<pre>{html.escape(result.yaml)}</pre>",
    ]
    return page(f"leadscore learn: {result.model.model}", sections)


def backtest_html(bt: BacktestResult) -> str:
    models = [m for m in (bt.candidate, bt.baseline) if m is not None]
    rows = [[m.model, m.threshold, m.mqls, m.already_mql, m.converted, m.labelled, m.precision, m.recall,
             m.median_days_to_mql] for m in models]  # fmt: skip
    sections = [
        table(
            [
                "model",
                "threshold",
                "MQLs",
                "already MQL",
                "converted",
                "labelled",
                "precision",
                "recall",
                "median days to MQL",
            ],
            rows,
        ),
        bar_chart(
            "MQLs per week",
            [m.weekly for m in models],
            [str(i + 1) for i in range(len(models[0].weekly))],
            "week",
            "MQLs",
        ),
        table(
            ["gained", "lost", "gained converted", "lost converted"],
            [[bt.gained, bt.lost, bt.gained_converted, bt.lost_converted]],
        ),
    ]
    return page(f"leadscore backtest: {bt.candidate.model}", sections)
