"""The official browser library, @segment/analytics-next (the copy shipped in web/static/vendor/), in real
headless Chromium, with its settings and API host pointing at leadscore: the page, identify and track
calls of an anonymous visitor who then identifies herself arrive as text/plain bodies across origins
(CORS), are stored, and move her score. No request leaves 127.0.0.1 (any other is blocked and fails
the test). Skipped only when Chromium cannot run here (``tests/browser_support.py``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser
from sqlalchemy import select

import leadscore.web
from browser_support import browsing, launched_chromium, page_file, script_file, wait_until, website
from leadscore.api import create_app
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import waiting_events
from leadscore.store.keys import create_key
from leadscore.store.results import read_crossings, read_current
from leadscore.store.schema import events, leads
from live_server import serving

MODEL = """
model: browser
engagement:
  - id: pricing
    name: Pricing page
    event: {type: page}
    where: {property: path, prefix: /pricing}
    points: 30
  - id: demo
    name: Demo request
    event: {type: track, name: Demo Requested}
    points: 50
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""
BUNDLE = "analytics-next-1.84.3.umd.js"
SHIPPED = Path(leadscore.web.__file__).parent / "static" / "vendor"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@dataclass
class Site:
    page_port: int
    api: str
    write_key: str
    store: Store

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.page_port}"


@pytest.fixture
def site(store: Store) -> Iterator[Site]:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "website", 0)
    files = {
        "/pricing": page_file("pricing.html"),
        f"/vendor/{BUNDLE}": script_file(SHIPPED / BUNDLE),
    }
    with website(files) as port:
        settings = Settings(
            database_url="unused", processor_idle_s=0.05, cors_origins=[f"http://127.0.0.1:{port}"]
        )
        with serving(create_app(settings, store=store)) as api:
            yield Site(port, api, write, store)


def _lead(store: Store, email: str) -> int | None:
    with store.connect() as conn:
        return conn.execute(select(leads.c.id).where(leads.c.email == email)).scalar()


def _score(store: Store, email: str) -> float | None:
    lead_id = _lead(store, email)
    if lead_id is None:
        return None
    with store.connect() as conn:
        current, _ = read_current(conn, lead_id)
    return current["score"] if current else None


def _stored(store: Store) -> list[dict[str, Any]]:
    with store.connect() as conn:
        return [dict(r) for r in conn.execute(select(events).order_by(events.c.id)).mappings()]


@pytest.mark.parametrize("batching", [False, True], ids=["standard", "batching"])
def test_analytics_next_in_chromium_moves_the_score(chromium: Browser, site: Site, batching: bool) -> None:
    store = site.store
    with browsing(chromium) as (page, traffic):
        page.goto(f"{site.origin}/pricing")
        anonymous_id = page.evaluate(
            "([k, u, b]) => loadAnalytics(k, u, b)", [site.write_key, site.api, batching]
        )
        assert anonymous_id

        # an anonymous visitor views the pricing page: stored, but no lead to score yet
        page.evaluate("() => analytics.page()")
        wait_until(lambda: any(e["type"] == "page" for e in _stored(store)))
        assert _score(store, "ada@example.com") is None

        # she identifies herself: her earlier anonymous page view now counts for her (30 points)
        page.evaluate("() => analytics.identify('ada', {email: 'ada@example.com', firstName: 'Ada'})")
        assert wait_until(lambda: _score(store, "ada@example.com") == 30)

        # she requests a demo: 30 + 50 = 80, band hot
        page.evaluate("() => analytics.track('Demo Requested', {plan: 'team'})")
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
    assert identify["context"]["traits"]["email"] == "ada@example.com"
    assert track["name"] == "Demo Requested" and track["properties"] == {"plan": "team"}
    assert all(e["message_id"].startswith("ajs-next-") for e in stored)

    lead_id = _lead(store, "ada@example.com")
    with store.connect() as conn:
        assert waiting_events(conn) == 0
        bands = [c["to_value"] for c in read_crossings(conn, lead_id) if c["kind"] == "band"]
    assert bands == ["warm", "hot"]

    # every request went to the website or to leadscore; the events as cross-origin text/plain bodies
    api = urlsplit(site.api).netloc
    assert {urlsplit(url).netloc for _, url, _ in sent} == {f"127.0.0.1:{site.page_port}", api}
    to_api = [
        (method, urlsplit(url).path, headers) for method, url, headers in sent if urlsplit(url).netloc == api
    ]
    assert to_api[0][:2] == ("GET", f"/v1/projects/{site.write_key}/settings")
    posts = to_api[1:]
    if batching:
        assert posts and {path for _, path, _ in posts} == {"/v1/b"}
    else:
        assert [path for _, path, _ in posts] == ["/v1/p", "/v1/i", "/v1/t"]
    for method, _, headers in posts:
        assert method == "POST" and headers["content-type"] == "text/plain"
        assert headers["origin"] == site.origin and headers["authorization"].startswith("Basic ")


