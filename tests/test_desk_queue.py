"""The hand-off queue as the desk pages it, on both stores: who sees which rows in which order (a
hand-worked case with two teams, two assignment stages, a cooled lead, a rejected lead and an accepted
lead whose new assignment went to another seller), and the rows the store hands over for one page stay
a page's worth however long the queue is.

The model is ``lifecycle_model.MODEL`` with assignment in ``mql`` and ``sql`` (SLA 4 h). Each lead scores
one point per ``Plus`` (Marketing Manager: grade B), enters MQL at 60 and cools below 55. The leads enter
MQL one round each, so the rotations hand them out in turn (EMEA: Lena, Paul, Ines; Nordics: Erik, Sara):

=====  =======  =====  ====================================  ==========================================
lead   country  score  what happens                          in the queue (stage, seller)
=====  =======  =====  ====================================  ==========================================
a      de       90     MQL → Lena                            mql, lena
b      de       80     MQL → Paul; accepted → SQL → Ines     sql, ines (EMEA's 6th assignment: Ines)
c      se       70     MQL → Erik (Nordics)                  mql, erik
d      de       65     MQL → Ines                            mql, ines
e      de       72     MQL → Lena; cools to 50 → lead        not in the queue
f      de       62     MQL → Paul; rejected → recycled       not in the queue
=====  =======  =====  ====================================  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Connection, event, text

from leadscore.lifecycle.feedback import give_feedback
from leadscore.lifecycle.reports import ready_for_handoff
from leadscore.model import ScoringModel, loads_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.web.data.desk import desk
from lifecycle_model import DAY, HOUR, MODEL, T0, person, points, send, settings
from test_lifecycle import round_

TWO_STAGES = MODEL.replace("    stage: mql\n", "    stages: [mql, sql]\n")


def _model() -> ScoringModel:
    return loads_model(TWO_STAGES)


def _ids(store: Store) -> dict[str, int]:
    with store.connect() as conn:
        found = {u: find_lead(conn, external_id=u) for u in "abcdef"}
    return {u: int(i) for u, i in found.items() if i is not None}


@pytest.fixture
def queue(store: Store) -> Store:
    model = _model()
    publish(store, model)
    send(store, [person(u, country="se" if u == "c" else "de") for u in "abcdef"])
    for k, (user, n) in enumerate([("a", 90), ("b", 80), ("c", 70), ("d", 65), ("e", 72), ("f", 62)]):
        at = T0 + DAY + k * HOUR
        send(store, points(user, n, at=at))
        round_(store, at)
    send(store, points("e", -22, at=T0 + DAY + 6 * HOUR))
    round_(store, T0 + DAY + 6 * HOUR)
    ids = _ids(store)
    for user, decision, reason, at in (("f", "rejected", "bad_timing", 7), ("b", "accepted", None, 8)):
        give_feedback(store, model, ids[user], decision, reason=reason, note="", by="paul",
                      at_ms=T0 + DAY + at * HOUR, settings=settings(), now_ms=T0 + DAY + at * HOUR)  # fmt: skip
    return store


def _rows(rows: list[dict[str, Any]], ids: dict[str, int]) -> list[tuple[str, str, str | None]]:
    names = {v: k for k, v in ids.items()}
    return [(names[int(r["lead_id"])], r["stage"], r["seller"]) for r in rows]


def test_the_desk_shows_each_viewer_their_rows_in_order_page_by_page(queue: Store) -> None:
    model = _model()
    lifecycle = model.lifecycle
    assert lifecycle is not None
    ids = _ids(queue)
    a, b, c, d = ("a", "mql", "lena"), ("b", "sql", "ines"), ("c", "mql", "erik"), ("d", "mql", "ines")
    with queue.connect() as conn:
        assert _rows(ready_for_handoff(conn, lifecycle), ids) == [a, b, c, d]
        assert _rows(ready_for_handoff(conn, lifecycle, limit=2, offset=1), ids) == [b, c]

        def seen(email: str, role: str, can_act: bool = True, **kw: Any) -> tuple[Any, ...]:
            found = desk(conn, model, lifecycle, email, role, can_act, **kw)
            return (_rows(found.mine, ids), _rows(found.team, ids), found.mine_total, found.team_total,
                    found.total, found.page, found.pages)  # fmt: skip

        # reps: their own leads only (Paul's two left his desk: f rejected, b's SQL assignment is Ines's)
        assert seen("ines@vendor.example", "rep") == ([b, d], [], 2, 0, 2, 1, 1)
        assert seen("LENA@vendor.example", "rep") == ([a], [], 1, 0, 1, 1, 1)  # e cooled: not hers now
        assert seen("paul@vendor.example", "rep") == ([], [], 0, 0, 0, 1, 1)
        # EMEA's manager: the team's leads, not the Nordics'
        assert seen("tom@vendor.example", "sales") == ([], [a, b, d], 0, 3, 3, 1, 1)
        # an admin who sells: their own first, then everyone's; two a page, a page past the last is the last
        assert seen("lena@vendor.example", "admin", page_size=2) == ([a], [b], 1, 3, 4, 1, 2)
        assert seen("lena@vendor.example", "admin", page=2, page_size=2) == ([], [c, d], 1, 3, 4, 2, 2)
        assert seen("lena@vendor.example", "admin", page=9, page_size=2) == ([], [c, d], 1, 3, 4, 2, 2)
        # a reader who gives no feedback reads the whole queue; Ines's own first
        assert seen("ines@vendor.example", "marketing", can_act=False, page_size=3) == (
            [b, d], [a], 2, 2, 4, 1, 2,
        )  # fmt: skip


def test_the_handoff_api_pages_the_queue(queue: Store) -> None:
    """GET /v1/reports/handoff: ``limit`` rows from ``offset`` of the queue (a, b, c, d by score), with the
    queue's ``total``; a limit over 1,000 or a negative offset is refused."""
    import httpx

    from leadscore.api import create_app
    from leadscore.settings import Settings
    from leadscore.store.keys import create_key
    from live_server import serving

    ids = {v: k for k, v in _ids(queue).items()}
    with queue.begin() as conn:
        _, reader = create_key(conn, "read", "bi", 0)
    api = create_app(Settings(database_url="unused", run_processor=False), store=queue)
    bearer = {"Authorization": f"Bearer {reader}"}
    with serving(api) as url, httpx.Client(base_url=url, timeout=10, headers=bearer) as client:
        whole = client.get("/v1/reports/handoff").json()
        part = client.get("/v1/reports/handoff", params={"limit": 2, "offset": 1}).json()
        past = client.get("/v1/reports/handoff", params={"offset": 4}).json()
        refused = [client.get("/v1/reports/handoff", params=p).status_code
                   for p in ({"limit": 1001}, {"limit": 0}, {"offset": -1})]  # fmt: skip
    assert [ids[r["lead_id"]] for r in whole["leads"]] == ["a", "b", "c", "d"]
    assert [(ids[r["lead_id"]], r["seller"]) for r in part["leads"]] == [("b", "ines"), ("c", "erik")]
    assert (whole["total"], part["total"], past["leads"], past["total"]) == (4, 4, [], 4)
    assert refused == [422, 422, 422]


