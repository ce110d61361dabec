"""One explanation everywhere: the dashboard's lead page, ``leadscore explain --format json`` and
``GET /v1/leads/{ref}/explanation`` list the same events behind the same lines with the same numbers
(all three call ``scoring.explain``), and those numbers are the hand-computed shares."""

from __future__ import annotations

import json
import re
from html import unescape

import httpx
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.reasons import rule_names, top_reasons
from leadscore.model import ScoringModel, loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.people import find_lead
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

MODEL = """
model: surfaces
groups:
  - {id: web, name: Website, cap: 10}
engagement:
  - {id: pricing, name: Pricing, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 8, group: web}
  - {id: blog, name: Blog, event: {type: page}, where: {property: path, prefix: /blog}, points: 5, cap: 12, group: web}
  - {id: active, name: Active reader, kind: threshold, event: {type: track, name: Email Opened}, at_least: 2, within: 7d, points: 6}
"""
AS_OF = "2024-06-01T00:00:00Z"
PAGES = [("p1", "05-01", "/pricing"), ("p2", "05-05", "/pricing"), ("p3", "05-10", "/pricing/x")]
PAGES += [(f"b{i}", f"05-1{i}", f"/blog/{i}") for i in range(1, 5)]
OPENS = [("e1", "05-28"), ("e2", "05-30")]
# Default scale: 1 raw engagement point = 0.5 score points.
# pricing (once, 8 raw = 4): p3 carries it. blog 4 x 5 = 20, capped 12 (6): 1.5 each.
# group web: 8 + 12 = 20, cap 10, factor 0.5: line -5; p3 -2, each blog visit -0.75.
# active: 2 opens within 7 days, met: 6 raw = 3, 1.5 each. Score 4 + 6 - 5 + 3 = 8.
EXPECTED = sorted(
    [
        ("pricing", "pricing", "p1", 0.0),
        ("pricing", "pricing", "p2", 0.0),
        ("pricing", "pricing", "p3", 4.0),
        *(("blog", "blog", f"b{i}", 1.5) for i in range(1, 5)),
        ("group:web", "pricing", "p3", -2.0),
        *(("group:web", "blog", f"b{i}", -0.75) for i in range(1, 5)),
        ("active", "active", "e1", 1.5),
        ("active", "active", "e2", 1.5),
    ]
)


def _messages() -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for message_id, day, path in PAGES:
        ts = f"2024-{day}T00:00:00Z"
        out.append(
            {
                "type": "page",
                "userId": "ann",
                "messageId": message_id,
                "timestamp": ts,
                "properties": {"path": path},
            }
        )
    for message_id, day in OPENS:
        ts = f"2024-{day}T00:00:00Z"
        out.append(
            {
                "type": "track",
                "event": "Email Opened",
                "userId": "ann",
                "messageId": message_id,
                "timestamp": ts,
            }
        )
    return out


def _shares(explanation: dict[str, object]) -> list[tuple[str, str, str, float]]:
    lines = explanation["lines"]
    assert isinstance(lines, list)
    return sorted(
        (line["rule_id"], e["rule_id"], e["message_id"], e["score_points"])
        for line in lines
        for e in line["events"]
    )


def _api_and_page(
    store: Store, model: ScoringModel, messages: list[dict[str, object]], user: str
) -> tuple[httpx.Response, httpx.Response]:
    """``model`` published and ``messages`` ingested as of ``AS_OF``; the user's explanation from the API (a
    read token) and her lead page (a marketer signed in)."""
    as_of = parse_time(AS_OF, "as_of")
    publish(store, model, as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in messages], source="test", as_of=as_of)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        _, token = create_key(conn, "read", "reader", 0)
        lead_id = find_lead(conn, external_id=user)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        answer = httpx.get(f"{url}/v1/leads/{user}/explanation", headers={"Authorization": f"Bearer {token}"})
        with signed_in(url, "marketing@example.test") as client:
            page = client.get(f"/leads/{lead_id}")
    return answer, page


