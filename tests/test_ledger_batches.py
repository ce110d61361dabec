"""Result rows read a batch at a time (``compile.read_ledgers``, ``changes.next_changes``) give, row for
row, what each row read alone gives; the newest history rows of several scores read in one statement
(``results.last_histories``) are each score's own.

Reading a batch column by column is where a row could get a neighbour's value: every case of
tests/cases is read both ways and compared line by line, and a hand-built batch checks the numbers.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
from sqlalchemy import Connection

from case_runner import load_case, run_case
from leadscore.compile import Ledger, LedgerLine, compile_model, read_ledger
from leadscore.compile.changes import compile_changes, next_change, next_changes
from leadscore.compile.ledger import columns_of, line_rows, read_ledgers
from leadscore.model import loads_model
from leadscore.scoring.run import all_leads
from leadscore.store import Store
from leadscore.store.ledger_lines import pack_lines
from leadscore.store.results import append_history, last_histories, last_history
from leadscore.store.schema import leads

CASES = sorted((Path(__file__).resolve().parent / "cases").glob("*.yaml"))


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_a_batch_reads_as_its_rows_read_one_by_one(tmp_path: Path, path: Path) -> None:
    case = load_case(path)
    store = Store.from_url(str(tmp_path / "case.db"))
    try:
        run_case(store, case)
        with store.connect() as conn:
            result = conn.execute(compile_model(case.model, store.sources(), all_leads(case.as_of), "sqlite"))
            keys, rows = list(result.keys()), result.fetchall()
            changes = compile_changes(case.model, store.sources(), all_leads(case.as_of))
            windows = conn.execute(changes).mappings().all() if changes is not None else []
    finally:
        store.dispose()
    assert rows, "the case scores no lead"
    for include_zero in (False, True):
        batch = read_ledgers(case.model, columns_of(keys, rows), include_zero=include_zero)
        alone = [
            read_ledger(case.model, dict(zip(keys, row, strict=True)), include_zero=include_zero)
            for row in rows
        ]
        assert [asdict(lg) for lg in batch] == [asdict(lg) for lg in alone]
    if windows:
        found = columns_of(list(windows[0].keys()), [tuple(w.values()) for w in windows])
        assert next_changes(case.model, found) == [next_change(case.model, w) for w in windows]


MODEL = loads_model("""
model: two-rows
fit:
  - {id: vp, name: VP, when: {attribute: job_title, equals: vp}, points: 20}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 10, cap: 25, half_life: none}
