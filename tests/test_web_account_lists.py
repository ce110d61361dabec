"""A crowded account's page lists a page of each of its lists (``web.data.paging``): a public write key's
``group`` calls can put 20,000 people in one account, and the page listed every product-qualified one of
them (examples/pql_trial: stage ``pql``). Accounts and contacts are written straight to the store here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.model import load_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.schema import accounts, lead_stages, leads
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
