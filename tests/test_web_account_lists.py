"""A crowded account's or lead's page lists a page of each of its lists (``web.data.paging``): a public
write key's ``group`` calls can put 20,000 people in one account, and the account page listed every
product-qualified one of them (examples/pql_trial: stage ``pql``); its batches can give one person any
number of score history rows and crossings, which the lead page and ``GET /v1/leads/{ref}`` listed whole.
Accounts, contacts and history rows are written straight to the store here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.model import load_model
from leadscore.scoring.pipeline import active_model, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.schema import (
    account_stage_history,
    accounts,
    lead_stages,
    leads,
    score_events,
    score_history,
    stage_history,
)
from leadscore.store.users import add_user
from leadscore.web.data import product as product_data
from live_server import serving
from web_support import PASSWORD, signed_in

EXAMPLE = Path(__file__).parent.parent / "examples" / "pql_trial" / "model.yaml"
VIEWER = "marketing@example.test"


def _account(store: Store, domain: str, people: int, pql: int = 1) -> int:
    """An account of ``people`` contacts ``{domain}-{i}@…`` (none scored: listed in id order), every
    ``pql``-th one (from the first) in the PQL stage."""
    with store.begin() as conn:
        account_id = int(
            conn.execute(
                insert(accounts)
                .values(domain=domain, name=domain, attributes={}, created_ms=0, updated_ms=0)
                .returning(accounts.c.id)
            ).scalar_one()
        )
        ids = [
            int(i)
            for i in conn.execute(
                insert(leads).returning(leads.c.id, sort_by_parameter_order=True),
                [{"external_id": f"{domain}-{i}", "email": f"{domain}-{i}@{domain}", "account_id": account_id,
                  "attributes": {}, "created_ms": 0, "updated_ms": 0} for i in range(people)],
            ).scalars()
        ]  # fmt: skip
        conn.execute(
            insert(lead_stages),
            [{"lead_id": lead, "stage": "pql" if i % pql == 0 else "trial", "entered_ms": 0, "updated_ms": 0}
             for i, lead in enumerate(ids)],
        )  # fmt: skip
    return account_id


@pytest.fixture
def served(store: Store) -> Iterator[tuple[str, Store]]:
    publish(store, load_model(EXAMPLE))
    with store.begin() as conn:
        add_user(conn, VIEWER, "M", "marketing", hash_password(PASSWORD), 0)
    with serving(create_app(Settings(database_url="unused", run_processor=False), store=store)) as url:
        yield url, store


def _contact_rows(html: str) -> list[str]:
    table = html.split('<table class="contacts">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<th scope="row"><a href="/leads/\d+">([^<]*)</a>', table)


def _pql(html: str) -> list[str]:
    found = html.split('class="pql-contacts"', 1)
    return (
        re.findall(r'<li><a href="/leads/\d+">([^<]*)</a></li>', found[1].split("</ul>", 1)[0])
        if found[1:]
        else []
    )


def test_the_product_qualified_contacts_are_listed_a_page_at_a_time(
    served: tuple[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    # 60 contacts q-0 … q-59, every third one (q-0, q-3, …, q-57) product-qualified: 20 of them; 8 a page →
    # pages of 8, 8 and 4: page 3 is q-48, q-51, q-54, q-57 (positions 17–20); the contacts 50 a page →
    # 2 pages, page 2 is q-50 … q-59
    monkeypatch.setattr(product_data, "QUALIFIED_PAGE", 8)
    url, store = served
    acct = _account(store, "q", 60, pql=3)
    with signed_in(url, VIEWER) as client:
        first = client.get(f"/accounts/{acct}")
        both = client.get(f"/accounts/{acct}?page=2&pql_page=3")
        beyond = client.get(f"/accounts/{acct}?pql_page=99")
        bad = [client.get(f"/accounts/{acct}?pql_page={p}").status_code for p in ("0", "-1", str(2**70), "x")]
    assert [r.status_code for r in (first, both, beyond)] == [200, 200, 200]
    assert bad == [422, 422, 422, 422]  # as ?page
    assert _pql(first.text) == [f"q-{i}@q" for i in range(0, 24, 3)]
    assert "20 product-qualified contacts, showing 1–8" in first.text
    assert "<dt>Product-qualified contacts</dt><dd>20</dd>" in first.text
    assert _pql(both.text) == _pql(beyond.text) == ["q-48@q", "q-51@q", "q-54@q", "q-57@q"]
    assert "20 product-qualified contacts, showing 17–20" in both.text
    assert _contact_rows(both.text) == [f"q-{i}@q" for i in range(50, 60)]
    assert "60 contacts, showing 51–60" in both.text
    # each pager keeps the other list's page (and leaves a first page out of the address)
    assert f'href="/accounts/{acct}?page=2&amp;pql_page=2" rel="prev"' in both.text
    assert f'href="/accounts/{acct}?page=1&amp;pql_page=3" rel="prev"' in both.text
    assert f'href="/accounts/{acct}?pql_page=2" rel="next"' in first.text
    assert f'href="/accounts/{acct}?page=2" rel="next"' in first.text


def test_a_crowded_accounts_page_renders_a_bounded_page(served: tuple[str, Store]) -> None:
    """3,000 product-qualified contacts against 60: each page lists 50 contacts and 50 product-qualified
    ones, so the two pages differ by the digits of their counts and names alone (under 2,000 bytes);
    the page listed all 3,000 names (about 20 bytes each) before."""
    url, store = served
    small, crowded = _account(store, "s", 60), _account(store, "c", 3_000)
    with signed_in(url, VIEWER) as client:
        pages = [client.get(f"/accounts/{a}") for a in (small, crowded)]
    assert [p.status_code for p in pages] == [200, 200]
    assert len(pages[1].content) - len(pages[0].content) < 2_000
    for page, people in zip(pages, (60, 3_000), strict=True):
        assert len(_contact_rows(page.text)) == 50 and len(_pql(page.text)) == 50
        assert f"{people:,} product-qualified contacts, showing 1–50" in page.text


def _lead_with_history(store: Store, name: str, rows: int, crossings: int = 0) -> int:
    """A lead ``name`` with ``rows`` score history rows (row i at time i, score i mod 100, cause ref
    ``m{i}``) and ``crossings`` band crossings (crossing i at time i), as a write key's batches leave them:
    each batch that moves her score writes one."""
    with store.begin() as conn:
        version = active_model(conn)
        assert version is not None and version.version is not None
        lead = int(
            conn.execute(
                insert(leads)
                .values(external_id=name, email=f"{name}@x.test", attributes={}, created_ms=0, updated_ms=0)
                .returning(leads.c.id)
            ).scalar_one()
        )
        common = {"lead_id": lead, "model_version_id": version.version.id, "recorded_ms": 0}
        if rows:
            conn.execute(insert(score_history), [
                {**common, "at_ms": i, "score": float(i % 100), "fit_score": 0.0, "engagement_score": float(i % 100),
                 "grade": "D", "level": 0, "band": "cold", "cause": "event", "cause_ref": f"m{i}"}
                for i in range(rows)
            ])  # fmt: skip
        if crossings:
            conn.execute(insert(score_events), [
                {**common, "kind": "band", "from_value": "cold", "to_value": "warm", "at_ms": i, "score": 50.0,
                 "cause_ref": f"m{i}"} for i in range(crossings)
            ])  # fmt: skip
    return lead


def _history_refs(html: str) -> list[str]:
    table = html.split('<table class="history">', 1)[1].split("</table>", 1)[0]
    return re.findall(r"<td>event: (m\d+)</td>", table)


def test_a_crowded_leads_history_is_listed_a_page_at_a_time(served: tuple[str, Store]) -> None:
    """3,000 history rows against 60: the lead page lists 50 (the newest first) and their score path, so the
    pages differ by digits alone (under 2,000 bytes; every row was listed before); page 60 holds the oldest
    50 (m49 … m0). The API answers 100 rows and crossings a page: 250 crossings are 3 pages, the last
    holding the oldest 50 (oldest first within a page, as before)."""
    url, store = served
    few, crowded = _lead_with_history(store, "few", 60), _lead_with_history(store, "many", 3_000, 250)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "crm", 0)
    with signed_in(url, VIEWER) as client:
        pages = [client.get(f"/leads/{lead}") for lead in (few, crowded)]
        oldest = client.get(f"/leads/{crowded}?history_page=60")
        beyond = client.get(f"/leads/{crowded}?history_page=61")
        bad = [client.get(f"/leads/{crowded}?history_page={p}").status_code for p in ("0", str(2**70), "x")]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as api:
        first = api.get(f"/v1/leads/{crowded}").json()
        last = api.get(f"/v1/leads/{crowded}?history_offset=2900&crossings_offset=200").json()
        refused = [api.get(f"/v1/leads/{crowded}?{p}").json()["errors"][0]["field"]
                   for p in ("history_limit=0", "crossings_offset=-1", f"history_offset={2**64}")]  # fmt: skip
    assert [p.status_code for p in pages] == [200, 200]
    assert len(pages[1].content) - len(pages[0].content) < 2_000
    assert [p.status_code for p in (oldest, beyond)] == [200, 200] and bad == [422] * 3
    assert _history_refs(pages[1].text) == [f"m{i}" for i in range(2_999, 2_949, -1)]
    assert "3,000 recorded changes, showing 1–50" in pages[1].text
    assert _history_refs(pages[0].text) == [f"m{i}" for i in range(59, 9, -1)]
    assert _history_refs(oldest.text) == _history_refs(beyond.text) == [f"m{i}" for i in range(49, -1, -1)]
    assert "3,000 recorded changes, showing 2,951–3,000" in oldest.text
    # the path of the listed rows: 2950 mod 100 = 50 … 2999 mod 100 = 99, the older ones elided
    path = " → ".join(str(s) for s in range(50, 100))
    assert f"Score path: <strong>… → {path}</strong>" in pages[1].text
    assert [h["cause_ref"] for h in first["history"]] == [f"m{i}" for i in range(2_900, 3_000)]
    # the API's pages are its lists' one convention (api.paging, as a lead's stage moves): limit and offset
    assert first["history_paging"] == {"total": 3_000, "limit": 100, "offset": 0, "next_offset": 100}
    assert [c["cause_ref"] for c in first["crossings"]] == [f"m{i}" for i in range(150, 250)]
    assert first["crossings_paging"] == {"total": 250, "limit": 100, "offset": 0, "next_offset": 100}
    assert [h["cause_ref"] for h in last["history"]] == [f"m{i}" for i in range(100)]
    assert last["history_paging"] == {"total": 3_000, "limit": 100, "offset": 2_900, "next_offset": None}
    assert [c["cause_ref"] for c in last["crossings"]] == [f"m{i}" for i in range(50)]
    assert last["crossings_paging"] == {"total": 250, "limit": 100, "offset": 200, "next_offset": None}
    assert refused == ["history_limit", "crossings_offset", "history_offset"]


def test_a_bounced_leads_and_accounts_stage_moves_are_listed_a_page_at_a_time(
    served: tuple[str, Store],
) -> None:
    """3,000 stage moves of a lead (a lead bounced in and out of a stage; move i at time i, cause ref
    ``s{i}``) and of an account (MQA and back, account score i mod 100) against 60: 50 listed a page, the
    newest first, within 2,000 bytes of the pages of 60; every move was listed before. The pagers keep the
    other list's page."""
    url, store = served
    people = {n: _lead_with_history(store, n, 0) for n in ("calm", "bounced")}
    accts = {n: _account(store, n, 1) for n in ("calm", "bounced")}
    with store.begin() as conn:
        for name, moves in (("calm", 60), ("bounced", 3_000)):
            conn.execute(insert(stage_history), [
                {"lead_id": people[name], "from_stage": "trial", "to_stage": "pql", "at_ms": i,
                 "transition": "product_qualified", "cause": "score", "cause_ref": f"s{i}", "recorded_ms": 0}
                for i in range(moves)
            ])  # fmt: skip
            conn.execute(insert(account_stage_history), [
                {"account_id": accts[name], "from_stage": "none", "to_stage": "mqa", "score": float(i % 100),
                 "at_ms": i} for i in range(moves)
            ])  # fmt: skip
    with signed_in(url, VIEWER) as client:
        leads_ = [client.get(f"/leads/{people[n]}") for n in ("calm", "bounced")]
        accounts_ = [client.get(f"/accounts/{accts[n]}") for n in ("calm", "bounced")]
        last = client.get(f"/leads/{people['bounced']}?stages_page=60")
        acct_last = client.get(f"/accounts/{accts['bounced']}?moves_page=60")
    assert [r.status_code for r in (*leads_, *accounts_, last, acct_last)] == [200] * 6
    for calm, bounced in (leads_, accounts_):
        assert len(bounced.content) - len(calm.content) < 2_000

    def refs(html: str) -> list[str]:
        table = html.split('<table class="stages">', 1)[1].split("</table>", 1)[0]
        return re.findall(r"<td>score: (s\d+)</td>", table)

    def scores(html: str) -> list[str]:
        table = html.split('<table class="account-moves">', 1)[1].split("</table>", 1)[0]
        return re.findall(r'<td class="num">([\d.]+)</td>', table)

    assert refs(leads_[1].text) == [f"s{i}" for i in range(2_999, 2_949, -1)]
    assert "3,000 stage moves, showing 1–50" in leads_[1].text
    assert refs(last.text) == [f"s{i}" for i in range(49, -1, -1)]
    assert f'href="/leads/{people["bounced"]}?stages_page=59" rel="prev"' in last.text
    # the newest 50 account moves: scores 2999 mod 100 = 99 down to 2950 mod 100 = 50
    assert scores(accounts_[1].text) == [f"{i}.0" for i in range(99, 49, -1)]
    assert "3,000 status changes, showing 1–50" in accounts_[1].text
    assert scores(acct_last.text) == [f"{i}.0" for i in range(49, -1, -1)]
