"""The account score on every named score: one computation (``lifecycle.accounts.named_account_scores``)
behind the lifecycle's stored account score (the primary's), the API's ``/v1/reports/accounts?score=``,
``leadscore reports accounts --score`` and the dashboard's accounts pages.

The two-team store of ``tests/two_teams.py`` puts ann, carl and dana at ACME and bob, eve and frank at
Globex. Its accounts section: account score = committee engagement (weights fit 0, engagement 1), the mean
of the 2 most engaged contacts' engagement scores; an engaged contact has 35 or more; an MQA has an account
score of 40 or more and one engaged contact or more. The contacts' engagement (100 raw points = 100):

=====  ======  ====================  =========================
lead   account core engagement       analytics engagement
=====  ======  ====================  =========================
ann    ACME    demo 40               report 80 + demo 20 = 100
carl   ACME    demo 40 + webinar 10  demo 20
dana   ACME    0                     report 80
bob    Globex  demo 40               demo 20
eve    Globex  50                    20
frank  Globex  50                    20
=====  ======  ====================  =========================

core: ACME (50 + 40) / 2 = 45, engaged ann, carl: 2, MQA; Globex (50 + 50) / 2 = 50, engaged 3, MQA.
analytics: ACME (100 + 80) / 2 = 90, engaged ann, dana: 2, MQA; Globex (20 + 20) / 2 = 20, engaged 0, none.

The accounts list's contact columns on each score (scores from tests/test_web_scores_browser.py): core
ACME best 55 (carl), average (50 + 55 + 0) / 3 = 35, hot 0; Globex best 55, average (20 + 55 + 55) / 3 =
43.3, hot 0. analytics ACME best 90, average (90 + 10 + 80) / 3 = 60, hot 2 (ann, dana); Globex best 10,
average 10, hot 0.
"""

from __future__ import annotations

import html
import json
import re

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.cli.main import app as cli
from leadscore.errors import NotFoundError
from leadscore.ingest.segment import normalise
from leadscore.lifecycle.accounts import named_account_scores
from leadscore.lifecycle.reports import account_report
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import now_ms
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.schema import accounts
from live_server import serving
from two_teams import HOUR, MANAGER, T0, build
from web_support import signed_in


