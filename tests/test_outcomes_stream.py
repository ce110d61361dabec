"""``leadscore outcomes import`` streams the file: the memory it holds does not grow with the number of
rows (a 10-million-row CRM export). Before, every row read was kept in a list until the end of the file
(``read_outcomes``' ``read``), so 4× the rows held about 4× the memory. Measured with tracemalloc's peak
over the real command (rows without an outcome yet, ``open``, which record nothing: the reading alone is
measured, on both stores), not with a clock."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.lifecycle import outcomes
from leadscore.store import Store

runner = CliRunner()
ROWS = 2_500


def _export(path: Path, rows: int) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.write("Email,Outcome,Close Date,Amount,Reason\n")
        for n in range(rows):
            out.write(f'person{n}@example.com,open,2024-05-20,"{n},5",still talking to procurement {n}\n')
    return path


def _peak(url: str, path: Path) -> int:
    tracemalloc.start()
    try:
        result = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.exit_code == 0, result.output
    assert "0 outcomes recorded, 0 already known, 0 stage moves, 0 bad rows" in result.output
    return peak


def test_the_import_holds_the_same_memory_for_four_times_the_rows(store: Store, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    small, large = _export(tmp_path / "n.csv", ROWS), _export(tmp_path / "4n.csv", 4 * ROWS)
    _peak(url, small)  # imports and caches warmed up once
    one, four = _peak(url, small), _peak(url, large)
    # holding the rows, 3×ROWS more rows of about 400 bytes each held would add ~4.8 MB
    assert four < one * 1.25 + 200_000, (one, four)


def test_a_file_read_in_chunks_gives_the_rows_and_problems_of_one_read(
    tmp_path: Path, monkeypatch: object
) -> None:
    """The same outcomes and the same problems, with their row numbers, read in chunks of 2 rows as in
    one chunk; the amount column's decimal mark is decided from the whole column (row 6's "1,5" settles
    ',' for row 2's "12,000", read as 12.0 then, not 12000)."""
    path = tmp_path / "crm.csv"
    path.write_text(
        "Email,Outcome,Close Date,Amount\n"
        'a@x.example,won,2024-05-20,"12,000"\n'  # 2
        "b@x.example,won,not a date,\n"  # 3
        ",won,2024-05-20,\n"  # 4
        "c@x.example,maybe,2024-05-20,\n"  # 5
        'd@x.example,lost,2024-05-21,"1,5"\n'  # 6
        "e@x.example,open,,\n"  # 7
        "f@x.example,sql,2024-05-22,\n",  # 8
        encoding="utf-8",
    )
    whole = outcomes.read_outcomes(path)
    chunks = list(outcomes.outcome_chunks(path, size=2))
    assert len(chunks) > 2
    rows = [r for chunk, _ in chunks for r in chunk]
    problems = [p for _, found in chunks for p in found]
    assert (rows, problems) == whole
    assert [(r.row, r.lead, r.kind, r.amount) for r in rows] == [
        (2, "a@x.example", "won", 12.0),
        (6, "d@x.example", "lost", 1.5),
        (8, "f@x.example", "sql", None),
    ]
    assert [(p.line, p.field) for p in problems] == [(3, "close_date"), (4, "lead"), (5, "kind")]
