"""The account score's committee as of now reads the contacts' stored scores (``lifecycle.accounts``), the
numbers every lead screen shows and the lead gates test, so the runner's round scores no contact however
many an account holds (a write key can put 20,000 people in one: each round touching one of them scored
all of them inside the runner's write transaction), and the account score is the committee of the
engagement scores its contacts' rows show. Every number worked out by hand, on both engines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.ingest.segment import normalise
from leadscore.lifecycle import accounts as account_module
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_account_stages
from leadscore.store.people import find_lead
from leadscore.store.schema import leads, scores
from leadscore.store.users import add_user
from leadscore.web.data import account as account_data
from lifecycle_model import settings
from live_server import serving
from web_support import PASSWORD, signed_in

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
HOUR = 3_600_000
WEEK = 7 * 24 * HOUR

# Account rules: 500+ employees 40, SaaS 20 (fit_max 50: 60 points → fit 100). Engagement: a demo 50, a
# page 10, no decay. An MQA: an account score of 60 or more and two engaged contacts (35 or more).
MODEL = """
model: abm
fit:
  - {id: big, name: 500+ employees, when: {attribute: account.employees, gte: 500}, points: 40}
  - {id: saas, name: SaaS, when: {attribute: account.industry, equals: saas}, points: 20}
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
CROWD = 60  # people in acme
_n = iter(range(1_000_000))


def _msg(user: str, kind: str, at: int, **fields: Any) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000)) + "Z"
    return {"type": kind, "userId": user, "messageId": f"{user}-{next(_n)}", "timestamp": stamp, **fields}


def _ingest(store: Store, raws: list[dict[str, Any]], as_of: int) -> None:
    ingest(store, [normalise(r, received_ms=as_of) for r in raws], source="test", as_of=as_of)


def _account_of(store: Store, user: str) -> int:
    with store.connect() as conn:
        lead = find_lead(conn, external_id=user)
        return int(conn.execute(select(leads.c.account_id).where(leads.c.id == lead)).scalar_one())


