"""The unsubscribe link of a nurture mail: opening it (a GET, which mail filters and link scanners make on
every link of a mail) asks to confirm and changes nothing; the confirmation's POST, or a mail program's
one-click POST (RFC 8058, ``List-Unsubscribe-Post``), suppresses the address. A link without its signed
token is refused either way."""

from __future__ import annotations

import html
import re

import httpx

from leadscore.api import create_app
from leadscore.lifecycle.context import unsubscribe_url
from leadscore.settings import Settings, WebhookSettings
from leadscore.store import Store
from leadscore.store.suppressions import is_suppressed
from live_server import serving

SECRET = "s" * 32


def test_opening_the_link_asks_and_only_the_post_unsubscribes(store: Store) -> None:
    settings = Settings(
        database_url=str(store.url), run_processor=False, webhook=WebhookSettings(secret=SECRET)
    )
    link = unsubscribe_url(settings, "Ann@Example.com").removeprefix(
        settings.lifecycle.public_url.rstrip("/")
    )
    with serving(create_app(settings, store)) as url, httpx.Client(base_url=url) as client:
        page = client.get(link)
        with store.connect() as conn:
            suppressed_after_opening = is_suppressed(conn, "ann@example.com", settings.suppression_pepper)
        action = html.unescape(re.search(r'<form method=post action="([^"]+)"', page.text)[1])  # type: ignore[index]
        forged = client.post("/v1/unsubscribe?email=ann%40example.com&token=" + "0" * 40)
        confirmed = client.post("/v1/unsubscribe" + action)
        with store.connect() as conn:
            suppressed = is_suppressed(conn, "ann@example.com", settings.suppression_pepper)
        refused_page = client.get("/v1/unsubscribe?email=bob%40example.com&token=" + "0" * 40)
    assert page.status_code == 200 and "Stop all mail to <b>Ann@Example.com</b>?" in page.text
    assert not suppressed_after_opening
    assert action == "?" + link.split("?", 1)[1]
    assert forged.status_code == 403
    assert confirmed.status_code == 200 and confirmed.text == "Ann@Example.com will get no more mail from us."
    assert suppressed
    assert refused_page.status_code == 403
