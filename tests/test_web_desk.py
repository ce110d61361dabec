"""The seller's desk over real HTTP (uvicorn, SQLite demo, seed 8: the EMEA sellers Lena and Paul own the
leads ready for handoff): a rep sees only their own leads with their top reasons and accepts one with a
confirmation; another rep's lead is refused; the team's manager sees and may act on the team's leads."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from leadscore.auth.passwords import hash_password
from leadscore.lifecycle.reports import ready_for_handoff
from leadscore.scoring.pipeline import active_model
from leadscore.store.results import read_current
from leadscore.store.users import add_user
from leadscore.web.data.desk import desk
from leadscore.web.data.lead import rule_names
from web_support import PASSWORD, SELLER, Site, csrf_of, signed_in, site

MANAGER = "tom.becker@vendor.example"  # manager of the EMEA team in the demo model


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("desk"), leads=60, seed=8) as s:
        with s.store.begin() as conn:
            add_user(conn, MANAGER, "Tom Becker", "sales", hash_password(PASSWORD), 0)
        yield s


def _queue(demo: Site) -> dict[int, str]:
    with demo.store.connect() as conn:
        lifecycle = active_model(conn).model.lifecycle  # type: ignore[union-attr]
        assert lifecycle is not None
        return {int(r["lead_id"]): str(r["seller"]) for r in ready_for_handoff(conn, lifecycle)}


def _rows(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-lead="(\d+)">', html)]


def test_a_rep_sees_only_their_leads_with_reasons_and_accepts_one(demo: Site) -> None:
    queue = _queue(demo)
    lenas = sorted(lead for lead, seller in queue.items() if seller == "lena")
    assert lenas and len(lenas) < len(queue)  # others own leads too
    with signed_in(demo.url, SELLER) as client:
        page = client.get("/handoff")
        assert page.status_code == 200
        assert "My leads" in page.text
        assert sorted(_rows(page.text)) == lenas
        # the reasons of the first lead are its three largest stored ledger lines, largest first
        with demo.store.connect() as conn:
            _, lines = read_current(conn, lenas[0])
            names = rule_names(active_model(conn).model)  # type: ignore[union-attr]
        top = sorted((ln for ln in lines if ln["score_points"]), key=lambda ln: -abs(ln["score_points"]))[:3]
        row = page.text.split(f'<tr data-lead="{lenas[0]}">')[1].split("</tr>")[0]
        shown = [html.unescape(x) for x in re.findall(r"<li>(.+?) <span", row)]
        assert len(top) >= 1
        assert shown == [names[ln["rule_id"]][0] for ln in top]
        token = csrf_of(client)
        done = client.post(
            f"/leads/{lenas[0]}/feedback",
            data={"decision": "accepted", "next": f"/handoff?lead={lenas[0]}", "csrf_token": token},
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/handoff?lead={lenas[0]}&done=accepted"
        after = client.get(done.headers["location"])
        assert f'role="status"><strong>Accepted:</strong> <a href="/leads/{lenas[0]}">' in after.text
        assert lenas[0] not in _rows(after.text)


def test_another_reps_lead_is_refused(demo: Site) -> None:
    pauls = [lead for lead, seller in _queue(demo).items() if seller == "paul"]
    assert pauls
    with signed_in(demo.url, SELLER) as client:
        token = csrf_of(client)
        refused = client.post(
            f"/leads/{pauls[0]}/feedback", data={"decision": "accepted", "csrf_token": token}
        )
        assert refused.status_code == 403
        assert "assigned to another seller" in refused.text
        lead_page = client.get(f"/leads/{pauls[0]}")
        assert 'value="accepted"' not in lead_page.text
    assert _queue(demo)[pauls[0]] == "paul"  # still waiting for Paul


def test_the_manager_sees_and_acts_on_the_team(demo: Site) -> None:
    queue = _queue(demo)
    with signed_in(demo.url, MANAGER) as client:
        page = client.get("/handoff")
        assert "The team&#39;s" in page.text or "The team's" in page.text
        assert sorted(_rows(page.text)) == sorted(queue)  # every queued lead is EMEA's in this demo
        pauls = [lead for lead, seller in queue.items() if seller == "paul"]
        token = csrf_of(client)
        done = client.post(f"/leads/{pauls[-1]}/feedback", data={"decision": "accepted", "csrf_token": token})
        assert done.status_code == 303
    assert pauls[-1] not in _queue(demo)  # accepted by Paul's manager: it left the handoff stage


def test_marketing_reads_the_queue_without_acting(demo: Site) -> None:
    with signed_in(demo.url, "marketing@example.test") as client:
        page = client.get("/handoff")
        assert sorted(_rows(page.text)) == sorted(_queue(demo))
        assert 'value="accepted"' not in page.text


@contextmanager
def _sign_in(url: str, email: str, password: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text)
        assert token
        client.post("/signin", data={"email": email, "password": password, "csrf_token": token.group(1)})
        yield client


def _issued(page: str) -> str:
    found = re.search(r'<code id="issued-password">([^<]+)</code>', page)
    assert found, page
    return html.unescape(found.group(1))


def test_admin_invites_a_user_who_signs_in_then_sets_role_and_resets_password(demo: Site) -> None:
    with signed_in(demo.url, "admin@example.test") as admin:
        token = csrf_of(admin)
        invited = admin.post(
            "/users",
            data={"email": "Nina.Berg@Vendor.Example", "name": "Nina", "role": "sales", "csrf_token": token},
        )
        assert invited.status_code == 201
        first = _issued(invited.text)
        again = admin.post(
            "/users", data={"email": "nina.berg@vendor.example", "role": "sales", "csrf_token": token}
        )
        assert again.status_code == 409
        assert "already exists" in again.text
        with _sign_in(demo.url, "nina.berg@vendor.example", first) as nina:
            assert nina.get("/handoff").status_code == 200
            assert nina.get("/evaluation").status_code == 403  # sales may not evaluate
            user_id = int(re.findall(r'<tr data-user="(\d+)">', admin.get("/users").text)[-1])
            moved = admin.post(f"/users/{user_id}/role", data={"role": "marketing", "csrf_token": token})
            assert moved.status_code == 303
            assert nina.get("/evaluation").status_code == 200  # the role applies at once
        reset = admin.post(f"/users/{user_id}/password", data={"csrf_token": token})
        second = _issued(reset.text)
        assert second != first
    with _sign_in(demo.url, "nina.berg@vendor.example", first) as stale:
        assert stale.get("/leads").status_code == 303  # the old password no longer signs in
    with _sign_in(demo.url, "nina.berg@vendor.example", second) as fresh:
        assert fresh.get("/leads").status_code == 200


def test_an_admin_cannot_demote_themself(demo: Site) -> None:
    with signed_in(demo.url, "admin@example.test") as admin:
        page = admin.get("/users").text
        own = re.search(r'<tr data-user="(\d+)">\s*<th scope="row">admin@example.test', page)
        assert own
        refused = admin.post(
            f"/users/{own.group(1)}/role", data={"role": "sales", "csrf_token": csrf_of(admin)}
        )
        assert refused.status_code == 409
        assert admin.get("/users").status_code == 200  # still an admin


def test_demo_serve_signs_in_a_seller_who_owns_leads(demo: Site) -> None:
    """`leadscore demo --serve` makes its sales user the seller who owns the most waiting leads (so
    "Assigned to me" is not empty) and adds that seller's team manager."""
    from collections import Counter

    from leadscore.cli.demo_cmd import _demo_users

    owned = Counter(_queue(demo).values())
    with demo.store.connect() as conn:
        users = _demo_users(conn)
        lifecycle = active_model(conn).model.lifecycle  # type: ignore[union-attr]
    assert lifecycle is not None
    sales = [email for role, email, _ in users if role == "sales"]
    by_email = {s.email: (t, s) for t in lifecycle.teams for s in t.sellers}
    team, seller = by_email[sales[0]]
    assert owned[seller.id] == max(owned.values()) > 0
    assert team.manager is not None and sales[1] == team.manager.email
    assert {role for role, _, _ in users} == {"admin", "marketing", "sales"}