def test_origin_not_configured_cannot_load_or_send(chromium: Browser, site: Site) -> None:
    """``localhost`` is another origin than the configured ``127.0.0.1``: CORS stops the library there."""
    with browsing(chromium) as (page, traffic):
        page.goto(f"http://localhost:{site.page_port}/pricing")
        outcome = page.evaluate(
            "([k, u]) => loadAnalytics(k, u, false).then(() => 'loaded', (e) => 'failed: ' + e)",
            [site.write_key, site.api],
        )
        assert outcome.startswith("failed")
        # even with the settings given inline, the preflight of the event request is refused, so the
        # request itself is never sent
        settings = httpx.get(f"{site.api}/v1/projects/{site.write_key}/settings").json()
        with page.expect_event(
            "requestfailed", lambda r: r.url == f"{site.api}/v1/t", timeout=10_000
        ) as failure:
            page.evaluate(
                """async ([k, settings]) => {
                    const [analytics] = await AnalyticsNext.AnalyticsBrowser.load({writeKey: k, cdnSettings: settings});
                    analytics.track('Demo Requested');
                }""",
                [site.write_key, settings],
            )
        assert failure.value.failure
        assert f"{site.api}/v1/projects/{site.write_key}/settings" in traffic.failed
    assert _stored(site.store) == []


def test_settings_refuse_unknown_write_keys(site: Site) -> None:
    r = httpx.get(f"{site.api}/v1/projects/lsw_unknown/settings")
    assert r.status_code == 404 and r.json()["ok"] is False
    body = httpx.get(f"{site.api}/v1/projects/{site.write_key}/settings").json()
    segment = body["integrations"]["Segment.io"]
    assert segment == {
        "apiKey": site.write_key,
        "apiHost": f"{urlsplit(site.api).netloc}/v1",
        "protocol": "http",
    }
    assert body["metrics"]["sampleRate"] == 0


def test_requests_beyond_loopback_fail_and_are_recorded(chromium: Browser, site: Site) -> None:
    """What keeps every browser test offline: a request to another host is recorded, and never arrives."""
    with browsing(chromium) as (page, traffic):
        page.goto(f"{site.origin}/pricing")
        outcome = page.evaluate(
            "() => fetch('http://example.com/x', {mode: 'no-cors'}).then(() => 'sent', () => 'failed')"
        )
    assert outcome == "failed"
    assert traffic.outside == ["http://example.com/x"]


@pytest.fixture
def snippet_site(store: Store) -> Iterator[Site]:
    """A website with Segment's snippet and no copy of analytics.js."""
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "website", 0)
    with website({"/pricing": page_file("segment-snippet.html")}) as port:
        settings = Settings(
            database_url="unused", processor_idle_s=0.05, cors_origins=[f"http://127.0.0.1:{port}"]
        )
        with serving(create_app(settings, store=store)) as api:
            yield Site(port, api, write, store)


def test_segment_snippet_with_its_cdn_host_changed(chromium: Browser, snippet_site: Site) -> None:
    """Segment's snippet with ``cdn.segment.com`` changed to leadscore loads
    ``/analytics.js/v1/{key}/analytics.min.js``, which was a 404: analytics.js never loaded and nothing
    was sent. Now the snippet's queued page view, then identify and track, arrive and move her score, and
    the page asks nothing of any other host (no CDN)."""
    site = snippet_site
    store = site.store
    with browsing(chromium) as (page, traffic):
        page.goto(f"{site.origin}/pricing")
        page.evaluate("([k, u]) => loadSegmentSnippet(k, u)", [site.write_key, site.api])
        page.wait_for_function("() => window.analytics.initialized === true", timeout=15_000)
        anonymous_id = page.evaluate("() => analytics.user().anonymousId()")
        wait_until(lambda: any(e["type"] == "page" for e in _stored(store)))
        page.evaluate("() => analytics.identify('ada', {email: 'ada@example.com'})")
        page.evaluate("() => analytics.track('Demo Requested', {plan: 'team'})")
        assert wait_until(lambda: _score(store, "ada@example.com") == 80)
        assert not traffic.errors and not traffic.failed, (traffic.errors, traffic.failed)
        assert traffic.outside == []
        sent = traffic.sent()

    stored = _stored(store)
    assert [e["type"] for e in stored] == ["page", "identify", "track"]
    assert stored[0]["path"] == "/pricing" and stored[0]["anonymous_id"] == anonymous_id
    api = urlsplit(site.api).netloc
    to_api = [(method, urlsplit(url).path) for method, url, _ in sent if urlsplit(url).netloc == api]
    assert to_api[:2] == [
        ("GET", f"/analytics.js/v1/{site.write_key}/analytics.min.js"),
        ("GET", f"/v1/projects/{site.write_key}/settings"),
    ]
