"""store.bulk.insert_rows: the real-time path's plain INSERTs store exactly what they are given."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from leadscore.store import Store
from leadscore.store.bulk import insert_rows
from leadscore.store.schema import leads, ledger


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
        with pytest.raises(ValueError, match="ledger has no column points"):
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
