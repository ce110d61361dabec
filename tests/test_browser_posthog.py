"""posthog-js (its ``array.no-external`` build, vendored in tests/browser/vendor/) in real headless
Chromium with only its project key and host set, the host being leadscore: its automatic page view of an
anonymous visitor, her ``identify`` with ``$set`` traits and a captured event arrive on the capture routes
as posthog-js sends them (compressed as it chooses), are stored, stitched and move her score. No request
leaves 127.0.0.1. Skipped only when Chromium cannot run here (``tests/browser_support.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser

from browser_support import browsing, launched_chromium, page_file, script_file, wait_until, website
from leadscore.api import create_app
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from live_server import serve_command, serving
from test_browser_analytics import MODEL, SHIPPED, Site, _score, _stored

POSTHOG_BUNDLE = "posthog-js-1.449.2.array.no-external.js"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.fixture
def site(store: Store) -> Iterator[Site]:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "website", 0)
    files = {
        "/pricing": page_file("posthog.html"),
        f"/vendor/{POSTHOG_BUNDLE}": script_file(SHIPPED / POSTHOG_BUNDLE),
    }
    with website(files) as port:
        settings = Settings(
            database_url="unused", processor_idle_s=0.05, cors_origins=[f"http://127.0.0.1:{port}"]
        )
        with serving(create_app(settings, store=store)) as api:
            yield Site(port, api, write, store)


@pytest.fixture
def served_site(tmp_path: Path) -> Iterator[Site]:
    """The same website, and the ``leadscore serve`` command itself (a child process) on SQLite."""
    db = str(tmp_path / "serve.db")
    store = Store.from_url(db)
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "website", 0)
    files = {
        "/pricing": page_file("posthog.html"),
        f"/vendor/{POSTHOG_BUNDLE}": script_file(SHIPPED / POSTHOG_BUNDLE),
    }
    with website(files) as port:
        origins = json.dumps([f"http://127.0.0.1:{port}"])
        with serve_command(db, tmp_path / "serve.log", cors_origins=origins, processor_idle_s="0.05") as api:
            yield Site(port, api, write, store)
    store.dispose()


def test_posthog_js_in_chromium_moves_the_score(chromium: Browser, site: Site) -> None:
    _journey(chromium, site)
    assert _score(site.store, "ada@example.com") == 80  # pricing 30 + demo 50


@pytest.fixture
def snippet_site(store: Store) -> Iterator[Site]:
    """A website with PostHog's HTML snippet and no copy of posthog-js: the snippet loads it from
    ``{api_host}/static/array.js``, leadscore."""
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "website", 0)
    with website({"/pricing": page_file("posthog-snippet.html")}) as port:
        settings = Settings(
            database_url="unused", processor_idle_s=0.05, cors_origins=[f"http://127.0.0.1:{port}"]
        )
        with serving(create_app(settings, store=store)) as api:
            yield Site(port, api, write, store)


def test_posthog_snippet_loads_posthog_js_from_leadscore(chromium: Browser, snippet_site: Site) -> None:
    """The snippet with only ``api_host`` changed fetched ``{api_host}/static/array.js``, which was the
    dashboard's static files' 404: posthog-js never loaded and nothing was sent. Now the shipped build
    loads (across origins, crossorigin="anonymous"), and the visitor's journey moves her score."""
    sent = _journey(chromium, snippet_site)
    assert f"{snippet_site.api}/static/array.js" in {url for _, url, _ in sent}


def test_posthog_js_in_chromium_against_the_leadscore_serve_command(
    chromium: Browser, served_site: Site
) -> None:
    _journey(chromium, served_site)
    assert _score(served_site.store, "ada@example.com") == 80  # pricing 30 + demo 50


def _journey(chromium: Browser, site: Site) -> list[tuple[str, str, dict[str, str]]]:
    """The visitor's journey; returns the requests the page sent."""
    store = site.store
    with browsing(chromium) as (page, traffic):
        page.goto(f"{site.origin}/pricing")
        anonymous_id = page.evaluate("([k, u]) => loadPosthog(k, u)", [site.write_key, site.api])
        assert anonymous_id
        # its automatic $pageview of the pricing page: stored, anonymous, no lead to score yet
        wait_until(lambda: any(e["type"] == "page" for e in _stored(store)))
        assert _score(store, "ada@example.com") is None

        # she identifies herself: her earlier anonymous page view now counts for her (30 points)
        page.evaluate("() => posthog.identify('ada', {email: 'ada@example.com'})")
        page.evaluate("() => posthog.capture('Demo Requested', {plan: 'team'})")
        # she requests a demo: 30 + 50 = 80
        assert wait_until(lambda: _score(store, "ada@example.com") == 80, timeout=20)
        assert traffic.outside == []
        sent = traffic.sent()

    stored = _stored(store)
    page_view = next(e for e in stored if e["type"] == "page")
    assert page_view["path"] == "/pricing" and page_view["anonymous_id"] == anonymous_id
    assert page_view["user_id"] is None
    identify = next(e for e in stored if e["type"] == "identify")
    assert (identify["user_id"], identify["anonymous_id"]) == ("ada", anonymous_id)
    api = urlsplit(site.api).netloc
    paths = {urlsplit(url).path for _, url, _ in sent if urlsplit(url).netloc == api}
    assert paths & {"/e/", "/i/v0/e/"}, paths
    return sent
