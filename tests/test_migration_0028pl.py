"""Migration 0028pl and ``store/ledger_lines.py``: a lead's score's ledger lines in one row, every value
read back as it was stored.

An old-shape store (a row per line) migrates with every line identical: floats bit for bit (-0.0, the
smallest subnormal, the largest double), NULLs kept, note text, every column; the downgrade gives the rows
back. Lines saved through ``save_current_scores`` with hostile values (NUL bytes and multi-byte text in a
note, a 100-character rule id, 64-bit-edge floats, infinities) read back identical on both engines.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import text

from leadscore.compile import Ledger, LedgerLine
from leadscore.store import Store
from leadscore.store.ledger_lines import LINE_COLUMNS, pack_tuples, read_lines, unpack_lines
from leadscore.store.model_versions import add_version
from leadscore.store.results import NamedResults, read_current, save_current_scores
from leadscore.store.schema import leads
from migration_steps import migrate

LONG_ID = "r" * 100
EDGES = (-0.0, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308, 0.1 + 0.2)


def _key(value: Any) -> Any:
    """A value as compared here: a float by its bits (``-0.0 != 0.0``), anything else as it is."""
    return ("float", value.hex()) if isinstance(value, float) else (type(value).__name__, value)


def _bits(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lines as compared here: every value by ``_key``."""
    return [{k: _key(v) for k, v in r.items()} for r in lines]


def _old_lines(lead_id: int) -> list[dict[str, Any]]:
    """Old-shape rows of two scores: edge floats, NULLs, quotes and multi-byte note text, a long rule id."""
    lines = [
        ("primary", "a", "fit", "fit", None, 1, 2.5, 2.5, None, 0.1 + 0.2, 'it\'s "quoted"'),
        ("primary", "b", "engagement", "each", "mail", 3, 30.0, 20.0, 0.5, -0.0, "ünï €😀"),
        ("primary", "floor:fit", "fit", "floor", None, None, None, 5e-324, None, -1.7976931348623157e308, ""),
        ("primary", LONG_ID, "engagement", "once", "g" * 100, 0, -0.0, 1.7976931348623157e308, 1.0, 1e-300,
         "x" * 10_000),
        ("other", "a", "fit", "fit", None, 1, 2.2250738585072014e-308, 1.0, None, 0.0, "\t\n\\"),
    ]  # fmt: skip
    return [dict(zip(LINE_COLUMNS, (lead_id, *line), strict=True)) for line in lines]


