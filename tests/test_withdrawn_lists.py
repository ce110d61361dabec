"""Whoever withdrew tracking consent is in no list of people (``lead_filter``: ``LeadFilter.matches``), on
both stores, through the real surfaces; each list says how many it left out.

The store (test_consent's people): "yes" (consent given), "no" (withdrew: ``tracking_consent: no``) and
"unknown" (never said: counts as given), all three VPs with one visit. So every list below shows "unknown"
and "yes" and leaves out 1 (withdrawn). Before, the API's JSON pages, the dashboard's list, its count and
its matrix, and ``leadscore score`` as a table listed "no" too (3 leads), while the exports of the same
filter left her out (2): a count and an export of one filter disagreed.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.users import add_user
from live_server import serving
from test_consent import MODEL, NOW, _people
from web_support import PASSWORD, signed_in

LISTED = ["unknown", "yes"]
ADMIN = "admin@example.test"


@pytest.fixture
def url(store: Store) -> Iterator[tuple[str, str]]:
    publish(store, loads_model(MODEL), as_of=NOW)
    _people(store)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "crm", 0)
        add_user(conn, ADMIN, "Admin", "admin", hash_password(PASSWORD), 0)
    api = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(api) as base:
        yield base, token


def test_the_api_lists_and_exports_the_same_people(url: tuple[str, str]) -> None:
    base, token = url
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as client:
        page = client.get("/v1/leads", params={"sort": "id", "order": "asc"}).json()
        assert sorted(row["external_id"] for row in page["leads"]) == LISTED
        assert page["withdrawn"] == 1
        searched = client.get("/v1/leads", params={"q": "no"}).json()  # her user id: still left out
        assert [row["external_id"] for row in searched["leads"]] == []
        exported = list(csv.DictReader(io.StringIO(client.get("/v1/leads", params={"format": "csv"}).text)))
        assert sorted(row["external_id"] for row in exported) == LISTED
        one = client.get("/v1/leads/no")  # one person, looked up by someone who may see her
        assert one.status_code == 200 and one.json()["lead"]["external_id"] == "no"


def test_the_dashboard_list_count_and_matrix_leave_her_out(url: tuple[str, str]) -> None:
    base, _ = url
    with signed_in(base, ADMIN) as client:
        page = client.get("/leads").text
        assert re.search(r'<h2 id="list-title">2 leads</h2>', page), page
        assert "1 more left out: withdrew tracking consent" in page
        assert ">no<" not in page and "/leads/" in page
        # the matrix: every lead is a VP (grade A: 100 fit) with one visit (level 2: 50 engagement)
        cells = re.findall(r'href="/leads\?grade=A&amp;level=2"[^>]*>\s*(\d+)', page)
        assert cells == ["2"], cells
        exported = list(csv.DictReader(io.StringIO(client.get("/leads/export.csv").text)))
        assert len(exported) == 2


def test_leadscore_score_lists_no_one_who_withdrew(store: Store) -> None:
    """ "yes" and "unknown" score 75 (VP 50 + a visit 25), "no" 50 (her visit is not scored): the table and
    the CSV list two rows of 75 and say on stderr that one was left out."""
    publish(store, loads_model(MODEL), as_of=NOW)
    _people(store)
    table = CliRunner().invoke(cli, ["score", "--db", str(store.url)])
    assert table.exit_code == 0, table.output
    rows = [line.split("│")[5].strip() for line in table.output.splitlines() if line.startswith("│")]
    assert rows == ["75.0", "75.0"], table.output
    assert "1 lead left out: withdrew tracking consent" in table.output
    out = CliRunner().invoke(cli, ["score", "--format", "csv", "--db", str(store.url)])
    exported = list(csv.DictReader(io.StringIO(out.output.split("\n", 1)[1])))
    assert [row["score"] for row in exported] == ["75.0", "75.0"]
