"""``GET /v1/leads``'s cursor pages walked by a CRM sync client while leads are rescored between two
requests, on both stores (docs/ingest.md, "Read API", "Paging").

The store: leads p1..p7, each with 10·k points (the model scores one point per ``Plus`` event and weighs
fit 0, so p_k's score is 10·k: p7 70 … p1 10). Pages of 2.

A walk in score order (``sort=score``, newest first) after its first page [p7 70, p6 60]:
p1 rises to 85 (above the cursor), p6 falls to 5 (below the cursor); after the second page p3 rises to 80.
A cursor of (score, id) alone skipped p1 and p3 and showed p6 twice. The walk now keeps its start as the
cursor's snapshot: the leads rescored since are not read in score order but after the others, by id
(the "changed" pass), so none is skipped; one changed after it was shown (p6) shows again, with its new
score, last. Hand-walked: [p7, p6], [p5, p4], [p2] + changed [p1], changed [p3, p6].

A walk in id order (``sort=id``), whose key never changes, shows each lead exactly once whatever is
rescored between pages.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leadscore.api import create_app
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from lifecycle_model import model, person, points, send
from live_server import serving

USERS = [f"p{k}" for k in range(1, 8)]


@pytest.fixture
def client(store: Store) -> Iterator[httpx.Client]:
    publish(store, model())
    send(store, [person(u) for u in USERS])
    send(store, [m for k, u in enumerate(USERS, 1) for m in points(u, 10 * k)])
    with store.begin() as conn:
        _, token = create_key(conn, "read", "sync", 0)
    api = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=30) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def _page(client: httpx.Client, params: dict[str, Any]) -> dict[str, Any]:
    r = client.get("/v1/leads", params=params)
    assert r.status_code == 200, r.text
    return r.json()


def _shown(page: dict[str, Any]) -> list[tuple[str, float]]:
    return [(row["external_id"], row["score"]) for row in page["leads"]]


def test_a_score_walk_skips_no_lead_rescored_between_pages(store: Store, client: httpx.Client) -> None:
    params: dict[str, Any] = {"sort": "score", "order": "desc", "limit": 2}
    pages = [_page(client, params)]
    assert _shown(pages[0]) == [("p7", 70.0), ("p6", 60.0)]
    send(store, points("p1", 75) + points("p6", -55))  # p1 10 → 85, p6 60 → 5
    pages.append(_page(client, {**params, "cursor": pages[-1]["next_cursor"]}))
    send(store, points("p3", 50))  # p3 30 → 80
    while pages[-1]["next_cursor"]:
        pages.append(_page(client, {**params, "cursor": pages[-1]["next_cursor"]}))
    assert [_shown(p) for p in pages] == [
        [("p7", 70.0), ("p6", 60.0)],
        [("p5", 50.0), ("p4", 40.0)],
        [("p2", 20.0), ("p1", 85.0)],
        [("p3", 80.0), ("p6", 5.0)],
    ]
    seen = [user for p in pages for user, _ in _shown(p)]
    assert sorted(set(seen)) == USERS  # none skipped


def test_an_id_walk_shows_every_lead_exactly_once(store: Store, client: httpx.Client) -> None:
    params: dict[str, Any] = {"sort": "id", "order": "asc", "limit": 2}
    pages = [_page(client, params)]
    changes = iter([points("p7", -65) + points("p1", 80), points("p2", 90), points("p6", -60)])
    while pages[-1]["next_cursor"]:
        send(store, next(changes, []))
        pages.append(_page(client, {**params, "cursor": pages[-1]["next_cursor"]}))
    seen = [user for p in pages for user, _ in _shown(p)]
    assert seen == USERS
    assert dict(_shown(pages[-1]))["p7"] == 5.0  # read as it is when its page is read


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def test_hostile_cursors_are_a_400_naming_the_cursor(client: httpx.Client) -> None:
    first = _page(client, {"sort": "score", "limit": 2})
    fit_cursor = _page(client, {"sort": "fit", "limit": 2})["next_cursor"]
    asc_cursor = _page(client, {"sort": "score", "order": "asc", "limit": 2})["next_cursor"]
    hostile = [
        "garbage",
        "%00",
        "\x00",
        _cursor("[1,1]"),  # the old (value, id) cursor: no sort, order or snapshot
        _cursor('["score","desc",1,0,1]'),
        _cursor('["score","desc",1,0,99999999999999999999999,1]'),  # past 64 bits
        _cursor('["score","desc",1,0,1e999999,1]'),
        _cursor('["score","desc",1,0,1,-1]'),
        _cursor('["score","desc",-1,0,1,1]'),
        _cursor('["score","desc",1,2,1,1]'),
        _cursor('["score","desc",1,0,1,2147483648]'),  # no id on PostgreSQL's 32-bit INTEGER
        _cursor('["score","desc",18446744073709551616,0,1,1]'),
        _cursor('["score","desc",1,0,true,1]'),
        _cursor('["score","desc",1,0,"x",1]'),
        _cursor('["score","desc\\u0000",1,0,1,1]'),
        _cursor('{"sort":"score"}'),
        fit_cursor,  # another sort's
        asc_cursor,  # another order's
    ]
    for cursor in hostile:
        r = client.get("/v1/leads", params={"sort": "score", "cursor": cursor})
        assert r.status_code == 400, (cursor, r.text)
        (error,) = r.json()["errors"]
        assert error["field"] == "cursor", (cursor, error)
    long = client.get("/v1/leads", params={"cursor": "x" * 501})
    assert long.status_code in (400, 422) and "cursor" in long.text
    again = client.get("/v1/leads", params={"sort": "score", "limit": 2, "cursor": first["next_cursor"]})
    assert _shown(again.json()) == [("p5", 50.0), ("p4", 40.0)]


def test_an_updated_walk_reads_the_leads_edited_since_its_start_last(
    store: Store, client: httpx.Client
) -> None:
    """p1..p7 were made in one batch (one ``updated_ms``: by id within it). After the first page [p1, p2]
    p1 and p5 take a new job title: the walk reads p3, p4, p6, p7 in order, then p1 and p5 (changed)."""
    params: dict[str, Any] = {"sort": "updated", "order": "asc", "limit": 2}
    pages = [_page(client, params)]
    send(store, [person("p1", title="Marketing Director"), person("p5", title="Marketing Director")])
    while pages[-1]["next_cursor"]:
        pages.append(_page(client, {**params, "cursor": pages[-1]["next_cursor"]}))
    seen = [[row["external_id"] for row in p["leads"]] for p in pages]
    assert seen == [["p1", "p2"], ["p3", "p4"], ["p6", "p7"], ["p1", "p5"]]
