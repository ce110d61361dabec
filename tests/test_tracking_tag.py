"""The tracking tag: ``GET /analytics.js`` serves the shipped analytics.js with leadscore's loader, and the
dashboard's "Tracking code" page gives an admin the one ``<script>`` tag for it, with a new write key. A
plain HTML page holding only that tag, in real headless Chromium, records its page view; a later
``analytics.identify`` stitches the view to the lead and scores it. No request leaves 127.0.0.1."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser

import leadscore.web
from browser_support import HTML, browsing, launched_chromium, wait_until, website
from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.keys import verify
from leadscore.store.users import add_user
from live_server import serving
from test_browser_analytics import MODEL, _score, _stored
from web_support import PASSWORD, csrf_of, signed_in

STATIC = Path(leadscore.web.__file__).parent / "static"
ADMIN = "admin@example.test"
SNIPPET = re.compile(r"<pre[^>]*><code>(&lt;script .*?)</code></pre>")


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@dataclass
class Served:
    api: str
    origin: str
    pages: dict[str, tuple[bytes, str]]  # the website's files: a test adds its page
    store: Store


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        add_user(conn, ADMIN, "Admin", "admin", hash_password(PASSWORD), 0)
    pages: dict[str, tuple[bytes, str]] = {}
    with website(pages) as port:
        origin = f"http://127.0.0.1:{port}"
        settings = Settings(database_url="unused", processor_idle_s=0.05, cors_origins=[origin])
        with serving(create_app(settings, store=store)) as api:
            yield Served(api, origin, pages, store)


def _snippet(page: str) -> str:
    found = SNIPPET.search(page)
    assert found, page
    return html.unescape(found.group(1))


def test_the_dashboard_gives_the_tag_and_a_new_write_key(served: Served) -> None:
    with signed_in(served.api, ADMIN) as admin:
        shown = admin.get("/tracking")
        created = admin.post("/tracking/key", data={"csrf_token": csrf_of(admin), "name": " shop "})
        too_long = admin.post("/tracking/key", data={"csrf_token": csrf_of(admin), "name": "x" * 201})
    assert shown.status_code == 200
    assert _snippet(shown.text) == (
        f'<script async src="{served.api}/analytics.js" data-write-key="YOUR_WRITE_KEY"></script>'
    )
    assert created.status_code == 200
    tag = _snippet(created.text)
    key = re.fullmatch(
        rf'<script async src="{served.api}/analytics.js" data-write-key="(lsw_[^"]+)"></script>', tag
    )
    assert key, tag
    with served.store.connect() as conn:
        found = verify(conn, key.group(1))
        logged = read_audit(conn)
    assert found is not None and (found.kind, found.name) == ("write", "shop")
    assert [(e["actor"], e["action"]) for e in logged if e["action"] == "key.create"] == [
        (ADMIN, "key.create")
    ]
    assert too_long.status_code == 400 and "at most 200 characters; this one has 201" in too_long.text


def test_analytics_js_is_the_shipped_library_and_its_loader(served: Served) -> None:
    response = httpx.get(f"{served.api}/analytics.js")
    library = (STATIC / "vendor" / "analytics-next-1.84.3.umd.js").read_bytes()
    loader = (STATIC / "analytics-loader.js").read_bytes()
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert response.content == library + b"\n" + loader


def test_a_plain_page_with_only_the_tag_is_tracked(chromium: Browser, served: Served) -> None:
    with signed_in(served.api, ADMIN) as admin:
        tag = _snippet(admin.post("/tracking/key", data={"csrf_token": csrf_of(admin)}).text)
    write_key = re.search(r'data-write-key="([^"]+)"', tag).group(1)  # type: ignore[union-attr]
    served.pages["/pricing"] = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Pricing</title>{tag}</head>'
        "<body><h1>Pricing</h1></body></html>".encode(),
        HTML,
    )
    store = served.store
    with browsing(chromium) as (page, traffic):
        page.goto(f"{served.origin}/pricing")
        wait_until(lambda: [e for e in _stored(store) if e["type"] == "page"])
        assert _score(store, "ada@example.com") is None
        # the site's own code, after the tag: the anonymous page view now counts for her (30 points)
        page.evaluate("() => analytics.identify('ada', {email: 'ada@example.com'})")
        assert wait_until(lambda: _score(store, "ada@example.com") == 30)
        assert not traffic.errors and not traffic.failed, (traffic.errors, traffic.failed)
        assert traffic.outside == []
        sent = traffic.sent()

    page_view, identify = _stored(store)
    assert (page_view["type"], page_view["path"], page_view["url"]) == (
        "page",
        "/pricing",
        f"{served.origin}/pricing",
    )
    assert page_view["anonymous_id"] == identify["anonymous_id"] and identify["user_id"] == "ada"
    api = urlsplit(served.api).netloc
    assert [(m, urlsplit(u).path) for m, u, _ in sent if urlsplit(u).netloc == api] == [
        ("GET", "/analytics.js"),
        ("GET", f"/v1/projects/{write_key}/settings"),
        ("POST", "/v1/p"),
        ("POST", "/v1/i"),
    ]
