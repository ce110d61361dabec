"""A shadow model beside the active one on the same leads: their current scores now (which leads each
makes an MQL by its own threshold), and over time, the two replayed side by side since the shadow started
(``learn.backtest.backtest``, the lifecycle's own gates) against what became of the leads."""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, select

from leadscore.compile import Sources
from leadscore.errors import NotFoundError
from leadscore.learn.backtest import BacktestResult, backtest
from leadscore.learn.labels import data_end
from leadscore.lifecycle.replay import mql_threshold
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import Active
from leadscore.store.model_versions import get_version
from leadscore.store.schema import scores
from leadscore.store.shadows import read_shadow_scores, shadow_versions


@dataclass
class Comparison:
    active: str
    shadow: str
    started_ms: int
    leads: int  # leads scored by both
    mean_active: float | None
    mean_shadow: float | None
    mean_abs_difference: float | None
    active_threshold: float
    shadow_threshold: float
    mql_both: int
    mql_only_active: int
    mql_only_shadow: int
    since_start: BacktestResult | None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["since_start"] = self.since_start.as_dict() if self.since_start else None
        return out


def compare(
    conn: Connection, sources: Sources, shadow_id: int, *, outcome: str, horizon_ms: int, now_ms: int
) -> Comparison:
    started = shadow_versions(conn).get(shadow_id)
    if started is None:
        raise NotFoundError(f"model version {shadow_id} is not scored in shadow")
    shadow = Active.of(get_version(conn, shadow_id))
    assert shadow.version is not None
    # a shadow is a candidate for its own score: compared with that score's active version
    name = shadow.version.score_name
    current = active_model(conn, name)
    if current is None or current.version is None:
        raise NotFoundError("no active model to compare the shadow with")
    live_scores = select(scores.c.lead_id, scores.c.score).where(scores.c.score_name == name)
    live = {int(lead): float(s) for lead, s in conn.execute(live_scores)}
    beside = {lead: float(row["score"]) for lead, row in read_shadow_scores(conn, shadow_id).items()}
    common = sorted(set(live) & set(beside))
    a_t, s_t = mql_threshold(current.model), mql_threshold(shadow.model)
    a_mql = {lead for lead in common if live[lead] >= a_t}
    s_mql = {lead for lead in common if beside[lead] >= s_t}
    end = min(now_ms, data_end(conn))
    since = None
    if end > started:
        since = backtest(conn, sources, (shadow.version.label, shadow.model, None),
                         (current.version.label, current.model, None), start_ms=started, end_ms=end,
                         outcome=outcome, horizon_ms=horizon_ms, score=name)  # fmt: skip
    mean = statistics.fmean
    return Comparison(
        current.version.label, shadow.version.label, started, len(common),
        mean(live[lead] for lead in common) if common else None,
        mean(beside[lead] for lead in common) if common else None,
        mean(abs(live[lead] - beside[lead]) for lead in common) if common else None,
        a_t, s_t, len(a_mql & s_mql), len(a_mql - s_mql), len(s_mql - a_mql), since,
    )  # fmt: skip
