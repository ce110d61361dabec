"""CSV imports of leads and accounts: export headers, bad rows, idempotence, delimiters, mapping, rescoring.

Expected values are read off the fixture files in tests/data/import/ by hand.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.cli.imports import app
from leadscore.errors import InputError
from leadscore.ingest.csv_import import (
    ImportOptions,
    import_accounts,
    import_leads,
    normalise_domain,
    sniff_delimiter,
)
from leadscore.model import load_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.results import read_history
from leadscore.store.schema import accounts, leads, scores

DATA = Path(__file__).parent / "data" / "import"
runner = CliRunner()


def lead(store: Store, **where: str) -> dict[str, Any]:
    ((column, value),) = where.items()
    with store.connect() as conn:
        return dict(conn.execute(select(leads).where(leads.c[column] == value)).mappings().one())


def account(store: Store, domain: str) -> dict[str, Any]:
    with store.connect() as conn:
        return dict(conn.execute(select(accounts).where(accounts.c.domain == domain)).mappings().one())


def count(store: Store, table: Any) -> int:
    with store.connect() as conn:
        return len(conn.execute(select(table)).all())


def score_of(store: Store, lead_id: int) -> float:
    with store.connect() as conn:
        return float(conn.execute(select(scores.c.score).where(scores.c.lead_id == lead_id)).scalar_one())


def invoke(store: Store, *args: str) -> Any:
    return runner.invoke(app, [*args, "--db", store.engine.url.render_as_string(hide_password=False)])


def test_hubspot_contact_export(store: Store) -> None:
    report = import_leads(store, DATA / "hubspot_contacts.csv")
    assert (report.rows, report.created, report.updated, report.unchanged, report.problems) == (
        4,
        4,
        0,
        0,
        [],
    )
    omar = lead(store, external_id="102")
    assert (omar["email"], omar["email_domain"], omar["first_name"], omar["company"]) == (
        "omar@acme.io",
        "acme.io",
        "Omar",
        "Acme Inc.",
    )
    assert omar["attributes"] == {
        "job_title": "CTO",
        "employees": 250,
        "annual_revenue": 48500000.5,
        "industry": "Information Technology",
        "country": "United States",
        "lifecycle_stage": "marketingqualifiedlead",
        "lead_source": "Paid Search",
    }
    anne = lead(store, email="anne@fjord.no")
    assert anne["external_id"] == "0104"  # an id stays text, leading zero included
    assert anne["last_name"] == "O'Neil"
    assert anne["attributes"]["job_title"] == "Head of Growth, EMEA"
    assert "annual_revenue" not in anne["attributes"]
    assert lead(store, email="mei.chen@gmail.com")["attributes"] == {
        "job_title": "Student",
        "country": "Singapore",
        "lifecycle_stage": "subscriber",
        "lead_source": "Direct Traffic",
    }


def test_salesforce_lead_export(store: Store) -> None:
    report = import_leads(store, DATA / "salesforce_leads.csv")
    assert (report.created, report.rejected) == (3, 0)
    sofia = lead(store, external_id="00Q5g00000AbCdEAAV")
    assert (sofia["email"], sofia["last_name"], sofia["company"]) == (
        "sofia.rossi@rossifigli.it",
        "Rossi",
        "Rossi & Figli, S.p.A.",
    )
    assert sofia["attributes"] == {
        "salutation": "Ms.",
        "job_title": "VP Marketing",
        "phone": "+39 02 1234567",
        "lead_source": "Web",
        "lead_status": "Open - Not Contacted",
        "industry": "Manufacturing",
        "annual_revenue": 7500000,
        "employees": 85,
        "country": "Italy",
    }
    jonas = lead(store, email="j.weber@weber.de")
    assert "annual_revenue" not in jonas["attributes"] and "salutation" in jonas["attributes"]
    assert jonas["attributes"]["employees"] == 40


def test_bad_rows_are_reported_with_spreadsheet_row_numbers(store: Store) -> None:
    report = import_leads(store, DATA / "bad_rows.csv")
    # row 2 spans two lines (a quoted newline) and row 6 is empty: numbers follow the spreadsheet, not lines
    found = [(p.line, p.field) for p in report.problems]
    assert found == [(3, None), (4, "Email Address"), (5, None), (7, "First Name")]
    reasons = [p.message for p in report.problems]
    assert "no e-mail and no id" in reasons[0]
    assert "'not-an-email'" in reasons[1]
    assert reasons[2] == "expected 5 columns, found 4"
    assert reasons[3] == "is 300 characters long; at most 255 are allowed"  # as a message's traits
    assert (report.rows, report.created, report.rejected) == (6, 2, 4)
    assert (
        lead(store, email="ok.one@example.com")["attributes"]["notes"] == "first line\r\nsecond line"
    )  # the file is CRLF throughout
    assert lead(store, email="ok.four@example.com")["attributes"]["notes"] == "a, quoted; note"
    assert count(store, leads) == 2


def test_reimport_adds_and_changes_nothing(store: Store, tmp_path: Path) -> None:
    import_leads(store, DATA / "hubspot_contacts.csv")
    again = import_leads(store, DATA / "hubspot_contacts.csv")
    assert (again.created, again.updated, again.unchanged, again.changed_leads) == (0, 0, 4, set())
    assert count(store, leads) == 4
    edited = tmp_path / "edited.csv"
    edited.write_text(
        (DATA / "hubspot_contacts.csv").read_text().replace("Student,", "Marketing Student,"),
        encoding="utf-8",
    )
    third = import_leads(store, edited)
    assert (third.created, third.updated, third.unchanged) == (0, 1, 3)
    assert lead(store, email="mei.chen@gmail.com")["attributes"]["job_title"] == "Marketing Student"


def test_semicolon_delimited_with_bom(store: Store) -> None:
    report = import_leads(store, DATA / "semicolon_bom.csv")
    assert (report.created, [(p.line, p.field) for p in report.problems]) == (2, [(4, "Email")])
    anna = lead(store, email="anna.schroeder@beispiel.de")
    assert (anna["last_name"], anna["company"]) == ("Schröder", "Müller, Schmidt & Co. KG")
    assert anna["attributes"] == {
        "job_title": "Leiterin Marketing",
        "employees": 120,
        "country": "Deutschland",
    }
    assert lead(store, email="lars@kvarn.se")["last_name"] == "Ångström"


def test_sniff_delimiter() -> None:
    assert sniff_delimiter("Email;First Name;Company Name\r\n") == ";"
    assert sniff_delimiter("Email,First Name,Company Name\n") == ","
    assert sniff_delimiter("Email\tFirst Name\n") == "\t"
    assert sniff_delimiter("Email\n") == ","


def test_column_mapping_and_ignored_columns(store: Store) -> None:
    with pytest.raises(InputError, match="no column for email or user_id"):
        import_leads(store, DATA / "custom_headers.csv")
    options = ImportOptions(
        mapping={"Work Mail": "email", "Position": "job_title", "headcount": "employees", "Contact": "name"},
        ignore=frozenset({"Internal Notes"}),
    )
    report = import_leads(store, DATA / "custom_headers.csv", options)
    assert (report.created, report.rejected) == (2, 0)
    kim = lead(store, email="kim@dansk.dk")
    assert (kim["first_name"], kim["last_name"]) == ("Kim", "Larsen")
    assert kim["attributes"] == {"job_title": "CMO", "employees": 45}
    with pytest.raises(InputError, match="no column 'Phone'"):
        import_leads(store, DATA / "custom_headers.csv", ImportOptions(mapping={"Phone": "phone"}))


def test_x_education_subset_with_mapping(store: Store) -> None:
    options = ImportOptions(mapping={"Prospect ID": "user_id"}, ignore=frozenset({"Tags", "Lead Quality"}))
    report = import_leads(store, DATA / "x_education_leads_50.csv", options)
    assert (report.rows, report.created, report.rejected) == (50, 50, 0)
    first = lead(store, external_id="7927b2df-8bba-4d29-b9a2-b6e0beafe620")
    assert first["email"] is None
    attrs = first["attributes"]
    assert (attrs["lead_number"], attrs["lead_origin"], attrs["lead_source"], attrs["converted"]) == (
        660737,
        "API",
        "Olark Chat",
        0,
    )
    assert "tags" not in attrs and "lead_quality" not in attrs and "country" not in attrs
    second = lead(store, external_id="2a272436-5132-4136-86fa-dcc88c88f482")["attributes"]
    assert (
        second["total_visits"],
        second["total_time_spent_on_website"],
        second["page_views_per_visit"],
    ) == (5, 674, 2.5)
    assert second["country"] == "India"
    assert import_leads(store, DATA / "x_education_leads_50.csv", options).unchanged == 50


def test_normalise_domain() -> None:
    assert normalise_domain("https://www.Nordtech.se/about-us?ref=x") == "nordtech.se"
    assert normalise_domain("www.fjord.no") == "fjord.no"
    assert normalise_domain("http://user@acme.io:8080#top") == "acme.io"


def test_accounts_link_existing_leads_by_email_domain(store: Store) -> None:
    import_leads(store, DATA / "hubspot_contacts.csv")
    report = import_accounts(store, DATA / "hubspot_companies.csv")
    assert (report.created, [(p.line, p.field) for p in report.problems]) == (4, [(5, "Website URL")])
    nordtech = account(store, "nordtech.se")
    assert nordtech["name"] == "Nordtech AB"
    assert nordtech["attributes"] == {
        "external_id": "9001",  # an id stays text
        "website": "https://www.nordtech.se/about-us?ref=x",
        "employees": 60,
        "annual_revenue": 12000000,
        "industry": "Computer Software",
        "country": "Sweden",
    }
    assert account(store, "acme.io")["name"] == "Acme Inc."
    assert report.leads_linked == 3  # Linda, Omar and Anne-Marie; Mei's gmail.com has no account
    assert lead(store, email="linda.berg@nordtech.se")["account_id"] == nordtech["id"]
    assert lead(store, email="anne@fjord.no")["account_id"] == account(store, "fjord.no")["id"]
    assert lead(store, email="mei.chen@gmail.com")["account_id"] is None
    again = import_accounts(store, DATA / "hubspot_companies.csv")
    assert (again.created, again.updated, again.unchanged, again.leads_linked) == (0, 0, 4, 0)
    assert count(store, accounts) == 4


def test_cli_imports_leads_and_rescores_them(store: Store) -> None:
    publish(store, load_model(DATA / "model.yaml"))
    result = invoke(store, "leads", str(DATA / "hubspot_contacts.csv"))
    assert result.exit_code == 0, result.output
    assert "leads rescored" in result.output
    # fit points: Linda marketer 30 + mid_size 20 = 50 → score ½·50 = 25; Omar mid_size 20 → 10
    linda, omar = lead(store, external_id="101"), lead(store, external_id="102")
    assert score_of(store, linda["id"]) == pytest.approx(25)
    assert score_of(store, omar["id"]) == pytest.approx(10)
    again = invoke(store, "leads", str(DATA / "hubspot_contacts.csv"))
    assert again.exit_code == 0 and "0 created, 0 updated, 4 unchanged, 0 rejected" in again.output
    # the accounts import links Omar to Acme (250 employees): big_account +10 → fit 30 → score 15
    accounts_run = invoke(store, "accounts", str(DATA / "hubspot_companies.csv"))
    assert accounts_run.exit_code == 1  # row 5 has no usable website
    assert score_of(store, omar["id"]) == pytest.approx(15)
    with store.connect() as conn:
        assert [(r["cause"], r["score"]) for r in read_history(conn, omar["id"])] == [
            ("created", 10),
            ("import", 15),
        ]


def test_cli_reports_rejected_rows_and_writes_them(store: Store, tmp_path: Path) -> None:
    errors = tmp_path / "errors.csv"
    result = invoke(store, "leads", str(DATA / "bad_rows.csv"), "--errors-out", str(errors))
    assert result.exit_code == 1
    assert "not an e-mail address: 'not-an-email'" in result.output
    with errors.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["row"], r["field"]) for r in rows] == [
        ("3", ""),
        ("4", "Email Address"),
        ("5", ""),
        ("7", "First Name"),
    ]
    assert count(store, leads) == 2


def test_cli_max_errors_stops_early_and_keeps_earlier_rows(store: Store) -> None:
    result = invoke(store, "leads", str(DATA / "bad_rows.csv"), "--max-errors", "1")
    assert result.exit_code == 1
    assert "stopped early" in result.output
    assert count(store, leads) == 1  # row 2 was imported; reading stopped after the error in row 3


def test_cli_map_and_ignore_options(store: Store) -> None:
    path = str(DATA / "custom_headers.csv")
    refused = invoke(store, "leads", path)
    assert refused.exit_code == 2 and "no column for email or user_id" in refused.output
    result = invoke(
        store,
        "leads",
        path,
        "--map",
        "Work Mail=email",
        "-m",
        "Position=job_title",
        "--ignore",
        "Internal Notes",
    )
    assert result.exit_code == 0, result.output
    assert lead(store, email="ole@holm.dk")["attributes"] == {
        "contact": "Ole Holm",
        "job_title": "Sales Rep",
        "headcount": 7,
    }
    bad = invoke(store, "leads", path, "--map", "Work Mail")
    assert bad.exit_code == 2


def test_the_errors_file_neutralises_formulas_from_the_imported_file(store: Store, tmp_path: Path) -> None:
    """The errors file is opened in a spreadsheet: a header of the imported file that is a formula, named
    as a bad cell's field, was written as it was and ran there. It starts with ``'``, as in every CSV
    leadscore writes (``spreadsheet.csv_safe``)."""
    path, errors = tmp_path / "formula.csv", tmp_path / "errors.csv"
    header = '=HYPERLINK("http://evil.example","open")'
    path.write_text(
        f'Email,"{header.replace(chr(34), chr(34) * 2)}"\nann@example.com,1\nbob@example.com,bo\x00b\n'
    )
    result = invoke(store, "leads", str(path), "--errors-out", str(errors))
    assert result.exit_code == 1
    with errors.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["row"], r["field"], r["reason"]) for r in rows] == [
        ("3", "'" + header, "contains a NUL character")
    ]