@contextmanager
def _rows_read(conn: Connection) -> Iterator[list[int]]:
    """How many rows each SELECT run on ``conn`` returned (each run again as a count once the block
    ends, with its own parameters): what the code under test read from the store."""
    statements: list[tuple[str, Any]] = []

    def seen(_c: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    counts: list[int] = []
    event.listen(conn, "after_cursor_execute", seen)
    try:
        yield counts
    finally:
        event.remove(conn, "after_cursor_execute", seen)
    for statement, parameters in statements:
        counted = f"SELECT count(*) FROM ({statement}) AS read_rows"
        counts.append(int(conn.exec_driver_sql(counted, parameters).scalar_one()))


def test_a_desk_page_reads_a_page_of_rows_however_long_the_queue(store: Store) -> None:
    """40 leads wait in MQL (EMEA, Lena, Paul and Ines in turn); an admin's page of 2 reads the page's
    rows (their facts and reasons) and two counts, not the 40 leads and their 40 assignments."""
    model = _model()
    lifecycle = model.lifecycle
    assert lifecycle is not None
    publish(store, model)
    users = [f"p{i}" for i in range(40)]
    send(store, [person(u) for u in users])
    send(store, [m for u in users for m in points(u, 60, at=T0 + DAY)])
    round_(store, T0 + DAY)
    with store.connect() as conn:
        assert len(ready_for_handoff(conn, lifecycle)) == 40
        with _rows_read(conn) as counts:
            page = desk(conn, model, lifecycle, "lena@vendor.example", "admin", True, page_size=2)
    assert (page.total, page.mine_total, len(page.mine) + len(page.team)) == (40, 14, 2)
    assert 0 < sum(counts) <= 16, counts  # a page's rows, its facts and reasons (a few lines a lead)
    with store.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM assignments")).scalar_one() == 40


def test_a_handled_assignment_has_no_clock_on_the_desk_or_in_the_digest(store: Store) -> None:
    """Ann enters MQL at day 1 (Lena's, due day 1 + 4 h) and Lena accepts her into SQL at day 1 + 1 h.
    A new version then assigns in SQL too: Ann waits in a hand-off stage with no assignment of this stay,
    her newest being the MQL one Lena handled. At day 2 the desk names Lena but runs no SLA clock (no one
    is late: Lena acted within her SLA, and nothing is escalated), and Lena's digest has no overdue lead."""
    from leadscore.lifecycle.notify import digest_notes

    publish(store, loads_model(MODEL))
    send(store, [person("ann"), *points("ann", 70)])
    round_(store, T0 + DAY)
    with store.connect() as conn:
        ann = int(find_lead(conn, external_id="ann") or 0)
    give_feedback(store, loads_model(MODEL), ann, "accepted", reason=None, note="", by="lena",
                  at_ms=T0 + DAY + HOUR, settings=settings(), now_ms=T0 + DAY + HOUR)  # fmt: skip
    model = _model()
    publish(store, model)
    lifecycle = model.lifecycle
    assert lifecycle is not None
    run = round_(store, T0 + 2 * DAY)
    with store.connect() as conn:
        page = desk(conn, model, lifecycle, "lena@vendor.example", "rep", True)
        notes, _ = digest_notes(conn, model, "lena@vendor.example", settings(), T0 + 2 * DAY)
    assert run.escalated == 0
    assert [(r["lead_id"], r["stage"], r["seller"], r["due_ms"]) for r in page.mine] == [
        (ann, "sql", "lena", None)
    ]
    assert ([n.lead_id for n in notes["overdue"]], [n.lead_id for n in notes["waiting"]]) == ([], [ann])


def test_a_rep_no_longer_rejects_a_lead_whose_hand_off_was_handled(store: Store) -> None:
    """As above: Lena accepted Ann into SQL at day 1 + 1 h, and SQL became a hand-off stage; the model lets
    a lead be rejected from SQL, and Ann's newest assignment, the handled MQL one, is Lena's. Lena's
    decision is made: her desk row and Ann's page offer no reject, and a reject she posts is refused
    (409, saying why) with Ann left in SQL. Tom, EMEA's manager, may still turn Ann down (a later
    disqualification): his desk row offers it and his reject moves her to recycled."""
    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.settings import Settings
    from leadscore.store.users import add_user
    from live_server import serving
    from web_support import PASSWORD, csrf_of, signed_in

    publish(store, loads_model(MODEL))
    send(store, [person("ann"), *points("ann", 70)])
    round_(store, T0 + DAY)
    with store.connect() as conn:
        ann = int(find_lead(conn, external_id="ann") or 0)
    give_feedback(store, loads_model(MODEL), ann, "accepted", reason=None, note="", by="lena",
                  at_ms=T0 + DAY + HOUR, settings=settings(), now_ms=T0 + DAY + HOUR)  # fmt: skip
    model = _model()
    publish(store, model)
    lifecycle = model.lifecycle
    assert lifecycle is not None
    round_(store, T0 + 2 * DAY)
    with store.begin() as conn:
        for email in ("lena@vendor.example", "tom@vendor.example"):
            add_user(conn, email, email.split("@")[0].title(), "sales", hash_password(PASSWORD), 0)
    with store.connect() as conn:
        lenas = desk(conn, model, lifecycle, "lena@vendor.example", "sales", True)
        toms = desk(conn, model, lifecycle, "tom@vendor.example", "sales", True)
    assert [(r["lead_id"], r["stage"], r["can_accept"], r["can_reject"]) for r in lenas.mine] == [
        (ann, "sql", False, False)
    ]
    assert [(r["lead_id"], r["can_reject"]) for r in toms.team] == [(ann, True)]

    def stage() -> str:
        with store.connect() as conn:
            return str(
                conn.execute(text(f"SELECT stage FROM lead_stages WHERE lead_id = {ann}")).scalar_one()
            )

    app = create_app(Settings(database_url="unused", run_processor=False), store=store)
    rejection = {"decision": "rejected", "reason": "no_budget"}
    with serving(app) as url:
        with signed_in(url, "lena@vendor.example") as client:
            page = client.get(f"/leads/{ann}")
            assert 'value="rejected"' not in page.text and "Not yours to reject any more" in page.text
            refused = client.post(f"/leads/{ann}/feedback", data={**rejection, "csrf_token": csrf_of(client)})
            assert refused.status_code == 409
            assert "already handled on 2024-05-02 01:00 UTC" in refused.text
        assert stage() == "sql"
        with signed_in(url, "tom@vendor.example") as client:
            done = client.post(f"/leads/{ann}/feedback", data={**rejection, "csrf_token": csrf_of(client)})
            assert done.status_code == 303
    assert stage() == "recycled"


def _form(page: str, lead_id: int, decision: str) -> dict[str, str]:
    """The fields of the page's form that posts ``decision`` on the lead, as a browser submits them (its
    hidden and named inputs, the button's decision)."""
    import html
    import re

    action = f'action="/leads/{lead_id}/feedback"'
    for form in re.findall(r"<form[^>]*>.*?</form>", page, flags=re.S):
        if action in form and f'value="{decision}"' in form:
            fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form))
            return {**{k: html.unescape(v) for k, v in fields.items()}, "decision": decision}
    raise AssertionError(f"no {decision} form for lead {lead_id}")