def _accounts(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        return {str(name): int(i) for i, name in conn.execute(select(accounts.c.id, accounts.c.name))}


def _report(rows: list[dict[str, object]]) -> list[tuple[object, ...]]:
    return [(r["name"], round(float(r["score"]), 2), r["engaged_contacts"], r["stage"]) for r in rows]  # type: ignore[arg-type]


CORE_ROWS = [("Globex", 50.0, 3, "mqa"), ("Acme", 45.0, 2, "mqa")]
ANALYTICS_ROWS = [("Acme", 90.0, 2, "mqa"), ("Globex", 20.0, 0, "none")]


def test_every_scores_account_score_is_one_computation(store: Store) -> None:
    build(store)
    ids = _accounts(store)
    with store.connect() as conn:
        assert _report(account_report(conn)) == CORE_ROWS  # as the lifecycle stored them
        assert _report(account_report(conn, "core", now_ms())) == CORE_ROWS
        assert _report(account_report(conn, "analytics", now_ms())) == ANALYTICS_ROWS
        # the stored primary's numbers are the function's on the primary
        found = named_account_scores(conn, None, sorted(ids.values()), now_ms())
        assert {a: round(s.score, 2) for a, s in found.items()} == {ids["Acme"]: 45.0, ids["Globex"]: 50.0}
        with pytest.raises(NotFoundError, match=r"no score named 'partners' \(scores: core, analytics\)"):
            account_report(conn, "partners", now_ms())


def test_the_account_api_and_cli_take_a_score(store: Store) -> None:
    build(store)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "reports", 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    headers = {"Authorization": f"Bearer {token}"}
    with serving(app) as url, httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        core = client.get("/v1/reports/accounts").json()
        analytics = client.get("/v1/reports/accounts?score=analytics").json()
        unknown = client.get("/v1/reports/accounts?score=partners")
        malformed = client.get("/v1/reports/accounts?score=Not-A-Name")
        # a page of the accounts computed on a named score: Acme (90), then Globex (20)
        pages = [
            client.get(f"/v1/reports/accounts?score=analytics&limit=1&offset={n}").json() for n in (0, 1)
        ]
    assert [(_report(p["accounts"]), p["total"], p["next_offset"]) for p in pages] == [
        (ANALYTICS_ROWS[:1], 2, 1),
        (ANALYTICS_ROWS[1:], 2, None),
    ]
    assert _report(core["accounts"]) == CORE_ROWS
    assert _report(analytics["accounts"]) == ANALYTICS_ROWS
    assert {r["score_name"] for r in analytics["accounts"]} == {"analytics"}
    assert unknown.status_code == 404
    assert (
        unknown.json()["ok"] is False
        and "no score named 'partners' (scores: core, analytics)" in unknown.text
    )
    assert malformed.status_code == 422 and "score" in malformed.text
    out = CliRunner().invoke(
        cli, ["reports", "accounts", "--score", "analytics", "--format", "json", "--db", str(store.url)]
    )
    assert out.exit_code == 0, out.output
    assert _report(json.loads(out.output)) == ANALYTICS_ROWS


def _rows(html: str) -> list[list[str]]:
    """The accounts table's rows: the account's name, then each cell's text."""
    body = html.split('<table class="accounts">')[1].split("</table>")[0].split("<tbody>")[1]
    out = []
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        name = re.search(r'<a href="/accounts/\d+[^"]*">([^<]+)</a>', row)
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        out.append([name.group(1) if name else "", *cells])
    return out


def test_the_accounts_pages_show_the_score_picked(store: Store) -> None:
    build(store)
    ids = _accounts(store)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        core = client.get("/accounts")
        analytics = client.get("/accounts?score=analytics")
        unknown = client.get("/accounts?score=partners")
        mqa = client.get("/accounts?score=analytics&mqa=true")
        acme = client.get(f"/accounts/{ids['Acme']}?score=analytics")
        acme_core = client.get(f"/accounts/{ids['Acme']}")
    assert core.status_code == analytics.status_code == acme.status_code == 200
    # Account, target, account score, stage, contacts, engaged, hot, best, average
    assert _rows(core.text) == [
        ["Globex", "—", "50.0", "MQA", "3", "3", "0", "55.0", "43.3"],
        ["Acme", "—", "45.0", "MQA", "3", "2", "0", "55.0", "35.0"],
    ]
    assert _rows(analytics.text) == [
        ["Acme", "—", "90.0", "MQA", "3", "2", "2", "90.0", "60.0"],
        ["Globex", "—", "20.0", "—", "3", "0", "0", "10.0", "10.0"],
    ]
    assert 'aria-label="Pick a score"' in core.text
    assert unknown.status_code == 404 and "partners" in unknown.text
    assert mqa.status_code == 400
    # the account page: the stored account score and MQA status are the primary's, and say so whatever
    # the score picked (core's 45.0, not analytics' 90.0, under that heading)
    assert '<h2 id="mqa-title">Account score and MQA on the primary score, core</h2>' in acme.text
    assert "<dt>Account score</dt><dd>45.0</dd>" in acme.text
    # the account page: both scores side by side; the contacts on the score picked
    side = acme.text.split('<table class="account-scores">')[1].split("</table>")[0]
    assert re.findall(r'<td class="num">([^<]*)</td>', side) == [
        "45.0", "0.0", "45.0", "2", "90.0", "0.0", "90.0", "2",
    ]  # fmt: skip
    contacts = acme.text.split('<table class="contacts">')[1].split("</table>")[0]
    assert re.findall(r'<a href="/leads/\d+">(\w+)</a>', contacts) == ["Ann", "Dana", "Carl"]  # 90, 80, 10
    core_contacts = acme_core.text.split('<table class="contacts">')[1].split("</table>")[0]
    assert re.findall(r'<a href="/leads/\d+">(\w+)</a>', core_contacts) == [
        "Carl",
        "Ann",
        "Dana",
    ]  # 55, 50, 0


def test_the_accounts_its_leads_link_lists_the_accounts_contacts_on_the_score_picked(store: Store) -> None:
    """The accounts page counts an account's contacts (its leads); the "its leads" link lists those same
    leads on the score picked. Gina works at Acme Labs (an account whose name contains "Acme") and Hal,
    with no account, gave "ACME Consulting" as his company: neither is Acme's contact. The list behind
    Acme's link: ann, carl and dana (3, as the Contacts column says), on analytics: ann 90, dana 80, carl 10
    (the contacts' scores of the module docstring's table)."""
    build(store)
    extra = [
        {"type": "identify", "userId": "gina", "messageId": "gina-0", "timestamp": T0,
         "traits": {"first_name": "Gina", "email": "gina@example.test"}},
        {"type": "group", "userId": "gina", "messageId": "gina-group", "timestamp": T0, "groupId": "acme-labs",
         "traits": {"name": "Acme Labs", "domain": "acmelabs.example"}},
        {"type": "identify", "userId": "hal", "messageId": "hal-0", "timestamp": T0,
         "traits": {"first_name": "Hal", "email": "hal@example.test", "company": "ACME Consulting"}},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0) for m in extra], source="test", as_of=T0 + 3 * HOUR)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        accounts_page = client.get("/accounts?score=analytics")
        acme = next(r for r in _rows(accounts_page.text) if r[0] == "Acme")
        link = re.search(r'<a href="([^"]+)">its leads</a>', accounts_page.text.split(">Acme<")[1])
        assert link is not None
        listed = client.get(html.unescape(link.group(1)))
    assert acme[4] == "3"  # contacts
    assert listed.status_code == 200
    body = listed.text.split('<table class="leads">')[1].split("</table>")[0]
    names = re.findall(r'<a href="/leads/\d+">(\w+)</a>', body)
    scores = re.findall(r'<td class="num">([^<]*)</td>', body)[::3]  # score, fit, engagement per row
    assert list(zip(names, scores, strict=True)) == [("Ann", "90.0"), ("Dana", "80.0"), ("Carl", "10.0")]
