"""Request size limits on every endpoint, answered in the JSON error envelope."""

from __future__ import annotations

import tempfile
from pathlib import Path

import httpx

from leadscore.api import create_app
from leadscore.api.app import MAX_BODY_BYTES
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from live_server import serving


def test_oversized_bodies_are_refused_everywhere() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "limits.db"))
        with store.begin() as conn:
            _, admin = create_key(conn, "admin", "ops", 0)
        app = create_app(Settings(database_url="unused", run_processor=False), store=store)
        big = b"x" * (MAX_BODY_BYTES + 1)
        with serving(app) as url, httpx.Client(base_url=url) as client:
            for path in ("/v1/outcomes", "/v1/batch", "/signin"):
                r = client.post(
                    path,
                    content=big,
                    headers={"Authorization": f"Bearer {admin}", "Content-Type": "application/json"},
                )
                assert r.status_code == 413, (path, r.status_code)
                if path.startswith("/v1"):
                    body = r.json()
                    assert body["ok"] is False and body["error"]
        store.dispose()
