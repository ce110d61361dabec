"""History points scored through the ordered targets table (``run.TARGETS``, SQLite, from
``run.TABLE_TARGETS`` points a call) give the model's values, the same to the bit as through the bound
array, for a lead whose events come from two person keys (an anonymous visit stitched by an identify)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, select

from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.scoring import run
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.schema import leads

T0 = parse_time("2024-06-01T00:00:00Z", "t0")
DAY = 86_400_000
HOUR = 3_600_000
MODEL = loads_model("""
model: history-targets
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 50}
engagement:
  - {id: page, name: Page, event: {type: page}, points: 8, half_life: 1d}
  - {id: demo, name: Demo, event: {type: track, name: Demo Requested}, points: 20, half_life: none}
scale: {fit_max: 50, engagement_max: 100, bands: {hot: 70, warm: 30}}
""")


def _store(store: Store) -> int:
    messages: list[dict[str, Any]] = [
        {"type": "page", "anonymousId": "a1", "messageId": "p1", "timestamp": T0, "properties": {"path": "/"}},
        {"type": "identify", "userId": "u1", "anonymousId": "a1", "messageId": "i1", "timestamp": T0 + DAY,
         "traits": {"title": "VP Sales"}},
        {"type": "page", "userId": "u1", "messageId": "p2", "timestamp": T0 + DAY, "properties": {"path": "/"}},
        {"type": "track", "userId": "u1", "messageId": "t1", "event": "Demo Requested", "timestamp": T0 + 2 * DAY},
    ]  # fmt: skip
    publish(store, MODEL, as_of=T0 - DAY)
    ingest(
        store, [normalise(m, received_ms=T0 + 3 * DAY) for m in messages], source="test", as_of=T0 + 3 * DAY
    )
    with store.connect() as conn:
        return int(conn.execute(select(leads.c.id).where(leads.c.external_id == "u1")).scalar_one())


def _expected(at: int) -> tuple[float, float]:
    """(fit, engagement) points at ``at``, from the model: the VP title known from the identify on (a day
    after the first page), each page 8 points halving every day, the demo 20 points without decay."""
    fit = 50.0 if at >= T0 + DAY else 0.0
    pages = 8 * 0.5 ** ((at - T0) / DAY) + (8 * 0.5 ** ((at - T0 - DAY) / DAY) if at >= T0 + DAY else 0.0)
    return fit, pages + (20.0 if at >= T0 + 2 * DAY else 0.0)


def test_many_points_through_the_table_are_the_models_values_and_the_arrays(sqlite_store: Store) -> None:
    lead = _store(sqlite_store)
    # every three minutes over four days, across the identify: more points than the threshold after it
    times = [T0 + k * 180_000 for k in range(2 * run.TABLE_TARGETS)]
    assert times[-1] > T0 + 2 * DAY + HOUR
    filled: list[str] = []
    with sqlite_store.connect() as conn:

        @event.listens_for(conn, "before_cursor_execute")
        def _seen(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
            if statement.startswith("INSERT OR IGNORE INTO leadscore_targets"):
                filled.append(statement)

        many = score_as_known(conn, MODEL, sqlite_store.sources(), [(lead, at) for at in times])
        assert len(filled) >= 1  # the table was used ...
        filled.clear()
        few = {}
        for start in range(0, len(times), 500):  # ... and fewer points a call go by the bound array
            pairs = [(lead, at) for at in times[start : start + 500]]
            few.update(score_as_known(conn, MODEL, sqlite_store.sources(), pairs))
        assert not filled
    assert set(many) == {(lead, at) for at in times}
    for at in times:
        fit, engagement = _expected(at)
        got = many[(lead, at)]
        assert (got.fit_points, got.engagement_points) == pytest.approx((fit, engagement), rel=1e-12)
        one = few[(lead, at)]
        assert (got.score, got.fit_score, got.engagement_score, got.grade, got.level, got.band) == (
            one.score,
            one.fit_score,
            one.engagement_score,
            one.grade,
            one.level,
            one.band,
        )


def test_ledgers_of_many_points_through_the_table_are_those_through_the_arrays(sqlite_store: Store) -> None:
    """The current-score path (``score_points_models``, ledgers with their lines) takes the table too."""
    lead = _store(sqlite_store)
    times = [T0 + k * 180_000 for k in range(2 * run.TABLE_TARGETS)]
    pairs = [(lead, at) for at in times]
    with sqlite_store.connect() as conn:
        (many,) = run.score_points_models(conn, [MODEL], sqlite_store.sources(), pairs)
        few = [
            ledger
            for start in range(0, len(pairs), 500)
            for ledger in run.score_points_models(
                conn, [MODEL], sqlite_store.sources(), pairs[start : start + 500]
            )[0]
        ]
    assert len(many) == len(pairs)
    assert sorted(many, key=lambda lg: lg.as_of) == sorted(few, key=lambda lg: lg.as_of)
    # the demo's line at the last point: 20 of 100 engagement points, undecayed, an engagement score of 20,
    # half of the score (fit and engagement weigh alike): 10 score points
    last = max(many, key=lambda lg: lg.as_of)
    assert {line.rule_id: line.score_points for line in last.lines}["demo"] == pytest.approx(
        20.0 / 100 * 100 / 2
    )


def test_a_call_that_fails_leaves_no_targets_for_the_next(sqlite_store: Store) -> None:
    """A statement that fails after the table was filled (here: malformed JSON, found as its rows are
    read) leaves the table empty: the next call on the same connection and transaction, a caller having
    caught the error, scores its own points only (else the first call's 1,000 more came with them)."""
    from sqlalchemy import func, literal

    lead = _store(sqlite_store)
    first = [(lead, T0 + k * 60_000) for k in range(run.TABLE_TARGETS)]
    second = [(lead, T0 + DAY + k * 60_000) for k in range(run.TABLE_TARGETS)]

    def failing(table: bool) -> Any:
        targets = run.table_targets().subquery()
        return select(targets.c.lead_id, func.json_extract(literal("{not json"), "$"))

    with sqlite_store.connect() as conn:
        with pytest.raises(Exception, match="malformed JSON"):
            run.read_bound(conn, [MODEL], failing, first, explain=False)
        statement = lambda table: run.bound_statement(  # noqa: E731
            MODEL, sqlite_store.sources(), "sqlite", run.totals_only, table=table
        )
        (found,) = run.read_bound(conn, [MODEL], statement, second, explain=False)
    assert sorted((lg.lead_id, lg.as_of) for lg in found) == second
