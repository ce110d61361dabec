"""Kept scoring statements executed by their prepared SQL (``run.execute_kept``) send SQLite what
SQLAlchemy's ``execute`` sends, the call's targets in their places, and give the same rows; where
SQLAlchemy would convert a value (PostgreSQL's arrays) they go through ``execute``. Fit lines shared by
the leads with the same value keep a zero's sign."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, event, select

from leadscore.compile.ledger import read_ledgers
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.scoring import run
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.schema import leads

T0 = parse_time("2024-06-01T00:00:00Z", "t0")
DAY = 86_400_000
MODEL = loads_model("""
model: kept
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 30}
engagement:
  - {id: page, name: Page, event: {type: page}, points: 8, half_life: none}
  - {id: demo, name: Demo, event: {type: track, name: Demo Requested}, points: 20, half_life: none}
scale: {fit_max: 50, engagement_max: 100, bands: {hot: 70, warm: 30}}
""")
OTHER = MODEL.model_copy(update={"model": "kept-other"})


def _leads(store: Store) -> list[int]:
    """u1: a VP with two pages and a demo request; u2: one page."""
    messages: list[dict[str, Any]] = [
        {"type": "identify", "userId": "u1", "messageId": "i1", "timestamp": T0, "traits": {"title": "VP Sales"}},
        {"type": "page", "userId": "u1", "messageId": "p1", "timestamp": T0, "properties": {"path": "/"}},
        {"type": "page", "userId": "u1", "messageId": "p2", "timestamp": T0 + 1, "properties": {"path": "/"}},
        {"type": "track", "userId": "u1", "messageId": "t1", "event": "Demo Requested", "timestamp": T0 + 2},
        {"type": "page", "userId": "u2", "messageId": "p3", "timestamp": T0, "properties": {"path": "/"}},
    ]  # fmt: skip
    publish(store, MODEL, as_of=T0 - DAY)
    ingest(store, [normalise(m, received_ms=T0 + DAY) for m in messages], source="test", as_of=T0 + DAY)
    with store.connect() as conn:
        found = {str(e): int(i) for e, i in conn.execute(select(leads.c.external_id, leads.c.id))}
    return [int(found["u1"]), int(found["u2"])]


def _sent(conn: Connection, call: Any) -> tuple[list[tuple[str, Any]], list[Any]]:
    """What ``call()`` sent the database (statement, parameters), and the rows it gave."""
    seen: list[tuple[str, Any]] = []

    def listen(_c: Any, _cursor: Any, statement: str, parameters: Any, _x: Any, _many: bool) -> None:
        seen.append((statement, tuple(parameters) if isinstance(parameters, list | tuple) else parameters))

    event.listen(conn, "before_cursor_execute", listen)
    try:
        rows = [tuple(row) for row in call().fetchall()]
    finally:
        event.remove(conn, "before_cursor_execute", listen)
    return seen, rows


def test_a_kept_statement_sends_what_execute_sends_with_each_calls_targets(store: Store) -> None:
    u1, u2 = _leads(store)
    at = T0 + DAY
    query = run.bound_models_statement([MODEL, OTHER], store.sources(), store.dialect)
    with store.connect() as conn:
        conn.execute(select(leads.c.id)).all()  # the transaction begun: each call sends its statement only
        for pairs in ([(u1, at)], [(u2, at), (u1, at)]):
            params = run.target_params(store.dialect, pairs)
            sent, rows = _sent(conn, lambda p=params: conn.execute(query, p))
            kept_sent, kept_rows = _sent(conn, lambda p=params: run.execute_kept(conn, query, p))
            assert kept_sent == sent
            assert kept_rows == rows
        # the second call's two leads, each model's: u1 30 fit points (VP) and 36 engagement points (two
        # pages, a demo request), u2 one page (8)
        keys = list(conn.execute(query, params).keys())
        found = sorted(
            (r[keys.index("score_index")], r[keys.index("lead_id")], r[keys.index("fit_points")],
             r[keys.index("engagement_points")])
            for r in kept_rows
        )  # fmt: skip
    assert found == sorted([(0, u1, 30.0, 36.0), (0, u2, 0.0, 8.0), (1, u1, 30.0, 36.0), (1, u2, 0.0, 8.0)])
    prepared = run._PREPARED[(id(query), store.dialect)][1]
    # SQLite runs it by its prepared SQL; PostgreSQL's target arrays go through ``execute``
    assert (prepared is not None) == (store.dialect == "sqlite")


def test_shared_fit_lines_keep_a_zeros_sign() -> None:
    # three leads: the VP points, and (included with ``include_zero``) a zero and a negative zero, each a
    # line of its own value
    columns = {
        "lead_id": [1, 2, 3],
        "as_of": [0, 0, 0],
        "tracking_allowed": [1, 1, 1],
        "f__vp": [30.0, 0.0, -0.0],
        **{f"{c}__{r}": [0, 0, 0] for r in ("page", "demo") for c in ("n", "raw", "val")},
        **{f"{s}_{a}_adj": [0.0, 0.0, 0.0] for s in ("fit", "engagement") for a in ("floor", "clamp")},
        **{c: [0.0, 0.0, 0.0] for c in ("score", "fit_score", "engagement_score", "fit_points")},
        "engagement_points": [0.0, 0.0, 0.0],
        "grade": ["D", "D", "D"],
        "level": [4, 4, 4],
        "band": ["cold", "cold", "cold"],
    }
    ledgers = read_ledgers(MODEL, columns, include_zero=True)
    fit = [next(ln for ln in lg.lines if ln.rule_id == "vp") for lg in ledgers]
    assert [str(ln.value) for ln in fit] == ["30.0", "0.0", "-0.0"]
    # score points per raw fit point: 100 / 50 × 0.5 (the default weights, fit and engagement alike)
    assert [str(ln.score_points) for ln in fit] == ["30.0", "0.0", "-0.0"]
