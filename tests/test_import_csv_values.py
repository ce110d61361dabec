"""CSV imports: encodings (a damaged row, a whole Windows-1252 file) and number formats per column.

The fixtures (tests/data/import/numbers_us.csv, numbers_eu.csv, cp1252_contacts.csv) are hand-written;
the expected values below are read off them by hand. The 1,700-row file is built here, row by row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadscore.cli.imports import app
from leadscore.errors import InputError
from leadscore.ingest.csv_encoding import detect
from leadscore.ingest.csv_import import ImportOptions, import_leads
from leadscore.ingest.csv_numbers import INT_RANGE, read
from leadscore.store import Store
from leadscore.store.schema import leads

DATA = Path(__file__).parent / "data" / "import"
runner = CliRunner()


def attributes(store: Store, email: str) -> dict[str, Any]:
    with store.connect() as conn:
        return dict(conn.execute(select(leads.c.attributes).where(leads.c.email == email)).scalar_one())


def lead_count(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(leads)).scalar_one())


def _mostly_utf8_with_one_latin1_row(path: Path) -> None:
    """1,700 leads; every tenth has an accented UTF-8 name; the lead on row 363 (data row 362) was
    pasted in from a Latin-1 file: its company is Latin-1 bytes."""
    lines = [b"Email,First Name,Company,Employees"]
    for i in range(1, 1701):
        name = "Zoë" if i % 10 == 0 else "Ann"
        company = b"Acme" if i != 362 else "Société Générale".encode("latin-1")
        lines.append(f"lead{i}@example.com,{name},".encode() + company + f",{i}".encode())
    path.write_bytes(b"\n".join(lines) + b"\n")


def test_one_latin1_row_among_1700_is_reported_and_the_rest_imported(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    _mostly_utf8_with_one_latin1_row(path)
    report = import_leads(store, path)
    assert (report.rows, report.created, report.rejected, report.encoding) == (1700, 1699, 1, "UTF-8")
    (problem,) = report.problems
    # "Soci" then 0xE9: the fifth character of the value
    assert (problem.line, problem.field) == (363, "Company")
    assert problem.message == "not valid UTF-8 (byte 0xE9 at position 5)"
    assert lead_count(store) == 1699
    assert attributes(store, "lead361@example.com") == {"employees": 361}
    assert attributes(store, "lead1700@example.com") == {"employees": 1700}  # rows after it are kept
    with store.connect() as conn:
        assert conn.execute(select(leads).where(leads.c.email == "lead362@example.com")).first() is None
        zoe = conn.execute(select(leads.c.first_name).where(leads.c.email == "lead10@example.com"))
        assert zoe.scalar_one() == "Zoë"


def test_a_windows_1252_file_is_detected_and_read_whole(store: Store) -> None:
    report = import_leads(store, DATA / "cp1252_contacts.csv")
    assert (report.created, report.rejected, report.encoding) == (4, 0, "Windows-1252")
    assert len(report.notes) == 1 and "not UTF-8" in report.notes[0]
    with store.connect() as conn:
        found = {
            r.email: (r.first_name, r.last_name, r.company)
            for r in conn.execute(
                select(leads.c.email, leads.c.first_name, leads.c.last_name, leads.c.company)
            )
        }
    assert found["francoise@exemple.fr"] == ("Françoise", "Lefèvre", "Société Générale")
    assert found["sean@example.ie"] == ("Seán", "O\u2019Brien", "Brú na Bóinne Ltd")  # 0x92: cp1252's ’
    assert attributes(store, "jose@example.es") == {"job_title": "Gerente €uro"}  # 0x80: cp1252's €
    assert attributes(store, "francoise@exemple.fr") == {"job_title": "Directrice \u2013 Marketing"}


def test_encoding_detection_rule(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"Email\na@b.io\n")
    assert (detect(path).name, detect(path).note) == ("UTF-8", None)  # ASCII is UTF-8
    path.write_bytes(b"Email,Name\na@b.io,Ren\xe9e\nc@d.io,Ann\n")  # only non-UTF-8 accents: Windows-1252
    assert detect(path).name == "Windows-1252"
    path.write_bytes(
        b"Email,Name\na@b.io,Ren\xe9e\nc@d.io,Zo\xc3\xab\n"
    )  # some UTF-8: UTF-8, one row damaged
    assert detect(path).name == "UTF-8"
    path.write_bytes("Email\na@b.io\n".encode("utf-16"))
    assert detect(path).name == "UTF-16"
    assert detect(path, "latin-1").note == "read as iso8859-1, as declared"
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        detect(path, "klingon")


def test_declared_encoding_and_damaged_header(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"Email,Name\na@b.io,Ren\xe9e\nc@d.io,Zo\xc3\xab\n")
    report = import_leads(store, path, ImportOptions(encoding="latin-1"))
    assert (report.created, report.rejected) == (2, 0)
    with store.connect() as conn:  # what the declaration asked for: UTF-8 bytes read as Latin-1
        first = conn.execute(select(leads.c.first_name).where(leads.c.email == "c@d.io")).scalar_one()
    assert first == "ZoÃ«"
    path.write_bytes(b"Email,N\xe9\na@b.io,Zo\xc3\xab\n")  # a UTF-8 row makes it UTF-8: the header is damaged
    with pytest.raises(InputError, match=r"the header row is not valid UTF-8 \(byte 0xE9 at position 2\)"):
        import_leads(store, path)
    with pytest.raises(InputError, match="unknown encoding"):
        import_leads(store, path, ImportOptions(encoding="klingon"))


def test_a_nul_in_the_header_is_refused_not_read_as_another_name(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_bytes(b"Email,Emp\x00loyees\na@b.io,12\n")
    # before: imported as an attribute "emp_loyees"
    with pytest.raises(InputError, match=r"the header row contains a NUL character \(column 2\)"):
        import_leads(store, path)
    path.write_bytes("Email,Employees\na@b.io,12\n".encode("utf-16-le"))  # UTF-16 without its BOM
    # before: "no column for email or user_id", which the file has
    with pytest.raises(InputError, match=r"NUL character \(column 1\); a UTF-16 file without a byte-order"):
        import_leads(store, path)


def test_us_number_formats(store: Store) -> None:
    report = import_leads(store, DATA / "numbers_us.csv")
    problems = [(p.line, p.field, p.message) for p in report.problems]
    assert [(line, column) for line, column, _ in problems] == [
        (5, "Revenue"),
        (6, "Budget"),
        (7, "Employees"),
    ]
    assert problems[0][2] == "'n/a' is not a number, and the column holds numbers"
    assert problems[1][2].startswith("'1,000' is ambiguous: 1000 with '.' as the decimal mark, 1.0 with ','")
    assert problems[2][2] == "'99999999999999999999' is outside the 64-bit integer range"  # before: no value
    assert (report.created, report.rejected) == (3, 3)
    # "1,000,000" settles '.' for Employees, so "1,000" there is a thousand; 02134 keeps Zip as text
    assert attributes(store, "ann@us.example") == {
        "employees": 1_000_000,
        "rate": 9.83e-05,
        "zip": "02134",
        "annual_revenue": 48_500_000.5,
    }
    assert attributes(store, "bob@us.example") == {
        "employees": 250,
        "rate": 0.5,
        "zip": "10001",
        "annual_revenue": 1200.75,
    }
    assert attributes(store, "cy@us.example") == {"employees": 1000, "rate": 0.001, "zip": "94105"}


def test_declared_decimal_mark_settles_ambiguous_values(store: Store) -> None:
    report = import_leads(store, DATA / "numbers_us.csv", ImportOptions(decimal="."))
    assert [(p.line, p.field) for p in report.problems] == [(5, "Revenue"), (7, "Employees")]
    assert attributes(store, "eve@us.example")["budget"] == 1000


def test_european_number_formats(store: Store) -> None:
    report = import_leads(store, DATA / "numbers_eu.csv")
    ((line, column, message),) = [(p.line, p.field, p.message) for p in report.problems]
    # Umsatz: two values only ',' reads as decimals, one ("3.5") only '.' does: ',' wins, row 5 is reported
    assert (line, column) == (5, "Umsatz")
    assert message.startswith("'3.5' is only a number with the other decimal mark; the column uses ','")
    assert attributes(store, "anna@eu.example") == {"mitarbeiter": 1_000_000, "umsatz": 1234.5, "anteil": 1.5}
    assert attributes(store, "ben@eu.example") == {"mitarbeiter": 1000, "umsatz": 2500.75, "anteil": 0.25}
    assert attributes(store, "carl@eu.example") == {"mitarbeiter": 80, "umsatz": 12, "anteil": 9.83e-05}


def test_number_spellings() -> None:
    assert read("9.83E-05", ".") == 9.83e-05 and read("9.83E-05", ",") is None
    assert read("1.000.000", ",") == 1_000_000 and read("1.000.000", ".") is None
    assert read("1,5", ",") == 1.5 and read("1,5", ".") is None
    assert read("1,000,000", ".") == 1_000_000 and read("1,000,000", ",") is None
    assert (read("1,000", "."), read("1,000", ",")) == (1000, 1.0)
    assert read("1\u00a0234,5", ",") == 1234.5 and read("1'000", ".") == 1000
    assert read("-0.5", ".") == -0.5 and read("+7", ".") == 7
    for text in ("02134", "1,00,000", "1.2.3", "1e", "--1", "1 000", "0x10", "½", "١٢"):
        assert read(text, ".") is None and read(text, ",") is None, text


@given(st.integers(-INT_RANGE, INT_RANGE - 1))
def test_grouped_integers_read_back(n: int) -> None:
    us = f"{n:,}"
    assert read(us, ".") == n
    assert read(us.replace(",", "."), ",") == n
    assert read(str(n), ".") == read(str(n), ",") == n


def test_cli_reports_encoding_and_takes_declarations(store: Store) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["leads", str(DATA / "cp1252_contacts.csv"), "--db", url])
    assert result.exit_code == 0, result.output
    assert "read as Windows-1252" in result.output
    result = runner.invoke(app, ["leads", str(DATA / "numbers_us.csv"), "--decimal", ".", "--db", url])
    assert result.exit_code == 1 and "'n/a' is not a number" in result.output
    assert attributes(store, "eve@us.example")["budget"] == 1000
    bad = runner.invoke(app, ["leads", str(DATA / "numbers_us.csv"), "--encoding", "klingon", "--db", url])
    assert bad.exit_code == 2 and "unknown encoding 'klingon'" in bad.output


def test_two_headers_read_as_one_attribute_are_said_and_the_first_non_blank_cell_kept(
    store: Store, tmp_path: Path
) -> None:
    """``Employees`` and ``Company Size`` are both read as ``employees``: the import says so, naming both
    columns (as learn, evaluate and outcomes import refuse such a file), and each row keeps its first
    non-blank cell of the two: Ann's 40 (her first), Bob's 75 (his first is blank)."""
    path = tmp_path / "two.csv"
    path.write_text("Email,Employees,Company Size\nann@example.com,40,900\nbob@example.com,,75\n")
    report = import_leads(store, path)
    assert (report.rows, report.created, report.rejected) == (2, 2, 0)
    assert "columns 2 ('Employees') and 3 ('Company Size') are both read as 'employees'" in " ".join(
        report.notes
    )
    assert attributes(store, "ann@example.com") == {"employees": 40}
    assert attributes(store, "bob@example.com") == {"employees": 75}


def _a_stray_quote_on_row_5(path: Path, rows_after: int) -> None:
    """Leads lead1..lead{4 + rows_after}, one a row: row 5 (lead4) has a first name that opens a quote and
    never closes it (``"Bob``); every other row is good."""
    lines = ["Email,First Name"] + [f"lead{i}@example.com,Ann" for i in range(1, 4)]
    lines.append('lead4@example.com,"Bob')
    lines += [f"lead{i}@example.com,Ann" for i in range(5, 5 + rows_after)]
    path.write_text("\n".join(lines) + "\n")


def test_a_quote_never_closed_loses_only_its_own_row(store: Store, tmp_path: Path) -> None:
    """The quote opened on row 5 runs to the end of the file: the 96 rows after it were read as one cell
    of row 5, which was refused as a first name over 255 characters, and those 96 leads were not
    imported. Row 5 alone is refused, saying why, and rows 6 to 101 are read as rows."""
    path = tmp_path / "quote.csv"
    _a_stray_quote_on_row_5(path, rows_after=96)
    report = import_leads(store, path)
    assert (report.rows, report.created, report.rejected) == (100, 99, 1)
    (problem,) = report.problems
    assert (problem.line, problem.field) == (5, "First Name")
    assert (
        problem.message == "a quote opened in this cell is never closed; the lines after it are read as rows"
    )
    assert lead_count(store) == 99
    assert attributes(store, "lead100@example.com") == {}
    with store.connect() as conn:
        assert conn.execute(select(leads).where(leads.c.email == "lead4@example.com")).first() is None


def test_a_quote_not_closed_within_the_field_limit_loses_only_its_own_row(
    store: Store, tmp_path: Path
) -> None:
    """Past 131,072 characters (the csv module's field limit) the swallowed lines ended in an unreadable
    row, and the rows they held (about 5,300 of 25 characters) were lost; now row 5 alone is refused. The
    limit is now the row's (``limits.MAX_ROW_CHARS``, the same number), its lines taken together."""
    path = tmp_path / "quote.csv"
    _a_stray_quote_on_row_5(path, rows_after=9_996)
    report = import_leads(store, path)
    assert (report.rows, report.created, report.rejected) == (10_000, 9_999, 1)
    (problem,) = report.problems
    assert (problem.line, problem.field) == (5, "First Name")
    assert problem.message == (
        "a quote opened in this cell is not closed within 131,072 characters (the most a row may hold); the "
        "lines after it are read as rows"
    )
    assert lead_count(store) == 9_999
