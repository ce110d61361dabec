"""store.bulk.insert_rows: the real-time path's plain INSERTs store exactly what they are given."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, Text, select

from leadscore.store import Store
from leadscore.store.bulk import insert_rows
from leadscore.store.schema import leads

# a table of every kind of column the real-time path writes (the ledger's columns before migration 0028)
ledger = Table(
    "bulk_lines",
    MetaData(),
    Column("lead_id", Integer, primary_key=True),
    Column("score_name", String(63), primary_key=True),
    Column("rule_id", String(100), primary_key=True),
    Column("section", String(16), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("rule_group", String(100)),
    Column("matched", Integer),
    Column("raw", Float(precision=53)),
    Column("value", Float(precision=53), nullable=False),
    Column("decay", Float(precision=53)),
    Column("score_points", Float(precision=53), nullable=False),
    Column("note", Text, nullable=False),
)


@pytest.fixture(autouse=True)
def _lines_table(store: Store) -> None:
    ledger.create(store.engine)


def test_rows_are_stored_as_given_and_unknown_columns_are_refused(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        rows = [
            {
                "lead_id": 7,
                "score_name": "core",
                "rule_id": "a",
                "section": "fit",
                "kind": "fit",
                "rule_group": None,
                "matched": 1,
                "raw": 2.5,
                "value": 2.5,
                "decay": None,
                "score_points": 0.1 + 0.2,
                "note": 'it\'s "quoted"',
            },
            {
                "lead_id": 7,
                "score_name": "analytics",
                "rule_id": "b",
                "section": "engagement",
                "kind": "each",
                "rule_group": "mail",
                "matched": 3,
                "raw": 30.0,
                "value": 20.0,
                "decay": 0.5,
                "score_points": 1e-300,
                "note": "",
            },
        ]
        insert_rows(conn, ledger, rows)
        insert_rows(conn, ledger, [])
        with pytest.raises(ValueError, match="bulk_lines has no column points"):
            insert_rows(conn, ledger, [{"lead_id": 7, "points": 1}])
    with store.connect() as conn:
        stored = [dict(r) for r in conn.execute(select(ledger).order_by(ledger.c.rule_id)).mappings()]
    assert stored == rows  # floats bit for bit (0.1 + 0.2 stays 0.30000000000000004), quotes intact


def test_values_json_cannot_carry_and_integers_given_as_floats(store: Store) -> None:
    row = {
        "lead_id": 7,
        "score_name": "primary",
        "rule_id": "é\n\t\\",
        "section": "engagement",
        "kind": "each",
        "rule_group": None,
        "matched": 3.0,  # an integer column
        "raw": float("inf"),
        "value": -float("inf"),
        "decay": None,
        "score_points": 0.0,
        "note": "ünï",
    }
    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        insert_rows(conn, ledger, [row])
    with store.connect() as conn:
        (stored,) = [dict(r) for r in conn.execute(select(ledger)).mappings()]
    assert stored == {**row, "matched": 3}
    assert type(stored["matched"]) is int


def test_rows_conflicting_on_the_ignored_columns_are_skipped_and_counted(store: Store) -> None:
    """``ignore``: a row whose key (here a crossing's lead, version, kind, time and value) is stored
    already, or comes earlier in the same call, is skipped; the count is of the rows inserted."""
    from leadscore.store.results import CROSSING_KEY
    from leadscore.store.schema import model_versions, score_events

    def crossing(at_ms: int, to_value: str, score: float) -> dict[str, object]:
        return {"lead_id": 7, "score_name": "primary", "model_version_id": 1, "kind": "band",
                "from_value": None, "to_value": to_value, "at_ms": at_ms, "score": score,
                "cause_ref": "m1, m2", "recorded_ms": 5}  # fmt: skip

    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        conn.execute(
            model_versions.insert().values(
                id=1, name="m", version=1, yaml="model: m", sha256="x", created_ms=1, active=True
            )
        )
        assert insert_rows(conn, score_events, [crossing(10, "warm", 31.5)], ignore=CROSSING_KEY) == 1
        again = [crossing(10, "warm", 99.0), crossing(20, "hot", 70.25), crossing(20, "hot", 71.0)]
        assert insert_rows(conn, score_events, again, ignore=CROSSING_KEY) == 1
    with store.connect() as conn:
        stored = conn.execute(
            select(score_events.c.at_ms, score_events.c.to_value, score_events.c.score).order_by("at_ms")
        ).all()
    assert [tuple(r) for r in stored] == [(10, "warm", 31.5), (20, "hot", 70.25)]


def _line(i: int, **changed: object) -> dict[str, object]:
    """Ledger line ``i`` of lead 7: every value distinct, so a row stored twice or lost shows."""
    return {"lead_id": 7, "score_name": "primary", "rule_id": f"r{i:03d}", "section": "engagement",
            "kind": "each", "rule_group": None if i % 2 else "g", "matched": i, "raw": i / 8,
            "value": i + 0.1, "decay": 0.5 ** (i % 5), "score_points": -i / 3, "note": f"n{i}",
            **changed}  # fmt: skip


def test_sqlite_takes_many_rows_a_statement_and_stores_every_one(store: Store) -> None:
    """150 rows: two statements of 64 rows (one ``executemany``), then 16, 4 and 2 (150 = 128 + 22);
    every row stored as given, the count returned."""
    from sqlalchemy import event

    shapes: list[tuple[int, int]] = []  # (rows a statement, parameter sets)

    def count(
        conn: object, cursor: object, statement: str, params: object, context: object, many: bool
    ) -> None:
        if statement.startswith("INSERT INTO bulk_lines"):
            shapes.append((statement.count("(?"), len(params) if many else 1))  # type: ignore[arg-type]

    rows = [_line(i) for i in range(150)]
    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            assert insert_rows(conn, ledger, rows) == 150
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
    with store.connect() as conn:
        stored = [dict(r) for r in conn.execute(select(ledger).order_by(ledger.c.rule_id)).mappings()]
    assert stored == rows
    if store.engine.dialect.name == "sqlite":
        assert shapes == [(64, 2), (16, 1), (4, 1), (2, 1)]


def test_sqlite_statements_of_many_rows_skip_and_count_conflicts(store: Store) -> None:
    """``ignore`` in statements of 64 rows: 70 rows of which 3 are stored already and 1 repeats an
    earlier row of the call; 66 are inserted, and the stored ones keep their values."""
    from leadscore.store.results import CROSSING_KEY
    from leadscore.store.schema import model_versions, score_events

    def crossing(at_ms: int, score: float) -> dict[str, object]:
        return {"lead_id": 7, "score_name": "primary", "model_version_id": 1, "kind": "band",
                "from_value": None, "to_value": "warm", "at_ms": at_ms, "score": score,
                "cause_ref": "m", "recorded_ms": 5}  # fmt: skip

    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        conn.execute(
            model_versions.insert().values(
                id=1, name="m", version=1, yaml="model: m", sha256="x", created_ms=1, active=True
            )
        )
        stored = [crossing(at, 1.0) for at in (3, 40, 68)]
        assert insert_rows(conn, score_events, stored, ignore=CROSSING_KEY) == 3
        rows = [crossing(at, 2.0) for at in range(69)] + [crossing(10, 3.0)]
        assert insert_rows(conn, score_events, rows, ignore=CROSSING_KEY) == 66
    with store.connect() as conn:
        got = dict(conn.execute(select(score_events.c.at_ms, score_events.c.score)).all())
    assert got == {at: 1.0 if at in (3, 40, 68) else 2.0 for at in range(69)}


def test_columns_of_mixed_types_and_sums_too_large_for_a_float(store: Store) -> None:
    """An integer column given a float in one row only, a float column given an integer, a text column
    given a number: each value stored as its column's type; two values whose sum overflows a float (the
    check for values JSON cannot carry) and an infinity in a later row are stored as they are."""
    rows = [
        _line(0, matched=3.0, raw=5),
        _line(1, note=12),
        _line(2, value=1e308, score_points=1e308),
        _line(3, value=1e308, score_points=-float("inf")),
    ]
    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        insert_rows(conn, ledger, rows[:2])  # JSON on PostgreSQL
        insert_rows(conn, ledger, rows[2:])  # arrays on PostgreSQL
    with store.connect() as conn:
        stored = [dict(r) for r in conn.execute(select(ledger).order_by(ledger.c.rule_id)).mappings()]
    assert stored == [_line(0, matched=3, raw=5.0), _line(1, note="12"), rows[2], rows[3]]
    assert type(stored[0]["matched"]) is int and type(stored[0]["raw"]) is float
