"""Account scores and MQA on both engines, every number worked out by hand in the comments: account fit
from the account-only fit rules through the compiled query (floor, clamp at fit_max, scale), committee
engagement from the contacts' engagement as of the same time, the weighted mean, and the MQA stage an
account enters when its score crosses the line (and one that does not)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from sqlalchemy import Connection, select

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.compile.accounts import account_rules
from leadscore.ingest.segment import normalise
from leadscore.lifecycle.accounts import account_scores, committee
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.privacy.erase import erase
from leadscore.privacy.person import find_person
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import account_history, read_account_stages
from leadscore.store.people import find_lead
from leadscore.store.schema import leads
from leadscore.store.score_names import primary_score
from leadscore.store.users import add_user
from leadscore.web.data import account as account_data
from lifecycle_model import settings
from live_server import serving
from web_support import PASSWORD, signed_in

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
HOUR = 3_600_000

# Account rules: 500+ employees 40, SaaS 20, a competitor −30; fit_max 50 (the lead-level marketing rule
# is not about the account and does not count). Engagement: a demo 50, a page 10, no decay.
MODEL = """
model: abm
fit:
  - {id: big, name: 500+ employees, when: {attribute: account.employees, gte: 500}, points: 40}
  - {id: saas, name: SaaS, when: {attribute: account.industry, equals: saas}, points: 20}
  - {id: rival, name: A competitor, when: {attribute: account.competitor, equals: true}, points: -30}
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 10}
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 50}
  - {id: page, name: Viewed a page, event: {type: page}, points: 10}
scale: {fit_max: 50}
lifecycle:
  initial: lead
  stages: [{id: lead, name: Lead}]
  accounts:
    committee_size: 3
    engaged_at_least: 35
    weights: {fit: 0.4, engagement: 0.6}
    mqa: {score_at_least: 60, engaged_contacts_at_least: 2}
