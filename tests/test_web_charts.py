"""The marketing desk on the demo data, over real HTTP: the account page, the funnel with its
conversion rates, the evaluation's wording and band order, the matrix's heat scale and the score
distribution (by hand on both stores)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from leadscore.lifecycle.lead_filter import LeadFilter
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.schema import accounts, leads, scores
from leadscore.web.data.leadlist import distribution
from leadscore.web.pages.leads import heat, histogram
from lifecycle_model import model, person, points, send
from web_support import Site, signed_in, site


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("desk"), leads=60, seed=3) as s:
        yield s


def test_the_busiest_account_page_lists_every_contact_and_its_history(demo: Site) -> None:
    with demo.store.connect() as conn:
        account_id, contacts = conn.execute(
            select(leads.c.account_id, func.count())
            .where(leads.c.account_id.is_not(None))
            .group_by(leads.c.account_id)
            .order_by(func.count().desc(), leads.c.account_id)
            .limit(1)
        ).one()
        ids = [i for (i,) in conn.execute(select(leads.c.id).where(leads.c.account_id == account_id))]
        name = conn.execute(select(accounts.c.name).where(accounts.c.id == account_id)).scalar_one()
    with signed_in(demo.url, demo.email("marketing")) as client:
        page = client.get(f"/accounts/{account_id}")
        listed = client.get("/accounts")
        gone = client.get("/accounts/0")
    assert page.status_code == 200, page.text
    assert gone.status_code == 404
    assert f'href="/accounts/{account_id}"' in listed.text
    assert f"<h1>{name}</h1>" in page.text
    table = page.text[page.text.index('<table class="contacts">') :]
    table = table[: table.index("</table>")]
    assert table.count('<tr><th scope="row">') == contacts
    assert all(f'href="/leads/{i}"' in table for i in ids)
    # the demo spreads six months of activity: more than one week of it, and a score per week
    assert page.text.count('<tr><th scope="row">20') > 1  # activity rows, one per week
    history = page.text[page.text.index('<table class="account-history">') :]
    assert history[: history.index("</table>")].count("<tr><td>") > 4


def test_the_funnel_shows_conversion_between_stages_over_the_demo_months(demo: Site) -> None:
    with signed_in(demo.url, demo.email("marketing")) as client:
        page = client.get("/funnel")
    assert page.status_code == 200, page.text
    totals = page.text[page.text.index('id="funnel-totals"') :]
    totals = totals[: totals.index("</table>")]
    entered = [int(n) for n in re.findall(r'data-stage="[a-z_]+">(\d+)<', totals)]
    rates = re.findall(r'data-rate="[a-z_]+">([0-9.]+) %<', totals)
    assert entered[0] == 60 and entered == sorted(entered, reverse=True)
    # the first rate: of the 60 that entered the first stage, the share that reached the second
    assert float(rates[0]) == pytest.approx(100 * entered[1] / entered[0], abs=0.05)
    # stage moves over many weeks, not one spike on the demo's last day
    assert len(set(re.findall(r"<tr><td>(\d{4}-\d\d-\d\d)</td>", page.text))) > 4
    assert '<table class="by-group">' in page.text and "% on)" in page.text


def test_the_evaluation_names_the_top_shares_once_and_lists_bands_hot_first(demo: Site) -> None:
    with signed_in(demo.url, demo.email("marketing")) as client:
        page = client.get("/evaluation")
    assert page.status_code == 200, page.text
    assert "Captured by the top 10 %" in page.text and "top top" not in page.text
    table = page.text[page.text.index('<table class="bands">') :]
    bands = re.findall(r'<th scope="row">(hot|warm|cold)</th>', table[: table.index("</table>")])
    assert len(bands) >= 2 and bands == [b for b in ("hot", "warm", "cold") if b in bands]


def test_the_account_page_needs_a_signed_in_reader(demo: Site) -> None:
    with httpx.Client(base_url=demo.url, follow_redirects=False) as anonymous:
        assert anonymous.get("/accounts/1").status_code == 303


def test_matrix_cells_are_shaded_by_their_share_of_the_fullest_cell(demo: Site) -> None:
    # fullest 10: 10 and 8 (over three quarters) darkest, 5 (a half) step 2, 1 step 1, none unshaded
    assert [heat(n, 10) for n in (0, 1, 3, 5, 6, 8, 10)] == [0, 1, 2, 2, 3, 4, 4]
    assert heat(0, 0) == 0 and heat(1, 1) == 4
    with signed_in(demo.url, demo.email("marketing")) as client:
        page = client.get("/leads/matrix")
    assert page.status_code == 200, page.text
    cells = re.findall(r'<td class="cell heat-(\d)[^"]*">\s*<a [^>]*>([\d,]+)</a>', page.text)
    assert len(cells) == 16
    counts = [int(n.replace(",", "")) for _, n in cells]
    assert [int(h) for h, _ in cells] == [heat(n, max(counts)) for n in counts]
    assert '<abbr title="Engagement level 4">L4</abbr>' in page.text


def test_score_distribution_bins_by_hand_under_a_filter(store: Store) -> None:
    # the lifecycle test model scores engagement alone, a point per "Plus": ann 70, bob 45, cat 5, dan 0
    # (identified, no activity) and eve 100, which falls in the last bin (90–100)
    publish(store, model())
    people = [person(u) for u in ("ann", "bob", "cat", "dan", "eve")]
    send(store, [*people, *points("ann", 70), *points("bob", 45), *points("cat", 5), *points("eve", 100)])
    with store.connect() as conn:
        everyone = distribution(conn, LeadFilter())
        hot = distribution(conn, LeadFilter(band="hot"))  # 70 or more
    assert everyone == [2, 0, 0, 0, 1, 0, 0, 1, 0, 1]
    assert hot == [0, 0, 0, 0, 0, 0, 0, 1, 0, 1]
    # the model's bands: warm 40, hot 70 → on a 10-bar axis, marks at bars 3.5 and 6.5
    chart = histogram(everyone, model().scale.bands)
    assert chart["marks"] == [{"x": 3.5, "label": "warm ≥ 40"}, {"x": 6.5, "label": "hot ≥ 70"}]
    assert chart["x"][0] == "0–10" and chart["x"][-1] == "90–100"


def test_the_matrix_page_draws_the_score_distribution(demo: Site) -> None:
    with demo.store.connect() as conn:
        stored = [float(s) for (s,) in conn.execute(select(scores.c.score))]
    with signed_in(demo.url, demo.email("marketing")) as client:
        page = client.get("/leads/matrix")
    table = page.text[page.text.index('<table class="histogram">') :]
    shown = [int(n) for n in re.findall(r'<td class="num">([\d,]+)</td>', table[: table.index("</table>")])]
    assert shown == [sum(1 for s in stored if min(int(s // 10), 9) == i) for i in range(10)]
    assert sum(shown) == 60
