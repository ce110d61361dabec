"""Shared by the dashboard tests: a demo database with users of every role, served by a real uvicorn."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.demo import run_demo
from leadscore.lifecycle.runner import run_round
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.users import add_user
from live_server import serving

PASSWORD = "correct horse battery staple"
ROLES = ("admin", "marketing", "sales")
SELLER = "lena.vogt@vendor.example"  # a seller of the demo model's EMEA team (owns leads), signed in as sales


@dataclass(frozen=True)
class Site:
    url: str
    store: Store
    db: str

    def email(self, role: str) -> str:
        return SELLER if role == "sales" else f"{role}@example.test"


def build(tmp: Path, leads: int = 60, seed: int = 3) -> tuple[Store, str]:
    db = str(tmp / "dashboard.db")
    run_demo(db, leads=leads, seed=seed)
    store = Store.from_url(db)
    run_round(store, Settings(), deliver=False)
    with store.begin() as conn:
        for role in ROLES:
            email = SELLER if role == "sales" else f"{role}@example.test"
            add_user(conn, email, f"Test {role}", role, hash_password(PASSWORD), 0)
    return store, db


@contextmanager
def site(tmp: Path, leads: int = 60, seed: int = 3) -> Iterator[Site]:
    store, db = build(tmp, leads, seed)
    app = create_app(Settings(database_url=db, run_processor=False), store)
    try:
        with serving(app) as url:
            yield Site(url, store, db)
    finally:
        store.dispose()


@contextmanager
def signed_in(url: str, email: str) -> Iterator[httpx.Client]:
    """An HTTP client with a session of ``email`` (signed in through the form, CSRF token included)."""
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as client:
        form = client.get("/signin")
        token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert token, form.text
        done = client.post(
            "/signin", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)}
        )
        assert done.status_code == 303, done.text
        yield client


def csrf_of(client: httpx.Client) -> str:
    page = client.get("/leads")
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)