def test_the_desk_pages_the_viewers_own_leads_first(demo: Site) -> None:
    """A page holds ``page_size`` rows of the viewer's own leads, then the others'; the pages in turn give
    every row of the unpaged desk once, in its order; a page past the last is the last."""
    with demo.store.connect() as conn:
        model = active_model(conn).model  # type: ignore[union-attr]
        lifecycle = model.lifecycle
        assert lifecycle is not None
        # Lena's leads seen with an admin's role: her own (mine) and everyone else's (team)
        whole = desk(conn, model, lifecycle, SELLER, "admin", True, page_size=10_000)
        rows = [int(r["lead_id"]) for r in [*whole.mine, *whole.team]]
        assert whole.mine and whole.team  # an admin who owns leads: both lists
        assert (whole.pages, whole.total) == (1, len(rows))
        pages = -(-len(rows) // 3)
        seen: list[int] = []
        for n in range(1, pages + 1):
            part = desk(conn, model, lifecycle, SELLER, "admin", True, page=n, page_size=3)
            assert (part.page, part.pages, part.total) == (n, pages, len(rows))
            assert len(part.mine) + len(part.team) == (3 if n < pages else len(rows) - 3 * (pages - 1))
            assert (part.mine_total, part.team_total) == (len(whole.mine), len(whole.team))
            seen += [int(r["lead_id"]) for r in [*part.mine, *part.team]]
        assert seen == rows
        first = desk(conn, model, lifecycle, SELLER, "admin", True, page=1, page_size=3)
        assert [int(r["lead_id"]) for r in first.mine] == rows[: min(3, len(whole.mine))]
        last = desk(conn, model, lifecycle, SELLER, "admin", True, page=pages + 5, page_size=3)
        assert last.page == pages
        assert [int(r["lead_id"]) for r in [*last.mine, *last.team]] == rows[3 * (pages - 1) :]
