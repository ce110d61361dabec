"""RudderStack's JavaScript SDK v3, @rudderstack/analytics-js (its bundled build, vendored in
tests/browser/vendor/), in real headless Chromium with leadscore as its data plane and its configUrl: it
loads its source configuration from leadscore, then the page, identify and track calls of an anonymous
visitor who identifies herself arrive as JSON across origins (CORS preflights allowing its AnonymousId
and SentAt headers), are stored, and move her score. No request leaves 127.0.0.1 (any other fails and
fails the test). Skipped only when Chromium cannot run here (``tests/browser_support.py``).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import Browser

from browser_support import PAGES, browsing, launched_chromium, page_file, script_file, wait_until, website
from leadscore.api import create_app
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import waiting_events
from leadscore.store.keys import create_key
from leadscore.store.results import read_crossings
from live_server import serving
from test_browser_analytics import MODEL, Site, _lead, _score, _stored

RUDDER_BUNDLE = "rudderstack-analytics-js-3.34.1.bundled.umd.js"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.fixture
def site(store: Store) -> Iterator[Site]:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "website", 0)
    files = {
        "/pricing": page_file("rudderstack.html"),
        f"/vendor/{RUDDER_BUNDLE}": script_file(PAGES / "vendor" / RUDDER_BUNDLE),
    }
    with website(files) as port:
        settings = Settings(
            database_url="unused", processor_idle_s=0.05, cors_origins=[f"http://127.0.0.1:{port}"]
        )
        with serving(create_app(settings, store=store)) as api:
            yield Site(port, api, write, store)


def test_rudderstack_sdk_in_chromium_moves_the_score(chromium: Browser, site: Site) -> None:
    store = site.store
    with browsing(chromium) as (page, traffic):
        page.goto(f"{site.origin}/pricing")
        anonymous_id = page.evaluate("([k, u]) => loadRudder(k, u)", [site.write_key, site.api])
        assert anonymous_id

        # an anonymous visitor views the pricing page: stored, but no lead to score yet
        page.evaluate("() => rudder.page()")
        wait_until(lambda: any(e["type"] == "page" for e in _stored(store)))
        assert _score(store, "ada@example.com") is None

        # she identifies herself: her earlier anonymous page view now counts for her (30 points)
        page.evaluate("() => rudder.identify('ada', {email: 'ada@example.com', firstName: 'Ada'})")
        assert wait_until(lambda: _score(store, "ada@example.com") == 30)

        # she requests a demo: 30 + 50 = 80, band hot
        page.evaluate("() => rudder.track('Demo Requested', {plan: 'team'})")
        assert wait_until(lambda: _score(store, "ada@example.com") == 80)
        assert not traffic.errors and not traffic.failed, (traffic.errors, traffic.failed)
        assert traffic.outside == []
        sent = traffic.sent()

    stored = _stored(store)
    assert [e["type"] for e in stored] == ["page", "identify", "track"]
    page_view, identify, track = stored
    assert page_view["path"] == "/pricing" and page_view["user_id"] is None
    assert page_view["anonymous_id"] == identify["anonymous_id"] == track["anonymous_id"] == anonymous_id
    assert page_view["url"] == f"{site.origin}/pricing"
    assert identify["user_id"] == track["user_id"] == "ada"
    assert track["name"] == "Demo Requested" and track["properties"] == {"plan": "team"}

    lead_id = _lead(store, "ada@example.com")
    with store.connect() as conn:
        assert waiting_events(conn) == 0
        bands = [c["to_value"] for c in read_crossings(conn, lead_id) if c["kind"] == "band"]
    assert bands == ["warm", "hot"]

    # the source configuration first (its write key in the query and as Basic user), then one JSON
    # request per event, each with the headers the CORS preflight had to allow
    api = urlsplit(site.api).netloc
    to_api = [(m, urlsplit(url), headers) for m, url, headers in sent if urlsplit(url).netloc == api]
    method, config_url, config_headers = to_api[0]
    assert (method, config_url.path) == ("GET", "/sourceConfig/")
    assert parse_qs(config_url.query)["writeKey"] == [site.write_key]
    basic = "Basic " + base64.b64encode(f"{site.write_key}:".encode()).decode()
    assert config_headers["authorization"] == basic
    posts = to_api[1:]
    assert [(m, url.path) for m, url, _ in posts] == [
        ("POST", "/v1/page"),
        ("POST", "/v1/identify"),
        ("POST", "/v1/track"),
    ]
    for _, _, headers in posts:
        assert headers["content-type"] == "application/json;charset=UTF-8"
        assert headers["origin"] == site.origin and headers["authorization"] == basic
        assert base64.b64decode(headers["anonymousid"]).decode() == anonymous_id
        assert headers["sentat"]


def test_source_config_answers_only_write_keys(site: Site) -> None:
    with site.store.begin() as conn:
        _, read = create_key(conn, "read", "crm", 0)
    with httpx.Client(base_url=site.api) as client:
        unknown = client.get("/sourceConfig/", params={"writeKey": "lsw_unknown"})
        missing = client.get("/sourceConfig/")
        reading = client.get("/sourceConfig/", params={"writeKey": read})
        answer = client.get("/sourceConfig", params={"writeKey": site.write_key})
    assert (unknown.status_code, unknown.json()["code"]) == (401, "unauthorized")
    assert (missing.status_code, reading.status_code) == (401, 401)
    assert answer.status_code == 200
    source = answer.json()["source"]
    # what the SDK requires before it starts, and nothing it would load or report elsewhere
    assert source["enabled"] is True and source["id"] and source["destinations"] == []
    assert source["config"] == {
        "statsCollection": {"errors": {"enabled": False}, "metrics": {"enabled": False}}
    }