"""
COMPANIES = {
    # acme: 40 + 20 = 60 points, clamped at 50 → fit 100
    "acme": {"employees": 1000, "industry": "saas"},
    # beta: 40 points → fit 80
    "beta": {"employees": 800, "industry": "retail"},
    # gamma: 20 − 30 = −10 points, floored at 0 → fit 0
    "gamma": {"employees": 20, "industry": "saas", "competitor": True},
}
CONTACTS = {"ann": "acme", "bo": "acme", "cy": "acme", "dee": "acme", "eve": "beta", "fay": "gamma",
            "gus": "gamma", "hal": "gamma"}  # fmt: skip
_n = iter(range(1_000_000))


def _msg(user: str, kind: str, at: int, **fields: Any) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000)) + "Z"
    return {"type": kind, "userId": user, "messageId": f"{user}-{next(_n)}", "timestamp": stamp, **fields}


def _people() -> list[dict[str, Any]]:
    out = []
    for user, company in CONTACTS.items():
        out.append(
            _msg(user, "identify", T0, traits={"email": f"{user}@{company}.example", "title": "Marketing"})
        )
        out.append(_msg(user, "group", T0, groupId=company,
                        traits={"name": company.title(), "domain": f"{company}.example", **COMPANIES[company]}))  # fmt: skip
    return out


def _activity(user: str, demos: int = 0, pages: int = 0, at: int = T0 + HOUR) -> list[dict[str, Any]]:
    return [_msg(user, "track", at, event="Demo") for _ in range(demos)] + [
        _msg(user, "page", at, properties={"path": "/pricing"}) for _ in range(pages)
    ]


def _ingest(store: Store, raws: list[dict[str, Any]], as_of: int) -> None:
    ingest(store, [normalise(r, received_ms=as_of) for r in raws], source="test", as_of=as_of)


def _account_ids(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        ids = {}
        for user, company in CONTACTS.items():
            lead = find_lead(conn, external_id=user)
            ids[company] = (
                conn.execute(leads.select().where(leads.c.id == lead)).mappings().one()["account_id"]
            )
    return ids


def test_account_rules_are_the_fit_rules_about_the_account_alone() -> None:
    assert [r.id for r in account_rules(loads_model(MODEL))] == ["big", "saas", "rival"]


def test_committee_is_the_mean_of_the_most_engaged_counting_missing_contacts_as_zero() -> None:
    cfg = loads_model(MODEL).lifecycle.accounts  # type: ignore[union-attr]
    assert committee(cfg, [10, 70, 0, 50]) == (pytest.approx(130 / 3), 2)  # 70, 50, 10; 70 and 50 ≥ 35
    assert committee(cfg, [60]) == (20, 1)  # (60 + 0 + 0) / 3
    assert committee(cfg, []) == (0, 0)


def test_account_scores_by_hand(store: Store) -> None:
    model = loads_model(MODEL)
    publish(store, model)
    at = T0 + 2 * HOUR
    _ingest(store, [*_people(), *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=1), *_activity("eve", demos=1, pages=1), *_activity("fay", demos=2),
                    *_activity("gus", demos=1), *_activity("hal", demos=1, pages=1)], at)  # fmt: skip
    ids = _account_ids(store)
    assert model.lifecycle is not None and model.lifecycle.accounts is not None
    with store.connect() as conn:
        got = account_scores(conn, model, model.lifecycle.accounts, list(ids.values()), at)
    acme, beta, gamma = got[ids["acme"]], got[ids["beta"]], got[ids["gamma"]]
    # acme: fit 100; contacts 70, 50, 10, 0 → committee (70 + 50 + 10) / 3, two engaged;
    # score 0.4 × 100 + 0.6 × 43.33 = 66
    assert (acme.fit_score, acme.engagement_score, acme.engaged_contacts) == (100, pytest.approx(130 / 3), 2)
    assert acme.score == pytest.approx(66.0)
    # beta: fit 80; one contact at 60 → committee 20, one engaged; 0.4 × 80 + 0.6 × 20 = 44
    assert (beta.fit_score, beta.engagement_score, beta.engaged_contacts) == (80, 20, 1)
    assert beta.score == pytest.approx(44.0)
    # gamma: fit 0 (−10 floored); contacts 100 (two demos), 50, 60 → committee 70, three engaged; 0.6 × 70 = 42
    assert (gamma.fit_score, gamma.engagement_score, gamma.engaged_contacts) == (0, 70, 3)
    assert gamma.score == pytest.approx(42.0)
    assert model.lifecycle.accounts is not None
    assert [a.stage(model.lifecycle.accounts) for a in (acme, beta, gamma)] == ["mqa", "none", "none"]


def test_an_account_becomes_mqa_when_its_score_crosses_the_line(store: Store) -> None:
    publish(store, loads_model(MODEL))
    first = T0 + 2 * HOUR
    _ingest(store, [*_people(), *_activity("ann", demos=1), *_activity("eve", demos=1, pages=1)], first)
    run_round(store, settings(), now_ms=first, deliver=False)
    ids = _account_ids(store)
    with store.connect() as conn:
        stages = read_account_stages(conn)
    # acme: one contact at 50 → committee 16.67, one engaged; 0.4 × 100 + 0.6 × 16.67 = 50: not yet
    assert stages[ids["acme"]]["stage"] == "none"
    assert stages[ids["acme"]]["score"] == pytest.approx(50.0)
    # beta: 0.4 × 80 + 0.6 × 20 = 44
    assert (stages[ids["beta"]]["stage"], stages[ids["beta"]]["score"]) == ("none", pytest.approx(44.0))

    later = T0 + 5 * HOUR
    _ingest(store, [*_activity("ann", pages=2, at=T0 + 4 * HOUR), *_activity("bo", demos=1, at=T0 + 4 * HOUR),
                    *_activity("cy", pages=1, at=T0 + 4 * HOUR), *_activity("eve", pages=3, at=T0 + 4 * HOUR)],
            later)  # fmt: skip
    run_round(store, settings(), now_ms=later, deliver=False)
    with store.connect() as conn:
        stages = read_account_stages(conn)
        acme_history = account_history(conn, ids["acme"])
        beta_history = account_history(conn, ids["beta"])
    # acme: 70, 50, 10 → 66 with two engaged: MQA, entered now, one history row
    assert (stages[ids["acme"]]["stage"], stages[ids["acme"]]["score"]) == ("mqa", pytest.approx(66.0))
    assert stages[ids["acme"]]["entered_ms"] == later
    assert [(h["from_stage"], h["to_stage"], h["at_ms"]) for h in acme_history] == [("none", "mqa", later)]
    # beta: eve at 90 → committee 30, one engaged; 0.4 × 80 + 0.6 × 30 = 50: still no MQA, no history
    assert (stages[ids["beta"]]["stage"], stages[ids["beta"]]["score"]) == ("none", pytest.approx(50.0))
    assert beta_history == []


def test_the_account_fit_reads_the_account_as_it_is_now(store: Store) -> None:
    model = loads_model(MODEL)
    publish(store, model)
    at = T0 + 2 * HOUR
    _ingest(store, _people(), at)
    # acme shrinks to 100 employees: dee's group call says so, and only dee is rescored; ann, bo and cy
    # keep ledgers in which "500+ employees" gave 40 points
    shrink = _msg("dee", "group", T0 + 3 * HOUR, groupId="acme",
                  traits={"name": "Acme", "domain": "acme.example", "employees": 100})  # fmt: skip
    _ingest(store, [shrink], T0 + 3 * HOUR)
    ids = _account_ids(store)
    assert model.lifecycle is not None and model.lifecycle.accounts is not None
    with store.connect() as conn:
        acme = account_scores(conn, model, model.lifecycle.accounts, [ids["acme"]], T0 + 3 * HOUR)[
            ids["acme"]
        ]
    # SaaS alone: 20 points of 50 → fit 40; nobody engaged → score 0.4 × 40 = 16
    assert (acme.fit_score, acme.score) == (pytest.approx(40.0), pytest.approx(16.0))


def test_the_accounts_page_counts_engaged_contacts_as_the_mqa_rule_does(store: Store) -> None:
    publish(store, loads_model(MODEL))
    at = T0 + 2 * HOUR
    acme_only = [m for m in _people() if CONTACTS[m["userId"]] == "acme"]
    _ingest(store, [*acme_only, *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=3)], at)  # fmt: skip
    run_round(store, settings(), now_ms=at, deliver=False)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.get("/accounts")
    assert page.status_code == 200, page.text
    # contacts at 70, 50, 30 and 0: committee (70 + 50 + 30) / 3 = 50, score 0.4 × 100 + 0.6 × 50 = 70;
    # engaged (35 or more): ann and bo, so 2 (cy, at 30, has engagement level 3 but is not engaged)
    row = page.text[page.text.index(">Acme</a>") :]
    assert '<td class="num">70.0</td><td>MQA</td>' in row[: row.index("</tr>")]
    assert '<td class="num">4</td><td class="num">2</td>' in row[: row.index("</tr>")]
    assert "An engaged contact has an engagement score of 35 or more." in page.text


def test_the_accounts_pages_show_a_threshold_with_its_decimals(store: Store) -> None:
    # MQA at 70.5: acme (70, as above) is no MQA; the pages said "at an account score of 70" (and an
    # engaged contact "of 36 or more" for 35.5) beside acme shown at 70.0 and not an MQA
    model = MODEL.replace("score_at_least: 60", "score_at_least: 70.5").replace(
        "engaged_at_least: 35", "engaged_at_least: 35.5"
    )
    publish(store, loads_model(model))
    at = T0 + 2 * HOUR
    acme_only = [m for m in _people() if CONTACTS[m["userId"]] == "acme"]
    _ingest(store, [*acme_only, *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=3)], at)  # fmt: skip
    run_round(store, settings(), now_ms=at, deliver=False)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        ann = find_lead(conn, external_id="ann")
        acme = conn.execute(leads.select().where(leads.c.id == ann)).mappings().one()["account_id"]
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        listing, page = client.get("/accounts"), client.get(f"/accounts/{acme}")
    assert listing.status_code == 200 and page.status_code == 200
    row = listing.text[listing.text.index(">Acme</a>") :]
    assert '<td class="num">70.0</td><td>—</td>' in row[: row.index("</tr>")]
    assert "at an account score of 70.5 with 2 or more engaged contacts" in listing.text
    assert "An engaged contact has an engagement score of 35.5 or more." in listing.text
    assert '<dt>Status</dt><dd class="big">not MQA</dd>' in page.text
    assert (
        "at an account score of 70.5 with 2 or more engaged contacts (engagement score 35.5 or more)"
        in page.text
    )


def test_the_account_page_shows_its_contacts_committee_and_score_over_time(store: Store) -> None:
    publish(store, loads_model(MODEL))
    at = T0 + 2 * HOUR
    _ingest(store, [*_people(), *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=3)], at)  # fmt: skip
    run_round(store, settings(), now_ms=at, deliver=False)
    ids = _account_ids(store)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        ann = find_lead(conn, external_id="ann")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.get(f"/accounts/{ids['acme']}")
        listed = client.get("/accounts")
        lead = client.get(f"/leads/{ann}")
        missing = [client.get(f"/accounts/{n}").status_code for n in (999_999, 2**63, -(2**63) - 1, 10**30)]
    assert page.status_code == 200, page.text
    assert missing == [404, 404, 404, 404]
    assert f'href="/accounts/{ids["acme"]}"' in listed.text and f'href="/accounts/{ids["acme"]}"' in lead.text
    html = page.text
    # the contacts, highest score first: the same fit (100) for all, so engagement decides:
    # ann a demo and two pages 50 + 20 = 70, bo a demo 50, cy three pages 30, dee nothing 0
    contacts = html[html.index('<table class="contacts">') :]
    contacts = contacts[: contacts.index("</table>")]
    order = [contacts.index(f"{who}@acme.example") for who in ("ann", "bo", "cy", "dee")]
    assert order == sorted(order)
    assert "eve@beta.example" not in contacts and "fay@gamma.example" not in contacts
    for engagement in ("70.0", "50.0", "30.0", "0.0"):
        assert f'<td class="num">{engagement} (level' in contacts
    assert contacts.count("<td>Lead</td>") == 4
    # MQA: committee (70 + 50 + 30) / 3 = 50, score 0.4 × 100 + 0.6 × 50 = 70 ≥ 60 with 2 engaged contacts
    status = html[html.index('id="mqa-title"') : html.index('id="contacts-title"')]
    assert '<dd class="big">MQA</dd>' in status
    assert "<dd>70.0</dd>" in status and "<dd>2</dd>" in status
    assert "<td>—</td><td>mqa</td>" in status  # one move, at the run: from no stage to MQA
    # activity: everyone's identify and group calls (2 events) plus ann's 3, cy's 3 and bo's 1, all in the
    # week of Monday 2024-04-29 (T0 is a Wednesday); the most active first, ties by lead id
    chart = json.loads(
        html[
            html.index('id="activity-data">') + 19 : html.index(
                "</script>", html.index('id="activity-data">')
            )
        ]
    )
    assert chart["x"] == ["2024-04-29"]
    assert [(s["label"], s["values"]) for s in chart["series"]] == [
        ("ann@acme.example", [5]),
        ("cy@acme.example", [5]),
        ("bo@acme.example", [3]),
        ("dee@acme.example", [2]),
    ]
    # the account score over time: no decay, so every week since the activity the same 70 and MQA
    history = html[html.index('<table class="account-history">') :]
    history = history[: history.index("</table>")]
    rows = history.count("<tr>") - 1
    assert rows >= 2
    assert history.count('<td class="num">70.0</td>') == rows and history.count("<td>MQA</td>") == rows


def test_the_account_page_lists_its_contacts_a_page_at_a_time(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two contacts a page: acme's four (ann 70, bo 50, cy 30, dee 0 engagement, the same fit) are ann and bo
    # on page 1, cy and dee on page 2; the summary (score 70, 2 engaged) counts all four on either page
    monkeypatch.setattr(account_data, "CONTACTS_PAGE", 2)
    publish(store, loads_model(MODEL))
    at = T0 + 2 * HOUR
    _ingest(store, [*_people(), *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=3)], at)  # fmt: skip
    run_round(store, settings(), now_ms=at, deliver=False)
    acme = _account_ids(store)["acme"]
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        primary = primary_score(conn)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        first, second = client.get(f"/accounts/{acme}"), client.get(f"/accounts/{acme}?page=2")
        named = client.get(f"/accounts/{acme}?score={primary}&page=2")
        beyond = client.get(f"/accounts/{acme}?page=99")
        bad = [client.get(f"/accounts/{acme}?page={p}").status_code for p in ("0", "-1", str(2**70), "x")]
    assert [p.status_code for p in (first, second, named, beyond)] == [200, 200, 200, 200]
    assert bad == [422, 422, 422, 422]  # as the leads and accounts pages refuse them

    def listed(html: str) -> list[tuple[str, str]]:
        rows = html[html.index('<table class="contacts">') :]
        rows = rows[: rows.index("</table>")].split("<tr>")[2:]
        return [
            (r.split("@acme.example")[0].split(">")[-1], r.split(" (level")[0].split(">")[-1]) for r in rows
        ]

    assert listed(first.text) == [("ann", "70.0"), ("bo", "50.0")]
    assert listed(second.text) == listed(named.text) == [("cy", "30.0"), ("dee", "0.0")]
    assert listed(beyond.text) == listed(second.text)  # past the last page: the last, as the other pages
    assert "4 contacts, showing 1–2" in first.text and "4 contacts, showing 3–4" in second.text
    assert f'href="/accounts/{acme}?page=2" rel="next"' in first.text and 'rel="prev"' not in first.text
    assert f'href="/accounts/{acme}?page=1" rel="prev"' in second.text and 'rel="next"' not in second.text
    assert f'href="/accounts/{acme}?score={primary}&amp;page=1" rel="prev"' in named.text
    for page in (first, second):
        status = page.text[page.text.index('id="mqa-title"') : page.text.index('id="contacts-title"')]
        assert "<dd>70.0</dd>" in status and "<dd>2</dd>" in status
        assert "of 4 contacts" in page.text  # the product figures' contact count


def test_the_activity_chart_sums_the_contacts_past_the_charted_ones_per_week(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two contacts charted: week of 2024-04-29 (T0 a Wednesday) ann 2 + 1 demo + 2 pages = 5, bo 2 + 1 = 3,
    # cy 2, dee 2; week of 2024-05-06 cy 3 pages. Totals ann 5, cy 5 (ties by lead id: ann first), bo 3,
    # dee 2: ann [5, 0], cy [2, 3], and bo + dee [3 + 2, 0]
    monkeypatch.setattr(account_data, "CHARTED_CONTACTS", 2)
    publish(store, loads_model(MODEL))
    at = T0 + 9 * 24 * HOUR
    acme_only = [m for m in _people() if CONTACTS[m["userId"]] == "acme"]
    _ingest(store, [*acme_only, *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=3, at=T0 + 8 * 24 * HOUR)], at)  # fmt: skip
    with store.connect() as conn:
        chart, first = account_data.activity(
            conn, account_data.members_of(conn, _account_of(conn, "ann"), {})
        )
    assert (chart["x"], first) == (["2024-04-29", "2024-05-06"], T0)
    assert [(s["label"], s["values"]) for s in chart["series"]] == [
        ("ann@acme.example", [5, 0]),
        ("cy@acme.example", [2, 3]),
        ("2 other contacts", [5, 0]),
    ]


def _acme_and_beta_scored(store: Store, at: int) -> dict[str, int]:
    """acme (fit 100): ann a demo and two pages 70, bo a demo 50, cy three pages 30, dee 0 → committee
    (70 + 50 + 30) / 3 = 50, two engaged, score 0.4 × 100 + 0.6 × 50 = 70: MQA. beta (fit 80): eve a demo
    and a page 60 → committee 20, one engaged, score 0.4 × 80 + 0.6 × 20 = 44."""
    publish(store, loads_model(MODEL))
    people = [m for m in _people() if CONTACTS[m["userId"]] in ("acme", "beta")]
    _ingest(store, [*people, *_activity("ann", demos=1, pages=2), *_activity("bo", demos=1),
                    *_activity("cy", pages=3), *_activity("eve", demos=1, pages=1)], at)  # fmt: skip
    run_round(store, settings(), now_ms=at, deliver=False)
    with store.connect() as conn:
        ids = {company: _account_of(conn, user) for company, user in (("acme", "bo"), ("beta", "eve"))}
        stages = read_account_stages(conn)
    assert (stages[ids["acme"]]["stage"], stages[ids["acme"]]["score"]) == ("mqa", pytest.approx(70.0))
    assert (stages[ids["beta"]]["stage"], stages[ids["beta"]]["score"]) == ("none", pytest.approx(44.0))
    return ids


def _account_of(conn: Connection, user: str) -> int:
    lead = find_lead(conn, external_id=user)
    return int(conn.execute(select(leads.c.account_id).where(leads.c.id == lead)).scalar_one())


def _stored(store: Store, account_id: int) -> tuple[str, float, float, int]:
    with store.connect() as conn:
        row = read_account_stages(conn)[account_id]
    return row["stage"], row["score"], row["engagement_score"], row["engaged_contacts"]


def test_an_erased_contact_leaves_nothing_in_her_account_score(store: Store) -> None:
    at = T0 + 2 * HOUR
    ids = _acme_and_beta_scored(store, at)
    erased_at = T0 + 3 * HOUR
    for who in ("ann", "eve"):
        with store.connect() as conn:
            person = find_person(conn, who)
        assert erase(store, person, "pepper", erased_at, "test").clean
    # acme without ann: bo 50, cy 30, dee 0 → committee 80 / 3, one engaged (bo);
    # 0.4 × 100 + 0.6 × 80 / 3 = 56: below 60 and one engaged contact short, so no longer an MQA
    assert _stored(store, ids["acme"]) == ("none", pytest.approx(56.0), pytest.approx(80 / 3), 1)
    # beta without eve, its only contact: committee 0, none engaged; 0.4 × 80 = 32
    assert _stored(store, ids["beta"]) == ("none", pytest.approx(32.0), 0.0, 0)
    with store.connect() as conn:
        moves = [(h["from_stage"], h["to_stage"], h["at_ms"]) for h in account_history(conn, ids["acme"])]
    # the first run stored it as an MQA (no row before); the erasure ends that
    assert moves == [(None, "mqa", at), ("mqa", "none", erased_at)]


def test_a_contact_that_moves_away_leaves_its_old_account_scored_without_it(store: Store) -> None:
    at = T0 + 2 * HOUR
    ids = _acme_and_beta_scored(store, at)
    moved_at = T0 + 3 * HOUR
    # ann (70) goes to gamma, eve (60, beta's only contact) to acme; no rule reads the account's events,
    # so neither account's remaining contacts is rescored by the move
    _ingest(store, [_msg("ann", "group", moved_at, groupId="gamma",
                         traits={"name": "Gamma", "domain": "gamma.example", **COMPANIES["gamma"]}),
                    _msg("eve", "group", moved_at, groupId="acme",
                         traits={"name": "Acme", "domain": "acme.example"})], moved_at)  # fmt: skip
    run_round(store, settings(), now_ms=moved_at, deliver=False)
    # acme: eve 60, bo 50, cy 30, dee 0 → committee 140 / 3, two engaged (eve, bo);
    # 0.4 × 100 + 0.6 × 140 / 3 = 68: still an MQA, on its contacts of now
    assert _stored(store, ids["acme"]) == ("mqa", pytest.approx(68.0), pytest.approx(140 / 3), 2)
    # beta, left with no contact: committee 0; 0.4 × 80 = 32
    assert _stored(store, ids["beta"]) == ("none", pytest.approx(32.0), 0.0, 0)


def test_a_contact_that_moves_away_from_an_mqa_ends_it(store: Store) -> None:
    at = T0 + 2 * HOUR
    ids = _acme_and_beta_scored(store, at)
    moved_at = T0 + 3 * HOUR
    _ingest(store, [_msg("ann", "group", moved_at, groupId="beta",
                         traits={"name": "Beta", "domain": "beta.example"})], moved_at)  # fmt: skip
    run_round(store, settings(), now_ms=moved_at, deliver=False)
    # acme without ann: bo 50, cy 30, dee 0 → 56 with one engaged: no longer an MQA
    assert _stored(store, ids["acme"]) == ("none", pytest.approx(56.0), pytest.approx(80 / 3), 1)
    # beta with ann: 70 and eve 60 → committee 130 / 3, two engaged; 0.4 × 80 + 0.6 × 130 / 3 = 58
    assert _stored(store, ids["beta"]) == ("none", pytest.approx(58.0), pytest.approx(130 / 3), 2)


def test_the_activity_chart_counts_each_contacts_events_per_monday_week(store: Store) -> None:
    """The account page's bar chart, counted in the database per contact and week (Monday, UTC): a view at
    Sunday 23:59:59.999 is the week before the one at Monday 00:00; 1970-01-01 was a Thursday, so the
    first event of all (time 0) is in the week of Monday 1969-12-29."""
    from leadscore.web.data.account import activity

    def page(user: str, i: int, at: str) -> dict[str, Any]:
        return {"type": "page", "userId": user, "messageId": f"{user}{i}", "timestamp": at}

    messages = [
        page("ann", 1, "2024-04-28T23:59:59.999Z"),
        page("ann", 2, "2024-04-29T00:00:00Z"),
        page("ann", 3, "2024-05-05T12:00:00Z"),
        page("bo", 1, "1970-01-01T00:00:00Z"),
        page("bo", 2, "2024-05-06T00:00:00Z"),
    ]
    ingest(store, [normalise(m, received_ms=T0 + 7 * 24 * HOUR) for m in messages], source="test")
    with store.connect() as conn:
        ann, bo = find_lead(conn, external_id="ann"), find_lead(conn, external_id="bo")
        chart, first = activity(conn, [{"id": ann, "name": "Ann"}, {"id": bo, "name": "Bo"}])
    assert first == 0
    assert chart["x"] == ["1969-12-29", "2024-04-22", "2024-04-29", "2024-05-06"]
    assert [(s["label"], s["values"]) for s in chart["series"]] == [
        ("Ann", [0, 1, 2, 0]),
        ("Bo", [1, 0, 0, 1]),
    ]


def test_an_account_score_at_the_mqa_line_in_decimals_is_an_mqa(store: Store) -> None:
    # delta: SaaS only, 20 of fit_max 50 → fit 40; contacts dot and eli a demo and two pages (70), flo a
    # demo and three pages (80): committee (70 + 70 + 80) / 3 = 73.33…, three engaged; the account score
    # 0.4 × 40 + 0.6 × 220 / 3 = 16 + 44 = 60, at the MQA line. As floats 0.6 × 73.33333333333333 is
    # 43.99999999999999 and the sum 59.99999999999999: the account was stored not an MQA and every page
    # showed it at 60.0 (cut reads float noise as the decimal) beside "—".
    publish(store, loads_model(MODEL))
    at = T0 + 2 * HOUR
    delta = {"employees": 20, "industry": "saas"}
    raws = []
    for user in ("dot", "eli", "flo"):
        raws.append(_msg(user, "identify", T0, traits={"email": f"{user}@delta.example"}))
        raws.append(_msg(user, "group", T0, groupId="delta",
                         traits={"name": "Delta", "domain": "delta.example", **delta}))  # fmt: skip
    _ingest(store, [*raws, *_activity("dot", demos=1, pages=2), *_activity("eli", demos=1, pages=2),
                    *_activity("flo", demos=1, pages=3)], at)  # fmt: skip
    run_round(store, settings(), now_ms=at, deliver=False)
    with store.begin() as conn:
        dot = find_lead(conn, external_id="dot")
        account = conn.execute(leads.select().where(leads.c.id == dot)).mappings().one()["account_id"]
        stored = read_account_stages(conn, [account])[account]
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    assert (stored["fit_score"], stored["engaged_contacts"]) == (40.0, 3)
    assert (stored["score"], stored["stage"]) == (60.0, "mqa")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        listing, page = client.get("/accounts"), client.get(f"/accounts/{account}")
    assert listing.status_code == 200 and page.status_code == 200
    row = listing.text[listing.text.index(">Delta</a>") :]
    assert '<td class="num">60.0</td><td>MQA</td>' in row[: row.index("</tr>")]
    assert '<dt>Status</dt><dd class="big">MQA</dd>' in page.text
