"""The API's offset pages (``api.paging``) of the lists that a write key can lengthen: the assignments,
the nurtured leads, the accounts report and a lead's stage moves and notifications, on both stores. Each page is ``limit`` rows from ``offset``
with the list's ``total`` and ``next_offset``; walking the pages covers every row once, in the list's
order; the assignments, in the order made, grow at their end only, so a row made between two pages is
read once, on a later page. Hostile ``limit`` and ``offset`` values are a 422 naming the parameter.

The store: leads n1..n7 with 1..7 points (below 60: in ``lead``, a nurture stage), leads m1..m5 with
61..65 points (Marketing Manager: grade B; MQL, each one assigned in the round), and accounts a1..a5
with stored account scores 30, 50, 50, 10, 70 (the stored rows the primary's report reads).

A lead's stage (``GET /v1/leads/{ref}/stage``) pages its two lists apart (``history_limit``,
``history_offset``; ``notifications_limit``, ``notifications_offset``): the newest first from the offset,
each page oldest first as the whole list was, ``history_paging`` and ``notifications_paging`` beside them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from leadscore.api import create_app
from leadscore.api.paging import page_at
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.outbox import enqueue, read_outbox
from leadscore.store.people import find_lead
from leadscore.store.schema import account_stages, accounts, stage_history
from lifecycle_model import DAY, HOUR, T0, model, person, points, send
from live_server import serving
from test_lifecycle import round_

NURTURED = [f"n{k}" for k in range(1, 8)]
MQLS = [f"m{k}" for k in range(1, 6)]
ACCOUNT_SCORES = {"a1": 30.0, "a2": 50.0, "a3": 50.0, "a4": 10.0, "a5": 70.0}
PAGES = ("/v1/assignments", "/v1/reports/nurtured", "/v1/reports/accounts")
STAGE = "/v1/leads/m1/stage"
BOUNCES = 12  # moves m1 is given, back and forth across the MQL line, as a write key's events can make


@pytest.fixture
def client(store: Store) -> Iterator[httpx.Client]:
    publish(store, model())
    send(store, [person(u) for u in NURTURED + MQLS])
    send(store, [m for k, u in enumerate(NURTURED, 1) for m in points(u, k)])
    send(store, [m for k, u in enumerate(MQLS, 61) for m in points(u, k)])
    round_(store, T0 + DAY)
    with store.begin() as conn:
        for name, score in ACCOUNT_SCORES.items():
            account_id = conn.execute(
                accounts.insert().values(
                    domain=f"{name}.example", name=name, attributes={}, created_ms=T0, updated_ms=T0
                )
            ).inserted_primary_key[0]
            conn.execute(
                account_stages.insert().values(
                    account_id=account_id, stage="none", score=score, fit_score=score, engagement_score=0.0,
                    engaged_contacts=0, target=False, entered_ms=T0, updated_ms=T0,
                )
            )  # fmt: skip
        _, token = create_key(conn, "read", "pages", 0)
    api = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=30) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def _users(store: Store) -> dict[int, str]:
    with store.connect() as conn:
        return {int(find_lead(conn, external_id=u) or 0): u for u in NURTURED + MQLS}


def _walk(client: httpx.Client, path: str, key: str, limit: int) -> tuple[list[dict[str, Any]], int, int]:
    """Every page of ``path``, ``limit`` rows each, following ``next_offset``: the rows, the total the
    last page gave, and how many pages were read."""
    rows: list[dict[str, Any]] = []
    offset: int | None = 0
    pages = 0
    total = -1
    while offset is not None:
        page = client.get(path, params={"limit": limit, "offset": offset})
        assert page.status_code == 200, page.text
        body = page.json()
        assert (body["limit"], body["offset"]) == (limit, offset)
        assert len(body[key]) <= limit
        rows += body[key]
        total, offset = body["total"], body["next_offset"]
        pages += 1
        assert pages <= 20
    return rows, total, pages


def test_the_nurtured_leads_a_page_at_a_time_hottest_first(store: Store, client: httpx.Client) -> None:
    users = _users(store)
    for limit in (1, 2, 3, 7, 100):
        rows, total, pages = _walk(client, "/v1/reports/nurtured", "leads", limit)
        assert [users[r["lead_id"]] for r in rows] == ["n7", "n6", "n5", "n4", "n3", "n2", "n1"]
        assert (total, pages) == (7, -(-7 // limit))
    first = client.get("/v1/reports/nurtured").json()  # 100 rows from 0 when not asked
    assert (len(first["leads"]), first["limit"], first["offset"], first["next_offset"]) == (7, 100, 0, None)
    past = client.get("/v1/reports/nurtured", params={"offset": 7}).json()
    assert (past["leads"], past["total"], past["next_offset"]) == ([], 7, None)


def test_the_accounts_report_a_page_at_a_time(client: httpx.Client) -> None:
    # by score, then by account id: a2 and a3 tie at 50, a2 first
    for limit in (1, 2, 4, 5):
        rows, total, pages = _walk(client, "/v1/reports/accounts", "accounts", limit)
        assert [r["name"] for r in rows] == ["a5", "a2", "a3", "a1", "a4"]
        assert (total, pages) == (5, -(-5 // limit))


def test_the_assignments_a_page_at_a_time_and_one_made_between_pages(
    store: Store, client: httpx.Client
) -> None:
    users = _users(store)
    rows, total, pages = _walk(client, "/v1/assignments", "assignments", 2)
    assert sorted(users[r["lead_id"]] for r in rows) == MQLS  # one each
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)  # in the order made
    assert (total, pages) == (5, 3)
    # all five are open (no feedback, each lead still in MQL): ``?open=true`` counts and pages them alike
    opened = client.get("/v1/assignments", params={"open": "true", "limit": 2, "offset": 4}).json()
    assert ([r["id"] for r in opened["assignments"]], opened["total"], opened["next_offset"]) == (
        [rows[4]["id"]],
        5,
        None,
    )
    # m6 is assigned after the first page was read: the later pages hold the 4 others and m6, once each
    first = client.get("/v1/assignments", params={"limit": 2}).json()
    send(store, [person("m6"), *points("m6", 70, at=T0 + DAY + HOUR)])
    round_(store, T0 + DAY + 2 * HOUR)
    offset, later = first["next_offset"], []
    while offset is not None:
        page = client.get("/v1/assignments", params={"limit": 2, "offset": offset}).json()
        later += page["assignments"]
        offset = page["next_offset"]
    with store.connect() as conn:
        m6 = find_lead(conn, external_id="m6")
    seen = [r["id"] for r in first["assignments"] + later]
    assert len(seen) == len(set(seen)) == 6
    assert [r["lead_id"] for r in later][-1] == m6


HOSTILE = {
    "limit": ["0", "-1", "1001", "9223372036854775808", "18446744073709551616", "\x00", "1\x00", "ten", "1.5",
              "1e3", "", "9" * 5000],
    "offset": ["-1", "1000000001", "9223372036854775808", "18446744073709551616", "\x00", "ten", "0.5", "",
               "9" * 5000],
}  # fmt: skip


def test_hostile_paging_values_are_refused_naming_the_parameter(client: httpx.Client) -> None:
    named = [(path, name, name) for path in PAGES for name in HOSTILE]
    named += [(STAGE, f"{lst}_{name}", name) for lst in ("history", "notifications") for name in HOSTILE]
    for path, name, kind in named:
        for value in HOSTILE[kind]:
            answer = client.get(path, params={name: value})
            assert answer.status_code == 422, (path, name, value[:20], answer.text[:200])
            body = answer.json()
            assert body["ok"] is False
            assert [e["field"] for e in body["errors"]] == [name], (path, name, value[:20], body)


def _bounced(store: Store) -> tuple[list[str], list[str]]:
    """m1 (in MQL since the round) moves ``BOUNCES`` times more, between MQL and nurture a second apart
    (cause refs ``b0``..``b11``), and gets a notification each (keys ``b0``..``b11``): its stage moves'
    cause refs and its notifications' keys, as the store lists them whole, oldest first."""
    with store.begin() as conn:
        m1 = int(find_lead(conn, external_id="m1") or 0)
        for k in range(BOUNCES):
            at = T0 + 2 * DAY + k * 1000
            conn.execute(
                stage_history.insert().values(
                    lead_id=m1, from_stage="mql" if k % 2 == 0 else "nurture", to_stage="nurture" if k % 2 == 0 else "mql",
                    at_ms=at, transition="bounce", cause="score", cause_ref=f"b{k}", recorded_ms=at,
                )
            )  # fmt: skip
        enqueue(
            conn,
            [{"key": f"b{k}", "channel": "webhook", "action": "bounce", "lead_id": m1, "target": "X",
              "payload": {}} for k in range(BOUNCES)],
            T0 + 2 * DAY,
        )  # fmt: skip
        moves = [str(h["cause_ref"]) for h in read_stage_history(conn, m1)]
        sends = [str(o["key"]) for o in read_outbox(conn, m1)]
    assert moves[-BOUNCES:] == [f"b{k}" for k in range(BOUNCES)]
    assert sends[-BOUNCES:] == [f"b{k}" for k in range(BOUNCES)]
    return moves, sends