def test_lead_page_cli_and_api_show_the_same_events(store: Store) -> None:
    answer, page = _api_and_page(store, loads_model(MODEL, "surfaces.yaml"), _messages(), "ann")
    assert answer.status_code == 200, answer.text
    assert page.status_code == 200
    api = answer.json()["explanation"]
    result = CliRunner().invoke(
        cli, ["explain", "ann", "--db", str(store.url), "--as-of", AS_OF, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    from_cli = json.loads(result.output)
    items = re.findall(
        r'<li data-line="([^"]+)" data-rule="([^"]+)" data-event="([^"]+)" data-points="([^"]+)">', page.text
    )
    from_page = sorted((unescape(a), unescape(b), unescape(c), float(d)) for a, b, c, d in items)

    assert api["score"] == from_cli["score"] == 8.0
    assert _shares(api) == _shares(from_cli) == from_page == EXPECTED
    assert api["events"] == from_cli["events"]
    # each event's net contribution: the pricing page 4 - 2, a blog visit 1.5 - 0.75, an open 1.5
    net = {e["message_id"]: e["score_points"] for e in api["events"]}
    assert net == {
        "p1": 0,
        "p2": 0,
        "p3": 2,
        "b1": 0.75,
        "b2": 0.75,
        "b3": 0.75,
        "b4": 0.75,
        "e1": 1.5,
        "e2": 1.5,
    }


def test_cli_score_gives_the_top_reasons_the_desk_and_webhooks_give(store: Store) -> None:
    """``leadscore score``'s top reasons are ``lifecycle.reasons.top_reasons`` (the desk's, the webhooks',
    the notifications'): the largest lines by points of either sign. Before, the CLI listed the largest
    positive lines only, so the group cap's -5 line that the desk shows second was missing from it."""
    as_of = parse_time(AS_OF, "as_of")
    model = loads_model(MODEL, "surfaces.yaml")
    publish(store, model, as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in _messages()], source="test", as_of=as_of)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id="ann")
        assert lead_id is not None
        desk = top_reasons(conn, rule_names(model), lead_id)
    result = CliRunner().invoke(cli, ["score", "--db", str(store.url), "--as-of", AS_OF, "--format", "json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)

    # the lines (see above): blog 6, group cap -5, pricing 4, active 3; the three largest by size
    assert [(r["name"], r["points"]) for r in desk] == [
        ("Blog", 6.0),
        ("Group cap: Website", -5.0),
        ("Pricing", 4.0),
    ]
    assert row["top_reasons"] == "Blog +6.0, Group cap: Website -5.0, Pricing +4.0"


def _flood(views: int = 250) -> list[dict[str, object]]:
    """``views`` blog page views of the user "bot", a minute apart from 20 May 2024 (m000 the oldest)."""
    start = parse_time("2024-05-20T00:00:00Z", "start")
    return [
        {"type": "page", "userId": "bot", "messageId": f"m{i:03d}", "timestamp": start + i * 60_000,
         "properties": {"path": f"/blog/{i}"}}
        for i in range(views)
    ]  # fmt: skip


FLOOD_MODEL = """
model: flood
engagement:
  - {id: blog, name: Blog, event: {type: page}, where: {property: path, prefix: /blog}, points: 1, cap: 40}
"""


def test_a_flooded_line_lists_its_newest_events_and_adds_up_with_the_rest(store: Store) -> None:
    """A write key can send any number of page views for one person: her explanation lists each rule's
    newest 100 events (the lead page 25) and counts the rest, whose points make the line add up. Before,
    every event was listed: 50,000 page views made 9 MB of JSON and 4 CPU-s for one explanation."""
    pages = _flood()
    answer, page = _api_and_page(store, loads_model(FLOOD_MODEL, "flood.yaml"), pages, "bot")
    assert answer.status_code == 200, answer.text
    # 250 visits x 1 raw point, capped at 40 raw = 20 score points (1 raw = 0.5): 0.08 a visit
    [line] = answer.json()["explanation"]["lines"]
    assert line["score_points"] == 20.0 and line["matched"] == 250
    assert [e["message_id"] for e in line["events"]] == [f"m{i:03d}" for i in range(249, 149, -1)]
    assert all(abs(e["score_points"] - 0.08) < 1e-9 for e in line["events"])
    assert line["events_omitted"] == 150 and abs(line["omitted_points"] - 12.0) < 1e-9
    assert answer.json()["explanation"]["events_per_line"] == 100

    result = CliRunner().invoke(
        cli, ["explain", "bot", "--db", str(store.url), "--as-of", AS_OF, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    [cli_line] = json.loads(result.output)["lines"]
    assert (cli_line["events_omitted"], len(cli_line["events"])) == (150, 100)
    table = CliRunner().invoke(cli, ["explain", "bot", "--db", str(store.url), "--as-of", AS_OF, "--events"])
    assert table.exit_code == 0, table.output
    # the table's events: the 100 listed at +0.08, then one row for the 150 older (12.00 of the line)
    assert table.output.count("+0.08") == 100 and re.search(
        r"150 older events\s*│[^│]*│\s*\+12\.00", table.output
    )

    listed = re.findall(
        r'<li data-line="blog" data-rule="blog" data-event="([^"]+)" data-points="([^"]+)">', page.text
    )
    assert [m for m, _ in listed] == [f"m{i:03d}" for i in range(249, 224, -1)]
    assert "250 events behind this line (newest 25 shown)" in page.text
    # the rest: 225 visits x 0.08 = 18.00, beside 25 x 0.08 = 2.00: the line's 20.00
    [(rest, shown)] = re.findall(
        r'data-rest="225" data-points="([^"]+)"><a href="/leads/\d+/lines/blog\?offset=25">225 older events</a> · ([^<]+)</li>',
        page.text,
    )
    assert abs(float(rest) - 18.0) < 1e-9 and shown == "+18.00"


def _api_pages(
    store: Store, model: ScoringModel, messages: list[dict[str, object]], paths: list[str]
) -> list[httpx.Response]:
    """``model`` published and ``messages`` ingested as of ``AS_OF``; ``paths`` read with a read token."""
    as_of = parse_time(AS_OF, "as_of")
    publish(store, model, as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in messages], source="test", as_of=as_of)
    with store.begin() as conn:
        _, token = create_key(conn, "read", "reader", 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        auth = {"Authorization": f"Bearer {token}"}
        return [httpx.get(f"{url}{path}", headers=auth) for path in paths]


def test_the_events_past_the_newest_100_are_read_page_by_page(store: Store) -> None:
    """``GET /v1/leads/{ref}/explanation/lines/{rule}/events`` pages through every counted event of one
    rule, newest first, each with the share the explanation gives it (computed over all of them), so the
    pages add up to the line; past the last page, none and the same total."""
    pages = _flood()
    base = "/v1/leads/bot/explanation/lines/blog/events"
    first, second, last, past, default = _api_pages(
        store,
        loads_model(FLOOD_MODEL, "flood.yaml"),
        pages,
        [f"{base}?limit=100", f"{base}?offset=100&limit=100", f"{base}?offset=200&limit=100",
         f"{base}?offset=1000", base],
    )  # fmt: skip
    for answer in (first, second, last, past, default):
        assert answer.status_code == 200, answer.text
    body = [a.json() for a in (first, second, last)]
    assert [b["total"] for b in body] == [250, 250, 250]
    assert [b["next_offset"] for b in body] == [100, 200, None]
    assert [e["message_id"] for e in body[1]["events"]] == [f"m{i:03d}" for i in range(149, 49, -1)]
    assert [e["message_id"] for e in body[2]["events"]] == [f"m{i:03d}" for i in range(49, -1, -1)]
    # 250 visits, capped at 40 raw = 20 score points: 0.08 each, on every page; all pages add up to 20
    every = [e for b in body for e in b["events"]]
    assert len({e["message_id"] for e in every}) == 250
    assert all(abs(e["score_points"] - 0.08) < 1e-9 for e in every)
    assert abs(sum(e["score_points"] for e in every) - body[0]["line"]["score_points"]) < 1e-9
    assert body[0]["line"]["score_points"] == 20.0
    assert past.json()["events"] == [] and past.json()["total"] == 250 and past.json()["next_offset"] is None
    assert default.json()["events"] == body[0]["events"] and default.json()["limit"] == 100


def test_a_page_of_one_rules_events_carries_their_shares_of_every_line(store: Store) -> None:
    """The pages of the surfaces model (hand-computed above): the blog visits after the newest, two at a
    time (1.5 each on the blog line, -0.75 each on the group cap line: 0.75 net), the pricing visits after
    the one that carries the rule (0 each); bad paths and numbers answered with what is wrong."""
    base = "/v1/leads/ann/explanation/lines"
    answers = _api_pages(
        store,
        loads_model(MODEL, "surfaces.yaml"),
        _messages(),
        [f"{base}/blog/events?offset=1&limit=2", f"{base}/pricing/events?offset=1", f"{base}/nope/events",
         f"{base}/blog/events?offset=-1", f"{base}/blog/events?limit=0", f"{base}/blog/events?limit=1001",
         f"{base}/blog/events?offset={2**63}", f"{base}/Bad-Id/events", "/v1/leads/nobody/explanation/lines/blog/events",
         f"{base}/blog/events?offset={2**31 - 1}&limit=1000"],
    )  # fmt: skip
    blog, pricing, unknown, *bad, nobody, far = answers
    assert far.status_code == 200, far.text  # the largest offset and page: no 32-bit overflow in SQL
    assert far.json()["events"] == [] and far.json()["total"] == 4
    assert blog.status_code == 200, blog.text
    assert [
        (e["message_id"], e["points"], e["group_cap"], e["score_points"]) for e in blog.json()["events"]
    ] == [
        ("b3", 1.5, -0.75, 0.75),
        ("b2", 1.5, -0.75, 0.75),
    ]
    assert blog.json()["total"] == 4 and blog.json()["next_offset"] == 3
    assert blog.json()["line"]["rule_id"] == "blog" and blog.json()["line"]["score_points"] == 6.0
    assert [(e["message_id"], e["score_points"]) for e in pricing.json()["events"]] == [("p2", 0), ("p1", 0)]
    assert pricing.json()["total"] == 3 and pricing.json()["next_offset"] is None
    assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"]
    assert [a.status_code for a in bad] == [422, 422, 422, 422, 422]
    assert nobody.status_code == 404


def test_cli_explain_line_pages_as_the_api_does(store: Store) -> None:
    """``leadscore explain --line RULE --offset N --limit N``: the same page as the API's (the blog visits
    after the newest, two at a time: 1.5 on the line, -0.75 of group cap, 0.75 net each)."""
    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(MODEL, "surfaces.yaml"), as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in _messages()], source="test", as_of=as_of)
    base = ["explain", "ann", "--db", str(store.url), "--as-of", AS_OF, "--line", "blog"]
    result = CliRunner().invoke(cli, [*base, "--offset", "1", "--limit", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    page = json.loads(result.output)
    assert [(e["message_id"], e["points"], e["score_points"]) for e in page["events"]] == [
        ("b3", 1.5, 0.75),
        ("b2", 1.5, 0.75),
    ]
    assert page["total"] == 4 and page["next_offset"] == 3
    table = CliRunner().invoke(cli, [*base, "--offset", "1", "--limit", "2"], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "from 4 events; 2–3 newest first" in table.output and "more: --offset 3" in table.output
    alone = CliRunner().invoke(cli, [*base[:-2], "--offset", "5"], env={"COLUMNS": "250"})
    assert alone.exit_code == 2 and "give --line RULE too" in alone.output
    unknown = CliRunner().invoke(cli, [*base[:-1], "nope"])
    assert unknown.exit_code != 0 and "no engagement rule 'nope' (its rules: pricing, blog, active)" in str(
        unknown.exception
    )


TIES = """
model: ties
fit:
  - {id: c, name: Gamma, when: {attribute: job_title, contains: data}, points: 0.6666666666666666}
  - {id: b, name: Beta, when: {attribute: job_title, contains: data}, points: 0.6666666666666666}
  - {id: a, name: Alpha, when: {attribute: job_title, contains: data}, points: 0.6666666666666666}
"""


def test_the_lead_page_and_the_cli_round_tied_lines_alike(store: Store) -> None:
    """Three lines of a third of a point each under a score of 1.00 show as 0.34 + 0.33 + 0.33: the one
    that shows 0.34 must be the same line on every screen. The lead page lists lines largest first and
    apportioned in that order, the CLI in the model's, so the page gave the extra hundredth to Alpha and
    ``leadscore explain`` to Gamma (the model's first)."""
    identify = {"type": "identify", "userId": "dee", "messageId": "i1", "timestamp": "2024-05-01T00:00:00Z",
                "traits": {"title": "Data Analyst"}}  # fmt: skip
    answer, page = _api_and_page(store, loads_model(TIES, "ties.yaml"), [identify], "dee")
    assert answer.status_code == 200 and page.status_code == 200
    assert answer.json()["explanation"]["score"] == 1.0
    on_page = {
        rule: float(points)
        for rule, points in re.findall(
            r'<span class="muted">\((\w)\)</span>.*?<td class="num"><strong>([+−-][\d.]+)</strong>',
            page.text.replace("−", "-"),
            flags=re.S,
        )
    }
    result = CliRunner().invoke(
        cli, ["explain", "dee", "--db", str(store.url), "--as-of", AS_OF], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    in_cli = {
        rule: float(points) for rule, points in re.findall(r"\((\w)\)\s.*?([+-]\d+\.\d\d)\s", result.output)
    }
    # the model's order decides the tie: Gamma (c) first
    assert in_cli == on_page == {"c": 0.34, "b": 0.33, "a": 0.33}


def _shown(text: str) -> float:
    return float(text.replace("−", "-").replace("+", ""))


def test_the_lead_page_links_a_flooded_line_to_pages_of_all_its_events(store: Store) -> None:
    """The lead page lists a line's newest 25 events and links its older ones to a page of their own,
    100 at a time, newest first; each page adds up to the line as the lead page shows it (20.00: the
    page's visits 0.08 each, the line's other visits as one row)."""
    pages = _flood()
    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(FLOOD_MODEL, "flood.yaml"), as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in pages], source="test", as_of=as_of)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        lead_id = find_lead(conn, external_id="bot")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        lead_page = client.get(f"/leads/{lead_id}")
        link = re.search(r'<a href="(/leads/\d+/lines/blog\?offset=25)">225 older events</a>', lead_page.text)
        assert link is not None, lead_page.text
        first = client.get(link.group(1))
        older = re.search(r'<a rel="next" href="([^"]+)">', first.text)
        assert older is not None
        second = client.get(unescape(older.group(1)))
        last = client.get(f"/leads/{lead_id}/lines/blog?offset=225")
        unknown = client.get(f"/leads/{lead_id}/lines/nope")
        bad = [client.get(f"/leads/{lead_id}/lines/blog?offset={v}") for v in ("-1", str(2**63), "x")]

    def listed(answer: httpx.Response) -> tuple[list[str], list[float], tuple[int, float] | None]:
        assert answer.status_code == 200, answer.text
        rows = re.findall(
            r'<tr data-event="([^"]+)" data-points="[^"]+"><td>[^<]*</td><td>[^<]*</td><td class="num">([^<]+)</td>',
            answer.text,
        )
        other = re.search(r'<tr data-others="(\d+)".*?<td class="num">([^<]+)</td>', answer.text, flags=re.S)
        rest = (int(other.group(1)), _shown(other.group(2))) if other else None
        return [r[0] for r in rows], [_shown(r[1]) for r in rows], rest

    ids, shown, rest = listed(first)
    assert ids == [f"m{i:03d}" for i in range(224, 124, -1)] and set(shown) == {0.08} and rest == (150, 12.0)
    assert 'data-line-shown="20.0"' in first.text
    assert f'<a rel="prev" href="/leads/{lead_id}/lines/blog?offset=0">' in first.text
    ids, shown, rest = listed(second)
    assert ids == [f"m{i:03d}" for i in range(124, 24, -1)] and rest == (150, 12.0)
    ids, shown, rest = listed(last)
    assert ids == [f"m{i:03d}" for i in range(24, -1, -1)] and rest == (225, 18.0)
    assert 'rel="next"' not in last.text and f'href="/leads/{lead_id}/lines/blog?offset=125"' in last.text
    assert unknown.status_code == 404 and "no engagement rule &#39;nope&#39;" in unknown.text
    assert [b.status_code for b in bad] == [422, 422, 422]


def test_a_rule_no_event_matched_has_an_empty_page(store: Store) -> None:
    """A rule of the model that none of the lead's events matched: its page lists no events, total 0
    (ann has blog visits and email opens only, so ``pricing`` counted none), not a server error."""
    blog_only = [m for m in _messages() if not str(m["messageId"]).startswith("p")]
    [answer] = _api_pages(
        store,
        loads_model(MODEL, "surfaces.yaml"),
        blog_only,
        ["/v1/leads/ann/explanation/lines/pricing/events"],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == [] and answer.json()["total"] == 0
    assert answer.json()["next_offset"] is None
    blog_only_cli(store)


def blog_only_cli(store: Store) -> None:
    """``explain --line`` of a rule no event matched: an empty page (JSON ``line`` null), not a traceback."""
    base = ["explain", "ann", "--db", str(store.url), "--as-of", AS_OF, "--line", "pricing"]
    as_json = CliRunner().invoke(cli, [*base, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.output)["line"] is None and json.loads(as_json.output)["total"] == 0
    table = CliRunner().invoke(cli, base)
    assert table.exit_code == 0, table.output
    assert "pricing: no event has matched this rule" in table.output


def test_cli_tables_print_event_paths_as_text_not_markup(store: Store) -> None:
    """An event's path is anybody's text: ``/blog/[/]x`` (rich's closing tag) and ``/blog/[red]y`` are
    printed as they are by ``explain`` and ``explain --line``, not read as markup (a MarkupError)."""
    hostile = [
        {"type": "page", "userId": "ann", "messageId": m, "timestamp": "2024-05-20T00:00:00Z",
         "properties": {"path": path}}
        for m, path in (("h1", "/blog/[/]x"), ("h2", "/blog/[red]y"))
    ]  # fmt: skip
    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(MODEL, "surfaces.yaml"), as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in hostile], source="test", as_of=as_of)
    base = ["explain", "ann", "--db", str(store.url), "--as-of", AS_OF]
    for args in (base, [*base, "--line", "blog"]):
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "250"})
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert re.search(r"page +/blog/\[/\]x", result.output), result.output
        assert re.search(r"page +/blog/\[red\]y", result.output), result.output
