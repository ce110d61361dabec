"""The numbers behind the evaluation page and a draft's backtest, from ``learn`` (evaluate, backtest)
over the default period: the last twelve weeks of data, outcomes within 30 days.

The learning modules (numpy, scikit-learn) are imported by the functions that run them, when the
evaluation page or a draft's backtest is first asked for: the server starts without them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from leadscore.learn.labels import data_end
from leadscore.model import ScoringModel
from leadscore.store import Store

if TYPE_CHECKING:
    from leadscore.learn.backtest import BacktestResult
    from leadscore.learn.evaluate import Evaluation

DAY_MS = 86_400_000
PERIOD_DAYS = 84
HORIZON_DAYS = 30
EVERY_DAYS = 14
OUTCOMES = ("opportunity", "sql", "won")


def period(store: Store) -> tuple[int, int]:
    with store.connect() as conn:
        end = data_end(conn)
    return end - PERIOD_DAYS * DAY_MS, end


def evaluation(store: Store, model: ScoringModel, label: str, outcome: str) -> Evaluation:
    from leadscore.learn.evaluate import evaluate_store
    from leadscore.learn.store_data import cutoffs

    start, end = period(store)
    return evaluate_store(
        store,
        model,
        label,
        outcome=outcome,
        horizon_ms=HORIZON_DAYS * DAY_MS,
        at=cutoffs(start, end, EVERY_DAYS * DAY_MS),
        end_ms=end,
    )


def evaluation_of(url: str, yaml: str, label: str, outcome: str) -> Evaluation:
    """``evaluation`` in a process of its own (``remembered.in_child``): the store opened from its URL, the
    model parsed from the version's YAML."""
    from leadscore.scoring.run import model_of

    store = Store.from_url(url)
    try:
        return evaluation(store, model_of(yaml, label), label, outcome)
    finally:
        store.dispose()


def charts(ev: Evaluation) -> dict[str, dict[str, Any]]:
    """Chart data (see static/app.js): gains, calibration, conversion by band."""
    deciles = [str(d.decile) for d in ev.deciles]
    return {
        "gains": {
            "type": "line",
            "x": deciles,
            "series": [
                {
                    "label": "Share of conversions captured (model)",
                    "values": [round(d.cumulative_capture, 4) for d in ev.deciles],
                },
                {
                    "label": "Random order",
                    "values": [round((i + 1) / len(deciles), 4) for i in range(len(deciles))],
                },
            ],
            "xTitle": "score decile (1 = highest scores)",
            "yTitle": "cumulative share of conversions",
            "y": {"max": 1},
        },
        "calibration": {
            "type": "line",
            "x": [f"{b.low:.2f}–{b.high:.2f}" for b in ev.calibration],
            "series": [
                {
                    "label": "Observed conversion rate",
                    "values": [round(b.observed, 4) for b in ev.calibration],
                },
                {"label": "Predicted probability", "values": [round(b.predicted, 4) for b in ev.calibration]},
            ],
            "xTitle": "predicted probability bin",
            "yTitle": "rate",
        },
        "bands": {
            "type": "bar",
            "x": [g.key for g in ev.bands],
            "series": [{"label": "Conversion rate", "values": [round(g.rate, 4) for g in ev.bands]}],
            "xTitle": "band",
            "yTitle": "conversion rate",
        },
    }


def backtest_draft(
    store: Store, draft: tuple[str, ScoringModel], active: tuple[str, ScoringModel] | None, outcome: str,
    score: str | None = None,
) -> BacktestResult:  # fmt: skip
    """Replay the period with the draft and with the active model of the score ``score`` (the primary when
    None), each as that score's team runs the lifecycle (``learn.backtest``: the hot band for a model
    without one)."""
    from leadscore.learn.backtest import backtest

    start, end = period(store)
    with store.connect() as conn:
        return backtest(
            conn,
            store.sources(),
            (draft[0], draft[1], None),
            (active[0], active[1], None) if active else None,
            start_ms=start,
            end_ms=end,
            outcome=outcome,
            horizon_ms=HORIZON_DAYS * DAY_MS,
            score=score,
        )


def backtest_chart(result: BacktestResult) -> dict[str, Any]:
    """MQLs per week of the backtest, before (the active model) and after (the draft), as grouped bars;
    each week labelled by the day it starts (UTC)."""
    weeks = len(result.candidate.weekly)
    labels = [
        datetime.fromtimestamp((result.start_ms + i * 7 * DAY_MS) / 1000, tz=UTC).strftime("%Y-%m-%d")
        for i in range(weeks)
    ]
    series = []
    if result.baseline is not None:
        series.append(
            {"label": f"Before: {result.baseline.model} (active)", "values": result.baseline.weekly}
        )
    series.append({"label": f"After: {result.candidate.model} (draft)", "values": result.candidate.weekly})
    return {"type": "bar", "x": labels, "series": series, "xTitle": "week starting", "yTitle": "MQLs"}