def test_a_leads_stage_moves_and_notifications_a_page_at_a_time(store: Store, client: httpx.Client) -> None:
    moves, sends = _bounced(store)
    # not asked: 100 of each, the newest; here every row, oldest first, as the lists were before pages
    whole = client.get(STAGE).json()
    assert whole["stage"] == "mql"  # b11 moved it back
    assert [h["cause_ref"] for h in whole["history"]] == moves
    assert [o["key"] for o in whole["notifications"]] == sends
    assert whole["history_paging"] == {"total": len(moves), "limit": 100, "offset": 0, "next_offset": None}
    assert whole["notifications_paging"] == {
        "total": len(sends),
        "limit": 100,
        "offset": 0,
        "next_offset": None,
    }
    # 5 moves and 4 notifications a page: the newest first, each page oldest first
    first = client.get(STAGE, params={"history_limit": 5, "notifications_limit": 4}).json()
    assert [h["cause_ref"] for h in first["history"]] == ["b7", "b8", "b9", "b10", "b11"]
    assert [o["key"] for o in first["notifications"]] == ["b8", "b9", "b10", "b11"]
    assert first["history_paging"] == {"total": len(moves), "limit": 5, "offset": 0, "next_offset": 5}
    assert first["notifications_paging"] == {"total": len(sends), "limit": 4, "offset": 0, "next_offset": 4}
    second = client.get(STAGE, params={"history_limit": 5, "history_offset": 5}).json()
    assert [h["cause_ref"] for h in second["history"]] == ["b2", "b3", "b4", "b5", "b6"]
    assert second["history_paging"]["next_offset"] == 10
    for lst, key, rows in (("history", "cause_ref", moves), ("notifications", "key", sends)):
        for limit in (1, 2, 5, len(rows), 100):
            walked: list[str] = []
            offset: int | None = 0
            pages = 0
            while offset is not None:
                body = client.get(STAGE, params={f"{lst}_limit": limit, f"{lst}_offset": offset}).json()
                assert body[f"{lst}_paging"]["total"] == len(rows)
                walked = [r[key] for r in body[lst]] + walked
                offset = body[f"{lst}_paging"]["next_offset"]
                pages += 1
            assert walked == rows, (lst, limit)
            assert pages == -(-len(rows) // limit)
    past = client.get(STAGE, params={"history_offset": len(moves)}).json()
    assert (past["history"], past["history_paging"]["next_offset"]) == ([], None)


def test_a_short_page_is_the_last_whatever_the_count_says() -> None:
    """The count and the page are two statements: a lead that leaves the list between them (or a count that
    reads one more row than the page's query) left ``next_offset`` pointing past the rows: 40 rows of a page
    of 100 from 100, "total 150", said 140, and the empty page at 140 said 140 again, so a client following
    ``next_offset`` asked for it forever. A page shorter than its limit is the last: null."""
    assert page_at(40, 150, 100, 100)["next_offset"] is None
    assert page_at(0, 150, 100, 140)["next_offset"] is None
    assert page_at(100, 150, 100, 0)["next_offset"] == 100  # a full page: the count says where it goes on
    assert page_at(100, 100, 100, 0)["next_offset"] is None
