"""A CSV row over the row limit (``limits.MAX_ROW_CHARS``) is refused as one problem naming its row, the
rows before and after it imported, and its line is never held whole: one 200 MB line (no quote, or no
line break at all) was read whole into memory (a peak of 476 MB for ``import leads``, the line read twice:
the encoding's detection, then the row). The limit is injected small here (``max_row_chars``)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pytest
from sqlalchemy import select

from leadscore.errors import InputError
from leadscore.ingest import csv_encoding
from leadscore.ingest.csv_encoding import detect
from leadscore.ingest.csv_import import ImportOptions, csv_records, import_accounts, import_leads
from leadscore.lifecycle.outcomes import read_outcomes
from leadscore.store import Store
from leadscore.store.schema import accounts, leads

LIMIT = 200
TOO_LONG = f"the row is longer than {LIMIT} characters (the most a row may hold)"
GOOD_BEFORE = [f"a{i}@x.example,A{i}" for i in range(3)]  # rows 2 to 4
GOOD_AFTER = [f"b{i}@x.example,B{i}" for i in range(3)]  # rows 6 to 8
# row 5, each way a line can be long: one long cell, a long quoted cell, many cells, multi-byte letters
LONG_ROWS = {
    "unquoted cell": "big@x.example," + "x" * 5_000,
    "quoted cell": 'big@x.example,"' + "x, " * 2_000 + '"',
    "many cells": "big@x.example," + ",".join("y" * 10 for _ in range(500)),
    "multi-byte letters": "big@x.example," + "é" * (LIMIT - 14),  # 201 characters with its line break
    # 200 characters, then the line break: a CR LF is cut between its two characters by the bounded read
    "the limit before its line break": "big@x.example," + "x" * (LIMIT - 14),
}


def emails(store: Store) -> set[str]:
    with store.connect() as conn:
        return set(conn.execute(select(leads.c.email)).scalars())


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
@pytest.mark.parametrize("shape", LONG_ROWS)
def test_a_row_over_the_limit_is_refused_alone(
    store: Store, tmp_path: Path, shape: str, newline: str
) -> None:
    path = tmp_path / "leads.csv"
    lines = ["Email,First Name", *GOOD_BEFORE, LONG_ROWS[shape], *GOOD_AFTER]
    path.write_bytes("".join(line + newline for line in lines).encode())
    report = import_leads(store, path, ImportOptions(max_row_chars=LIMIT))
    assert (report.rows, report.created, report.rejected) == (7, 6, 1)
    assert [(p.line, p.message) for p in report.problems] == [(5, TOO_LONG)]
    assert emails(store) == {line.split(",")[0] for line in GOOD_BEFORE + GOOD_AFTER}


def test_a_row_of_the_limit_is_read(store: Store, tmp_path: Path) -> None:
    """200 characters with the line break: the row is read, as before."""
    path = tmp_path / "leads.csv"
    row = "big@x.example," + "z" * (LIMIT - 15)
    path.write_text("Email,First Name\n" + row + "\n")
    report = import_leads(store, path, ImportOptions(max_row_chars=LIMIT))
    assert (report.created, report.problems) == (1, [])


def test_a_long_last_line_without_a_line_break(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("Email,First Name\n" + "\n".join(GOOD_BEFORE) + "\nbig@x.example," + "x" * 5_000)
    report = import_leads(store, path, ImportOptions(max_row_chars=LIMIT))
    assert (report.created, [(p.line, p.message) for p in report.problems]) == (3, [(5, TOO_LONG)])


def test_a_quote_left_open_before_a_long_line(store: Store, tmp_path: Path) -> None:
    """Row 5 opens a quote that never closes; its record reaches the long line (row 6) before the limit:
    row 5 is refused as the unclosed quote, row 6 as too long, and rows 7 to 9 are read as rows."""
    path = tmp_path / "leads.csv"
    lines = ["Email,First Name", *GOOD_BEFORE, 'open@x.example,"never closed', "big@x.example," + "x" * 5_000,
             *GOOD_AFTER]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    report = import_leads(store, path, ImportOptions(max_row_chars=LIMIT))
    unclosed = (
        f"a quote opened in this cell is not closed within {LIMIT} characters (the most a row may hold); "
        "the lines after it are read as rows"
    )
    assert [(p.line, p.field, p.message) for p in report.problems] == [
        (5, "First Name", unclosed),
        (6, None, TOO_LONG),
    ]
    assert emails(store) == {line.split(",")[0] for line in GOOD_BEFORE + GOOD_AFTER}


def test_a_header_over_the_limit_refuses_the_file(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("Email," + "H" * 5_000 + "\na@x.example,A\n")
    with pytest.raises(InputError) as info:
        import_leads(store, path, ImportOptions(max_row_chars=LIMIT))
    assert (info.value.problem.line, info.value.problem.message) == (1, f"the header row: {TOO_LONG}")


def test_accounts_refuse_a_long_row_alone(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_text("Domain,Company\na.example,A\nb.example," + "B" * 5_000 + "\nc.example,C\n")
    report = import_accounts(store, path, ImportOptions(max_row_chars=LIMIT))
    assert [(p.line, p.message) for p in report.problems] == [(3, TOO_LONG)]
    with store.connect() as conn:
        assert set(conn.execute(select(accounts.c.domain)).scalars()) == {"a.example", "c.example"}


def test_outcomes_refuse_a_long_row_alone(tmp_path: Path) -> None:
    path = tmp_path / "crm.csv"
    path.write_text(
        "Email,Outcome,Date,Reason\n"
        "ann@a.example,won,2024-05-02,\n"
        "bob@b.example,lost,2024-05-03," + "x" * 5_000 + "\n"
        "dora@d.example,won,2024-05-04,\n"
    )
    rows, problems = read_outcomes(path, limit=LIMIT)
    assert [(r.row, r.lead, r.kind) for r in rows] == [
        (2, "ann@a.example", "won"),
        (4, "dora@d.example", "won"),
    ]
    assert [(p.line, p.message) for p in problems] == [(3, TOO_LONG)]


def test_a_long_line_is_never_held_whole(tmp_path: Path) -> None:
    """Reading a file with a 20 MB line (the encoding's detection, then its records) allocates well under
    the line's size: before, both held it whole (tracemalloc's peak: over 20 MB)."""
    path = tmp_path / "big.csv"
    with path.open("w") as out:
        out.write("Email,Note\na@x.example,A\nbig@x.example,")
        for _ in range(20):
            out.write("x" * (1 << 20))
        out.write("\nb@x.example,B\n")
    tracemalloc.start()
    try:
        encoding = detect(path)
        with csv_records(path, encoding) as (_, records):
            read = [
                (number, cells if isinstance(cells, list) else cells.message) for number, cells in records
            ]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == [
        (1, ["Email", "Note"]),
        (2, ["a@x.example", "A"]),
        (3, "the row is longer than 131,072 characters (the most a row may hold)"),
        (4, ["b@x.example", "B"]),
    ]
    assert peak < 4 << 20, peak


@pytest.mark.parametrize("letter", ["é", "€", "😀"])
def test_the_encoding_of_a_long_line_read_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, letter: str
) -> None:
    """Read 1,001 bytes at a time, a line's multi-byte letters are cut between pieces: still UTF-8; the
    same line with its last letter cut short is not, and no other line is UTF-8: Windows-1252."""
    monkeypatch.setattr(csv_encoding, "PIECE", 1_001)
    path = tmp_path / "a.csv"
    line = (letter * 10_000).encode()
    path.write_bytes(b"Name\n" + line + b"\nplain\n")
    assert detect(path).codec == "utf-8-sig"
    path.write_bytes(b"Name\n" + line[:-1] + b"\nplain\n")
    assert detect(path).codec == "cp1252"
    path.write_bytes(b"Name\n" + line[:-1])  # the last line, without a line break
    assert detect(path).codec == "cp1252"


def test_a_windows_1252_file_with_a_long_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(csv_encoding, "PIECE", 1_001)
    path = tmp_path / "a.csv"
    path.write_bytes(("Name\n" + "é" * 5_000 + "\nJosé\n").encode("cp1252"))
    assert detect(path).codec == "cp1252"
