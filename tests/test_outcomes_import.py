"""``leadscore outcomes import`` of a one-row-per-lead CRM export (Email, Outcome, Opportunity Date, Close
Date, Amount), before any model is published, on both engines."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.ingest.segment import normalise
from leadscore.lifecycle.outcomes import read_outcomes
from leadscore.scoring.pipeline import ingest
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import outcomes

runner = CliRunner()
T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
DAY = 86_400_000
EXPORT = """Email,Outcome,Opportunity Date,Close Date,Amount
ann@a.example,won,2024-05-03,2024-05-20,"12,000.50"
bob@b.example,none,,,
carl@c.example,opportunity,2024-05-07,,
dora@d.example,lost,2024-05-04,2024-05-30,
eve@e.example,Won,2024-05-09,not a date,
,
fay@f.example,,,,
"""


def test_a_one_row_per_lead_export_is_recorded_before_any_model_is_published(
    store: Store, tmp_path: Path
) -> None:
    people = ("ann", "bob", "carl", "dora", "eve", "fay")
    ingest(store, [normalise({"type": "identify", "userId": p, "messageId": f"id-{p}",
                              "traits": {"email": f"{p}@{p[0]}.example"}}, received_ms=T0) for p in people],
           source="test")  # fmt: skip
    path = tmp_path / "crm.csv"
    path.write_text(EXPORT, encoding="utf-8")
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
    # row 6: a date that is not one; row 7: no lead; bob and fay have no outcome yet (skipped, no error)
    assert "crm.csv:6 field close_date: 'not a date' is not an ISO date" in result.output
    assert "crm.csv:7 field lead: no lead" in result.output
    assert "5 outcomes recorded, 0 already known, 0 stage moves, 2 bad rows" in result.output
    assert result.exit_code == 1
    with store.connect() as conn:
        ids = {p: find_lead(conn, external_id=p) for p in people}
        stored = {
            (lead, kind, at, amount)
            for lead, kind, at, amount in conn.execute(
                select(outcomes.c.lead_id, outcomes.c.kind, outcomes.c.at_ms, outcomes.c.amount)
            )
        }
    assert stored == {
        (ids["ann"], "opportunity", T0 + 2 * DAY, 12000.5),
        (ids["ann"], "won", T0 + 19 * DAY, 12000.5),
        (ids["carl"], "opportunity", T0 + 6 * DAY, None),
        (ids["dora"], "opportunity", T0 + 3 * DAY, None),
        (ids["dora"], "lost", T0 + 29 * DAY, None),
    }
    again = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
    assert "0 outcomes recorded, 5 already known" in again.output


def test_amounts_are_read_with_the_columns_decimal_mark(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_text('Email,Outcome,Close Date,Amount\na@a.example,won,2024-05-20,"12,5"\n'
                    'b@b.example,won,2024-05-20,"1.000,50"\nc@c.example,won,2024-05-20,7\n')  # fmt: skip
    rows, problems = read_outcomes(path)
    # before: "12,5" read as 125.0 and "1.000,50" as 1.0005 (commas dropped, whatever the column's mark)
    assert ([r.amount for r in rows], problems) == ([12.5, 1000.5, 7.0], [])
    path.write_text('Email,Outcome,Close Date,Amount\na@a.example,won,2024-05-20,"1,000"\n')
    rows, problems = read_outcomes(path)
    # nothing in the column says which mark "1,000" uses: reported, or read as declared
    assert rows == [] and (problems[0].line, problems[0].field) == (2, "amount")
    assert "'1,000' is ambiguous: 1000 with '.' as the decimal mark, 1.0 with ','" in problems[0].message
    assert [r.amount for r in read_outcomes(path, ".")[0]] == [1000.0]


def test_two_headers_read_as_the_outcome_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("Email,Outcome,Deal Stage,Close Date\na@a.example,won,,2024-05-20\n")
    rows, problems = read_outcomes(path)
    # before: the last of the two (a blank Deal Stage) was read, and the won row skipped as "no outcome"
    assert rows == [] and [(p.line, p.message) for p in problems] == [
        (1, "columns 2 ('Outcome') and 3 ('Deal Stage') are both read as 'kind': remove one")
    ]