def test_a_decision_posted_from_a_stale_page_does_not_undo_a_newer_one(store: Store) -> None:
    """Two people act on one lead at once: Ann enters MQL and goes to Lena. Tom, EMEA's manager, opens his
    desk and Ann's page (Ann in MQL, Accept and Reject offered); meanwhile Lena accepts Ann into SQL. Tom's
    reject, posted from either page he loaded before, must not send Ann from SQL to recycled behind Lena's
    back (the model does let a manager reject from SQL, which is why it went through): it is refused, 409,
    saying that she moved; Ann stays in SQL with Lena's acceptance the only feedback. Reloaded, his desk no
    longer lists her as in MQL, and Ann's page, loaded now, offers a reject that does go through."""
    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.settings import Settings
    from leadscore.store.users import add_user
    from live_server import serving
    from web_support import PASSWORD, signed_in

    publish(store, loads_model(MODEL))
    send(store, [person("ann"), *points("ann", 70)])
    round_(store, T0 + DAY)
    with store.connect() as conn:
        ann = int(find_lead(conn, external_id="ann") or 0)
    with store.begin() as conn:
        for email in ("lena@vendor.example", "tom@vendor.example"):
            add_user(conn, email, email.split("@")[0].title(), "sales", hash_password(PASSWORD), 0)

    def state() -> tuple[str, list[str]]:
        with store.connect() as conn:
            stage = conn.execute(text(f"SELECT stage FROM lead_stages WHERE lead_id = {ann}")).scalar_one()
            said = conn.execute(text(f"SELECT decision FROM feedback WHERE lead_id = {ann} ORDER BY id"))
            return str(stage), [str(d) for (d,) in said]

    app = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(app) as url, signed_in(url, "tom@vendor.example") as tom:
        stale = [tom.get("/handoff").text, tom.get(f"/leads/{ann}").text]
        forms = [{**_form(p, ann, "rejected"), "reason": "no_budget"} for p in stale]
        with signed_in(url, "lena@vendor.example") as lena:
            accepted = lena.post(
                f"/leads/{ann}/feedback", data=_form(lena.get(f"/leads/{ann}").text, ann, "accepted")
            )
            assert accepted.status_code == 303
        assert state() == ("sql", ["accepted"])
        for form in forms:
            refused = tom.post(f"/leads/{ann}/feedback", data=form)
            assert refused.status_code == 409, refused.text
            assert "moved since this page was loaded" in refused.text
            assert state() == ("sql", ["accepted"])
        fresh = _form(tom.get(f"/leads/{ann}").text, ann, "rejected")
        done = tom.post(f"/leads/{ann}/feedback", data={**fresh, "reason": "no_budget"})
        assert done.status_code == 303
    assert state() == ("recycled", ["accepted", "rejected"])