groups: []
scale: {fit_max: 40, engagement_max: 50, weights: {fit: 0.5, engagement: 0.5}}
""")


def test_each_row_of_a_hand_built_batch_gets_its_own_lines() -> None:
    # row 1: a VP with 3 visits (30 raw points, capped at 25); row 2: no fit, no visit, but its
    # engagement floor raised -4 raw points to 0. Score points per raw point: fit 100/40 × 0.5 = 1.25,
    # engagement 100/50 × 0.5 = 1
    columns = {
        "lead_id": [1, 2],
        "as_of": [1000, 1000],
        "f__vp": [20.0, 0.0],
        "n__visit": [3, 0],
        "raw__visit": [30.0, None],
        "val__visit": [25.0, None],
        "fit_floor_adj": [0.0, 0.0],
        "fit_clamp_adj": [0.0, 0.0],
        "engagement_floor_adj": [0.0, 4.0],
        "engagement_clamp_adj": [0.0, 0.0],
        "score": [50.0, 0.0],
        "fit_score": [50.0, 0.0],
        "engagement_score": [50.0, 0.0],
        "fit_points": [20.0, 0.0],
        "engagement_points": [25.0, 0.0],
        "grade": ["B", "D"],
        "level": [1, 4],
        "band": ["hot", "cold"],
    }
    first, second = read_ledgers(MODEL, columns)
    assert [(ln.rule_id, ln.score_points, ln.matched, ln.capped, ln.decay) for ln in first.lines] == [
        ("vp", 25.0, 1, False, None),
        ("visit", 25.0, 3, True, 1.0),
    ]
    assert [(ln.rule_id, ln.score_points, ln.value) for ln in second.lines] == [
        ("floor:engagement", 4.0, 4.0)
    ]
    assert (first.lead_id, first.score, first.grade, second.lead_id, second.band) == (1, 50.0, "B", 2, "cold")
    assert read_ledger(MODEL, {k: v[1] for k, v in columns.items()}) == second


def test_a_read_ledgers_lines_are_its_rows_viewed_and_save_as_a_hand_built_ledger_does() -> None:
    # ``read_ledgers`` reads each line as a row (its stored values, name, capped) and makes the
    # ``LedgerLine`` views only when ``lines`` is read; the save and the decay bound read the rows. The same
    # batch as above, row 1: VP 20 raw fit points (25 score points), 3 visits 30 raw capped at 25
    columns = {
        "lead_id": [1],
        "as_of": [1000],
        "f__vp": [20.0],
        "n__visit": [3],
        "raw__visit": [30.0],
        "val__visit": [25.0],
        "fit_floor_adj": [0.0],
        "fit_clamp_adj": [0.0],
        "engagement_floor_adj": [0.0],
        "engagement_clamp_adj": [0.0],
        "score": [50.0],
        "fit_score": [50.0],
        "engagement_score": [50.0],
        "fit_points": [20.0],
        "engagement_points": [25.0],
        "grade": ["B"],
        "level": [1],
        "band": ["hot"],
    }
    (read,) = read_ledgers(MODEL, columns)
    rows = [
        ("vp", "fit", "fit", None, 1, 20.0, 20.0, None, 25.0, "", "VP", False),
        ("visit", "engagement", "each", None, 3, 30.0, 25.0, 1.0, 25.0, "", "Visit", True),
    ]
    assert list(line_rows(read)) == rows
    assert "lines" not in read.__dict__  # no view made yet
    by_hand = Ledger(1, 1000, 50.0, 50.0, 50.0, 20.0, 25.0, "B", 1, "hot", (
        LedgerLine("vp", "VP", "fit", "fit", 25.0, 20.0, raw=20.0, matched=1),
        LedgerLine("visit", "Visit", "engagement", "each", 25.0, 25.0, raw=30.0, matched=3, decay=1.0, capped=True),
    ))  # fmt: skip
    assert list(line_rows(by_hand)) == rows
    assert (
        pack_lines([read])
        == pack_lines([by_hand])
        == [
            '[["vp","fit","fit",null,1,20.0,20.0,null,25.0,""],'
            '["visit","engagement","each",null,3,30.0,25.0,1.0,25.0,""]]'
        ]
    )
    assert read == by_hand and read.lines == by_hand.lines and read.as_dict() == by_hand.as_dict()
    assert read.lines is read.lines  # the views are made once


def _history(lead_id: int, name: str, at_ms: int, score: float) -> dict[str, object]:
    return {
        "lead_id": lead_id,
        "score_name": name,
        "model_version_id": 1,
        "at_ms": at_ms,
        "score": score,
        "fit_score": 0.0,
        "engagement_score": score,
        "grade": "D",
        "level": 4,
        "band": "cold",
        "cause": "event",
        "cause_ref": "m",
        "recorded_ms": 1,
    }


def _two_scores_three_leads(conn: Connection) -> None:
    """Scores ``core`` and ``analytics`` (one empty version each) and leads 1, 2 and 3."""
    from leadscore.store.model_versions import add_version

    for name in ("core", "analytics"):
        add_version(conn, name, f"model: {name}\nfit: []\nengagement: []\n", 1, "", name)
    conn.execute(
        leads.insert(), [{"id": i, "attributes": {}, "created_ms": 1, "updated_ms": 1} for i in (1, 2, 3)]
    )


def test_the_newest_history_rows_of_several_scores_are_each_scores_own(store: Store) -> None:
    with store.begin() as conn:
        _two_scores_three_leads(conn)
        append_history(
            conn,
            [
                _history(1, "core", 10, 1.0),
                _history(1, "core", 30, 3.0),  # newest of (1, core)
                _history(1, "analytics", 40, 4.0),  # newest of (1, analytics)
                _history(1, "analytics", 20, 2.0),
                _history(2, "core", 50, 5.0),  # 2 has no analytics row; 3 has none at all
            ],
        )
        together = last_histories(conn, [1, 2, 3], ["core", "analytics"])
        alone = {name: last_history(conn, [1, 2, 3], score_name=name) for name in ("core", "analytics")}
    assert together == alone
    assert {name: {lid: row["score"] for lid, row in rows.items()} for name, rows in together.items()} == {
        "core": {1: 3.0, 2: 5.0},
        "analytics": {1: 4.0},
    }


def test_the_newest_history_row_of_a_tie_on_its_time_is_the_last_inserted(store: Store) -> None:
    # PostgreSQL reads each lead's newest row by a lateral join from the ids, SQLite by a correlated
    # subquery: both order by (at_ms, id) descending, so of rows at the same time the last inserted wins;
    # an id given twice reads its row once, an id without rows (or without a lead) reads none
    with store.begin() as conn:
        _two_scores_three_leads(conn)
        append_history(
            conn,
            [
                _history(1, "core", 30, 1.0),
                _history(1, "core", 30, 2.0),  # the same time, inserted later: (1, core) is 2.0
                _history(1, "core", 20, 9.0),  # inserted last, but older
                _history(1, "analytics", 40, 7.0),
                _history(1, "analytics", 40, 6.0),  # (1, analytics) is 6.0
                _history(2, "core", 5, 5.0),
                _history(2, "core", 5, 4.0),  # (2, core) is 4.0
            ],
        )
        ids = [2, 1, 2, 3, 99, 1]
        together = last_histories(conn, ids, ["core", "analytics", "nothing"])
        alone = {name: last_history(conn, ids, score_name=name) for name in ("core", "analytics", "nothing")}
    assert together == alone
    assert {name: {lid: row["score"] for lid, row in rows.items()} for name, rows in together.items()} == {
        "core": {1: 2.0, 2: 4.0},
        "analytics": {1: 6.0},
        "nothing": {},
    }
