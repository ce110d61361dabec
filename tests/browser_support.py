"""Tracking libraries in real headless Chromium: the browser, a customer's website on its own loopback
port (another origin than leadscore), and a page's traffic, with every request that is not to 127.0.0.1
(or localhost) blocked and recorded so a test can fail on it.

Chromium is Debian's (``apt-get install chromium chromium-driver``); Playwright drives it and never
downloads a browser of its own. A test is skipped only when Chromium cannot run here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright
from playwright.sync_api import Error as PlaywrightError

PAGES = Path(__file__).parent / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    # every request but to loopback (which Chromium never proxies) goes to a closed port and fails. Not
    # Playwright's request routing: intercepted, analytics.js's keepalive batch requests never complete
    "--proxy-server=http://127.0.0.1:9",
]


def launched_chromium() -> Iterator[Browser]:
    """The body of a ``chromium`` fixture: the browser, or a skip saying why it cannot run."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}: apt-get install chromium chromium-driver")
    with sync_playwright() as playwright:
        try:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS, timeout=30_000
            )
        except PlaywrightError as exc:
            pytest.skip(f"Chromium at {CHROMIUM} cannot run here: {exc.message.splitlines()[0]}")
        yield browser
        browser.close()


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


@contextmanager
def website(files: dict[str, tuple[bytes, str]]) -> Iterator[int]:
    """Serve ``files`` (path → body, content type) on a free loopback port; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = files.get(self.path)
            if found is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", found[1])
            self.send_header("Content-Length", str(len(found[0])))
            self.end_headers()
            self.wfile.write(found[0])

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests read what was requested, not the server's log."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


LOOPBACK = ("127.0.0.1", "localhost")
HTML = "text/html; charset=utf-8"
JS = "text/javascript; charset=utf-8"


def page_file(name: str) -> tuple[bytes, str]:
    return (PAGES / name).read_bytes(), HTML


def script_file(path: Path) -> tuple[bytes, str]:
    return path.read_bytes(), JS


@dataclass
class Traffic:
    """What a page did on the network, and the script errors it raised."""

    requests: list[Request] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)  # requests to anywhere but loopback, blocked

    def sent(self) -> list[tuple[str, str, dict[str, str]]]:
        """(method, url, headers as sent, including Origin) of every request so far."""
        return [(r.method, r.url, r.all_headers()) for r in self.requests]


@contextmanager
def browsing(chromium: Browser) -> Iterator[tuple[Page, Traffic]]:
    """A fresh browser context (no cookies or storage); yields a page and its traffic. A request to any
    host but loopback (``127.0.0.1``, ``localhost``) is recorded in ``outside`` (and fails: see
    ``CHROMIUM_ARGS``)."""
    context = chromium.new_context()
    traffic = Traffic()

    def seen(request: Request) -> None:
        traffic.requests.append(request)
        if urlsplit(request.url).hostname not in LOOPBACK:
            traffic.outside.append(request.url)

    page = context.new_page()
    page.on("request", seen)
    page.on("requestfailed", lambda request: traffic.failed.append(request.url))
    page.on("pageerror", lambda exc: traffic.errors.append(str(exc)))
    try:
        yield page, traffic
    finally:
        context.close()