def test_a_lead_with_no_name_and_no_email_is_named_on_the_desk(store: Store) -> None:
    """A visitor known by a user id only (no name, no e-mail: an identify of a title and a country) scores
    70 and reaches MQL. The desk's row links to her page by the name the leads list and her page give such
    a lead, "Lead <id>": it was an empty link (nothing to read or click, and a row header of nothing)."""
    import re

    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.settings import Settings
    from leadscore.store.users import add_user
    from live_server import serving
    from web_support import PASSWORD, signed_in

    publish(store, loads_model(MODEL))
    nameless = {"type": "identify", "userId": "v-1", "messageId": "id-v-1", "timestamp": T0,
                "traits": {"title": "Marketing Manager", "country": "de"}}  # fmt: skip
    send(store, [nameless, *points("v-1", 70)])
    round_(store, T0 + DAY)
    with store.connect() as conn:
        lead_id = int(find_lead(conn, external_id="v-1") or 0)
        assert conn.execute(text(f"SELECT email, first_name, last_name FROM leads WHERE id = {lead_id}")).one() == (
            None, None, None,
        )  # fmt: skip
    with store.begin() as conn:
        add_user(conn, "tom@vendor.example", "Tom", "sales", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(app) as url, signed_in(url, "tom@vendor.example") as tom:
        desk_page = tom.get("/handoff").text
        listed = tom.get("/leads").text
    links = {
        re.sub(r"\s+", " ", t).strip()
        for t in re.findall(rf'<a href="/leads/{lead_id}">(.*?)</a>', desk_page, re.S)
    }
    assert links == {f"Lead {lead_id}"}
    assert f'<a href="/leads/{lead_id}">Lead {lead_id}</a>' in listed


def test_a_decision_whose_page_fields_are_hostile_is_refused_and_moves_nothing(store: Store) -> None:
    """The stay a page sends (``stage``, ``since``) is anybody's text: a ``since`` past 64 bits, negative or
    not a number, or a stage of 64 characters is refused (422) before any lead is read; a stage with a NUL
    is no stay she is in (409); Ann stays in MQL without feedback, and the page's own fields still decide
    (303)."""
    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.settings import Settings
    from leadscore.store.users import add_user
    from live_server import serving
    from web_support import PASSWORD, signed_in

    publish(store, loads_model(MODEL))
    send(store, [person("ann"), *points("ann", 70)])
    round_(store, T0 + DAY)
    with store.connect() as conn:
        ann = int(find_lead(conn, external_id="ann") or 0)
    with store.begin() as conn:
        add_user(conn, "lena@vendor.example", "Lena", "sales", hash_password(PASSWORD), 0)

    def state() -> tuple[str, int]:
        with store.connect() as conn:
            stage = conn.execute(text(f"SELECT stage FROM lead_stages WHERE lead_id = {ann}")).scalar_one()
            said = conn.execute(text(f"SELECT count(*) FROM feedback WHERE lead_id = {ann}")).scalar_one()
            return str(stage), int(said)

    app = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(app) as url, signed_in(url, "lena@vendor.example") as lena:
        form = _form(lena.get(f"/leads/{ann}").text, ann, "accepted")
        assert form["stage"] == "mql"
        for hostile in (
            {"since": str(2**63)}, {"since": str(2**64 + 1)}, {"since": "-1"}, {"since": "1e400"},
            {"since": "12\x00"}, {"stage": "m" * 64},
        ):  # fmt: skip
            refused = lena.post(f"/leads/{ann}/feedback", data={**form, **hostile})
            assert refused.status_code in (400, 422), (hostile, refused.status_code, refused.text[:200])
            assert state() == ("mql", 0), hostile
        # a stage with a NUL is a form value, but no stay she is in: the page "moved", nothing is done
        moved = lena.post(f"/leads/{ann}/feedback", data={**form, "stage": "mql\x00"})
        assert moved.status_code == 409 and "moved since this page was loaded" in moved.text
        assert state() == ("mql", 0)
        assert lena.post(f"/leads/{ann}/feedback", data=form).status_code == 303
    assert state() == ("sql", 1)


def test_an_unscored_lead_comes_last_in_the_queue_on_both_stores(queue: Store) -> None:
    """A lead in a hand-off stage without a score of the one read (a view's score it never got; here a,
    the hottest, its score row removed) comes after every scored lead, on SQLite and PostgreSQL alike:
    b, c, d by score, then a (PostgreSQL put a NULL first going down, SQLite last). The desk and the
    manager's digest order by the same ``reports.hottest_first``."""
    model = _model()
    lifecycle = model.lifecycle
    assert lifecycle is not None
    ids = _ids(queue)
    with queue.begin() as conn:
        conn.execute(text("DELETE FROM scores WHERE lead_id = :a"), {"a": ids["a"]})
    a, b, c, d = ("a", "mql", "lena"), ("b", "sql", "ines"), ("c", "mql", "erik"), ("d", "mql", "ines")
    with queue.connect() as conn:
        assert _rows(ready_for_handoff(conn, lifecycle), ids) == [b, c, d, a]
        everyone = desk(conn, model, lifecycle, "ines@vendor.example", "marketing", False)
        assert (_rows(everyone.mine, ids), _rows(everyone.team, ids)) == ([b, d], [c, a])