@pytest.fixture
def scored(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The ledgers the account scores compute, per call of a scoring function (the start code scored every
    contact through ``score_leads``; the account's fit is one ledger through ``score``)."""
    counts: list[int] = []
    for name in ("score", "score_leads", "score_as_known"):
        original = getattr(account_module, name, None)
        if original is None:
            continue

        def counted(*args: Any, _original: Any = original, **kwargs: Any) -> Any:
            out = _original(*args, **kwargs)
            found = list(out.values()) if isinstance(out, dict) else list(out)
            counts.append(len(found))
            return out if isinstance(out, dict) else found

        monkeypatch.setattr(account_module, name, counted)
    yield counts


def test_a_crowded_accounts_round_scores_no_contact(store: Store, scored: list[int]) -> None:
    """acme: 60 people with a page view each (10), p0 with a demo too (60). Its score: fit 100; committee
    (60 + 10 + 10) / 3 = 26.67, one engaged (p0): 0.4 × 100 + 0.6 × 26.67 = 56, no MQA. Then p1 asks for a
    demo (60): committee (60 + 60 + 10) / 3 = 43.33, two engaged: 0.4 × 100 + 0.6 × 43.33 = 66, an MQA.
    Each round computes one ledger for the account (its fit) and none for its 60 contacts."""
    publish(store, loads_model(MODEL))
    at = T0 + 2 * HOUR
    people = [f"p{i}" for i in range(CROWD)]
    _ingest(store, [m for p in people for m in (
        _msg(p, "identify", T0, traits={"email": f"{p}@acme.example"}),
        _msg(p, "group", T0, groupId="acme",
             traits={"name": "Acme", "domain": "acme.example", "employees": 1000, "industry": "saas"}),
        _msg(p, "page", T0 + HOUR, properties={"path": "/pricing"}),
    )] + [_msg("p0", "track", T0 + HOUR, event="Demo")], at)  # fmt: skip
    acme = _account_of(store, "p0")
    run_round(store, settings(), now_ms=at, deliver=False)
    assert scored == [1]
    with store.connect() as conn:
        stage = read_account_stages(conn, [acme])[acme]
    assert (stage["fit_score"], stage["engagement_score"], stage["engaged_contacts"]) == (
        100,
        pytest.approx(80 / 3),
        1,
    )
    assert (stage["score"], stage["stage"]) == (pytest.approx(56.0), "none")

    scored.clear()
    later = T0 + 4 * HOUR
    _ingest(store, [_msg("p1", "track", T0 + 3 * HOUR, event="Demo")], later)
    run_round(store, settings(), now_ms=later, deliver=False)
    assert scored == [1]
    with store.connect() as conn:
        stage = read_account_stages(conn, [acme])[acme]
    assert (stage["engagement_score"], stage["engaged_contacts"]) == (pytest.approx(130 / 3), 2)
    assert (stage["score"], stage["stage"]) == (pytest.approx(66.0), "mqa")


DECAYING = """
model: decaying
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 50, half_life: 1d}
scale: {weights: {fit: 0, engagement: 1}}
lifecycle:
  initial: lead
  stages: [{id: lead, name: Lead}]
  accounts:
    committee_size: 2
    engaged_at_least: 35
    weights: {fit: 0, engagement: 1}
    mqa: {score_at_least: 40, engaged_contacts_at_least: 2}
"""


def test_the_account_score_is_the_committee_its_contacts_show(store: Store) -> None:
    """Ann and Bo of Acme ask for a demo (50, a half-life of a day) an hour in, scored then: 50 each. Their
    stored score drifts a point by decay after 24 h × log2(50 / 49) = 0.7 h, so the clock's tick two hours
    in rescores both: 50 × 2^(−1/24) = 48.58 each, what every lead screen shows of them until their next
    point of drift (another 0.7 h). The runner's round half an hour later stores the account's score as
    the committee of those: (48.58 + 48.58) / 2 = 48.58, two engaged: an MQA. (Each rescored as of the
    round they would be 50 × 2^(−1.5/24) = 47.88: a number no screen shows for them.)"""
    publish(store, loads_model(DECAYING))
    _ingest(store, [m for p in ("ann", "bo") for m in (
        _msg(p, "identify", T0, traits={"email": f"{p}@acme.example"}),
        _msg(p, "group", T0, groupId="acme", traits={"name": "Acme", "domain": "acme.example"}),
        _msg(p, "track", T0 + HOUR, event="Demo"),
    )], T0 + HOUR)  # fmt: skip
    tick(store, now=T0 + 2 * HOUR)
    run_round(store, settings(), now_ms=T0 + 2 * HOUR + HOUR // 2, deliver=False)
    acme = _account_of(store, "ann")
    with store.connect() as conn:
        shown = sorted(conn.execute(select(scores.c.engagement_score)).scalars())
        stage = read_account_stages(conn, [acme])[acme]
    decayed = 50 * 2 ** (-1 / 24)
    assert shown == [pytest.approx(decayed), pytest.approx(decayed)]
    assert (stage["engagement_score"], stage["engaged_contacts"]) == (pytest.approx(decayed), 2)
    assert (stage["score"], stage["stage"]) == (pytest.approx(decayed), "mqa")


def test_a_crowded_accounts_chart_scores_fewer_past_weeks(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each past week end of the account page's chart scores every contact as of then; a page scores at
    most ``SCORED_CONTACT_WEEKS`` contact-weeks (4 here). Acme (fit 100) has Ann (a page, 10) and Bo (a
    demo, 50) an hour in; now is 5 weeks and 2 hours in, so 5 past week ends have activity (now − 1 week …
    now − 5 weeks = 2 hours in). Two contacts: 4 / 2 = 2 past week ends and now are charted, each (50 + 10 +
    0) / 3 = 20 of committee engagement, one engaged, 0.4 × 100 + 0.6 × 20 = 52; the 3 earlier ones are left
    out, and the page says so (its now is today: 25 past week ends with activity, 23 left out)."""
    monkeypatch.setattr(account_data, "SCORED_CONTACT_WEEKS", 4)
    model = loads_model(MODEL)
    publish(store, model)
    acme_traits = {"name": "Acme", "domain": "acme.example", "employees": 1000, "industry": "saas"}
    _ingest(store, [
        *(m for p in ("ann", "bo") for m in (
            _msg(p, "identify", T0, traits={"email": f"{p}@acme.example"}),
            _msg(p, "group", T0, groupId="acme", traits=acme_traits),
        )),
        _msg("ann", "page", T0 + HOUR, properties={"path": "/pricing"}),
        _msg("bo", "track", T0 + HOUR, event="Demo"),
    ], T0 + 2 * HOUR)  # fmt: skip
    acme = _account_of(store, "ann")
    now = T0 + 5 * WEEK + 2 * HOUR
    with store.connect() as conn:
        view = account_data.load(conn, model, acme, now)
    assert view is not None
    assert [(h["t"], h["score"], h["engagement"], h["engaged_contacts"]) for h in view.history] == [
        (now - 2 * WEEK, 52.0, 20.0, 1),
        (now - WEEK, 52.0, 20.0, 1),
        (now, 52.0, 20.0, 1),
    ]
    assert view.weeks_left_out == 3

    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.get(f"/accounts/{acme}")
    assert page.status_code == 200, page.text
    assert (
        "The 23 earlier weeks with activity are not charted: a week end scores each of the account's 2"
        " contacts as of then, and a page scores at most 4 contact-weeks." in page.text
    )