def _sorted(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(lines, key=lambda r: (r["lead_id"], r["score_name"], r["rule_id"]))


def test_an_old_store_migrates_with_every_line_identical_and_back(store: Store) -> None:
    migrate(store, "downgrade", "0027ip")
    with store.engine.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        conn.execute(leads.insert().values(id=8, attributes={}, created_ms=1, updated_ms=1))
        rows = _old_lines(7) + _old_lines(8)[:1]
        if store.dialect == "postgresql":  # a double column of PostgreSQL holds infinities and NaN too
            rows.append({**_old_lines(8)[1], "raw": math.inf, "value": -math.inf, "score_points": 1.5})
        names = ", ".join(LINE_COLUMNS)
        marks = ", ".join(f":{c}" for c in LINE_COLUMNS)
        conn.execute(text(f"INSERT INTO ledger ({names}) VALUES ({marks})"), rows)
        # as the old table reads them back (SQLite's float columns give -0.0 back as 0.0)
        rows = [dict(r) for r in conn.execute(text(f"SELECT {names} FROM ledger")).mappings()]
    assert len(rows) == 6 + (store.dialect == "postgresql")
    if store.dialect == "postgresql":
        assert (
            math.copysign(
                1.0, next(r["score_points"] for r in rows if (r["lead_id"], r["rule_id"]) == (7, "b"))
            )
            < 0
        )
    migrate(store, "upgrade", "heads")
    with store.connect() as conn:
        assert (
            conn.execute(text("SELECT count(*) FROM ledger")).scalar() == 3
        )  # (7, primary), (7, other), (8, primary)
        assert _bits(read_lines(conn, None, every_score=True)) == _bits(_sorted(rows))
        assert _bits(read_lines(conn, [7], "other")) == _bits(
            [r for r in _sorted(rows) if r["lead_id"] == 7][:1]
        )
        # the gates' and reasons' lines: score points != 0 (-0.0 and 0.0 are zero)
        nonzero = read_lines(conn, [7, 8], every_score=True, nonzero=True)
        assert _bits(nonzero) == _bits([r for r in _sorted(rows) if r["score_points"] != 0])
    migrate(store, "downgrade", "0027ip")
    with store.engine.connect() as conn:
        back = [dict(r) for r in conn.execute(text(f"SELECT {names} FROM ledger")).mappings()]
    assert _bits(_sorted(back)) == _bits(_sorted(rows))
    migrate(store, "upgrade", "heads")


def _hostile(lead_id: int) -> Ledger:
    lines = (
        LedgerLine(LONG_ID, "x", "engagement", "each", score_points=-0.0, value=5e-324, raw=math.inf,
                   matched=2**62, decay=2.2250738585072014e-308, group="ü" * 100, note="a\x00b\x00" * 3000),
        LedgerLine("clamp:fit", "c", "fit", "clamp", score_points=-1.7976931348623157e308,
                   value=1.7976931348623157e308, note="€😀 multi-byte"),
        LedgerLine("z", "z", "fit", "fit", score_points=0.1 + 0.2, value=-math.inf, raw=None, matched=None,
                   decay=None, note=""),
    )  # fmt: skip
    return Ledger(lead_id, 100, 50.0, 50.0, 50.0, 50.0, 50.0, "A", 1, "hot", lines)


def test_hostile_lines_round_trip_through_a_save(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(leads.insert().values(id=7, attributes={}, created_ms=1, updated_ms=1))
        v = add_version(conn, "tiny", "model: tiny\n", 1)[0].id
        plain = Ledger(7, 100, 1.0, 0.0, 1.0, 0.0, 1.0, "D", 4, "cold",
                       (LedgerLine("a", "a", "fit", "fit", score_points=-0.0, value=-0.0, raw=-0.0, matched=0),))  # fmt: skip
        save_current_scores(conn, [NamedResults("primary", v, [plain])], 1000)
        zero = 0.0 if store.dialect == "sqlite" else -0.0
        assert _bits(read_current(conn, 7)[1]) == _bits([dict(zip(LINE_COLUMNS, (7, "primary", "a", "fit", "fit", None, 0, zero,
                                                                   zero, None, zero, ""), strict=True))])  # fmt: skip
        save_current_scores(conn, [NamedResults("primary", v, [_hostile(7)])], 2000)
    with store.connect() as conn:
        _, got = read_current(conn, 7)
    want = [
        dict(zip(LINE_COLUMNS, (7, "primary", line.rule_id, line.section, line.kind, line.group, line.matched,
                                line.raw, line.value, line.decay, line.score_points, line.note), strict=True))
        for line in _hostile(7).lines
    ]  # fmt: skip
    if store.dialect == "sqlite":  # as SQLite's float columns gave a -0.0 back
        want = [{k: 0.0 if v == 0.0 and isinstance(v, float) else v for k, v in r.items()} for r in want]
    assert _bits(got) == _bits(_sorted(want))


def test_values_of_another_type_are_stored_as_their_column_reads_them() -> None:
    """An integer for a float column reads back a float, a float count an int (as the columns of the
    row-per-line table gave them back); NaN survives too."""
    (packed,) = pack_tuples([[("a", "fit", "fit", None, 3.0, 2, 1, None, math.nan, "")]])
    (line,) = unpack_lines(packed)
    assert line[:8] == ["a", "fit", "fit", None, 3, 2.0, 1.0, None] and math.isnan(line[8])
    assert type(line[4]) is int and type(line[5]) is float and type(line[6]) is float
    plain = pack_tuples([[("a", "fit", "fit", None, 1, -0.0, 5e-324, None, 1.0, "\x00")]])
    assert (
        unpack_lines(plain[0])[0][5:7] == [-0.0, 5e-324]
        and math.copysign(1, unpack_lines(plain[0])[0][5]) < 0
    )
