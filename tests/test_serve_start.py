"""What ``leadscore serve`` tells its operator (issue 17 §7): where it listens, the dashboard's address, how
to create the first user and key while there are none, the access log, and a warning while no model is
published: once in the log when events arrive (they are still acknowledged with 200) and in the
dashboard's banner."""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import func, select

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.serve_banner import StoreState, banner, base_url
from leadscore.model import load_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.schema import events
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

ROOT = Path(__file__).resolve().parent.parent
LINDA = ROOT / "examples" / "linda" / "model.yaml"
SERVE = [sys.executable, "-m", "leadscore.cli.main", "serve"]
NO_MODEL = "no model is published: events are stored, but no lead is scored"


@contextmanager
def serve(url: str, log: Path, *flags: str) -> Iterator[str]:
    """``leadscore serve --db URL FLAGS`` in a child process, its output in ``log``; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LEADSCORE_PROCESSOR_IDLE_S": "0.05", "PYTHONPATH": os.pathsep.join(sys.path)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVE, "--db", url, "--port", str(port), *flags], stdout=out, stderr=out, env=env, cwd=ROOT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "serve did not start: " + log.read_text()
            time.sleep(0.05)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for(log: Path, text: str, seconds: float = 30) -> str:
    deadline = time.monotonic() + seconds
    while text not in (out := log.read_text()):
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{out}"
        time.sleep(0.05)
    return out


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def test_serve_says_what_to_do_first_and_warns_once_without_a_model(store: Store, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    log = tmp_path / "serve.log"
    with serve(url, log) as base:
        started = log.read_text()
        port = base.rsplit(":", 1)[1]
        assert (
            f"leadscore listening on http://127.0.0.1:{port} (127.0.0.1, port {port}, 1 worker process)"
            in started
        )
        assert f"dashboard: http://127.0.0.1:{port}/" in started
        assert "leadscore users create --email you@example.com --role admin --db" in started
        assert "leadscore keys create --kind write --name website --db" in started
        assert "leadscore keys create --kind read --name crm --db" in started
        assert f"WARNING:  {NO_MODEL}" in started
        with store.begin() as conn:
            _, write = create_key(conn, "write", "site", 0)
        for n in range(2):  # two requests, each applied in a batch of its own: one warning
            answer = httpx.post(
                f"{base}/v1/track",
                json={"userId": "ada", "event": "Signed Up", "messageId": f"m{n}"},
                headers=basic(write),
                timeout=10,
            )
            assert answer.status_code == 200, answer.text  # stored: the answer does not depend on a model
            wait_for(log, "every event stored so far: `leadscore model publish MODEL.yaml`\n")
            applied(store, n + 1)
        out = wait_for(log, '"POST /v1/track HTTP/1.1" 200')  # the access log
    assert out.count('"POST /v1/track HTTP/1.1" 200') == 2
    assert out.count(NO_MODEL) == 2  # the start-up banner, then once when events came in


def applied(store: Store, n: int) -> None:
    """Wait until the processor has moved ``n`` events into the event log."""
    deadline = time.monotonic() + 30
    while True:
        with store.connect() as conn:
            if conn.execute(select(func.count()).select_from(events)).scalar_one() >= n:
                return
        assert time.monotonic() < deadline, f"{n} events not applied"
        time.sleep(0.05)


def test_serve_with_a_model_key_and_user_and_no_access_log(store: Store, tmp_path: Path) -> None:
    publish(store, load_model(LINDA))
    with store.begin() as conn:
        create_key(conn, "read", "crm", 0)
        add_user(conn, "admin@example.test", "Admin", "admin", hash_password(PASSWORD), 0)
    url = store.engine.url.render_as_string(hide_password=False)
    log = tmp_path / "serve.log"
    with serve(url, log, "--no-access-log") as base:
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        out = wait_for(log, "Uvicorn running on")
    assert "scoring with linda@1" in out
    for hint in ("no dashboard user yet", "no API key yet", NO_MODEL, "GET /healthz"):
        assert hint not in out


def test_the_banner_hides_a_database_password_and_names_wildcard_hosts() -> None:
    empty = StoreState(users=0, live_keys=0, model=None)
    lines = [text for _, text in banner(empty, "0.0.0.0", 8080, "postgresql://u:s3cret@db/leads", 2)]
    assert (
        lines[0]
        == "leadscore listening on http://127.0.0.1:8080 (all interfaces, port 8080, 2 worker processes)"
    )
    assert all("s3cret" not in line for line in lines)
    assert "--db 'postgresql://u:***@db/leads'" in lines[2]
    levels = [level for level, _ in banner(empty, "::", 1, None, 1)]
    assert levels == [logging.INFO] * 4 + [logging.WARNING]
    assert base_url("::", 8000) == "http://[::1]:8000"
    assert base_url("fe80::1", 8000) == "http://[fe80::1]:8000"
    assert base_url("leads.example.com", 80) == "http://leads.example.com:80"


def test_the_dashboard_warns_while_no_model_is_published(store: Store) -> None:
    with store.begin() as conn:
        add_user(conn, "admin@example.test", "Admin", "admin", hash_password(PASSWORD), 0)
        add_user(conn, "sales@example.test", "Sales", "sales", hash_password(PASSWORD), 0)
    settings = Settings(database_url="unused", run_processor=False)
    with (
        serving(create_app(settings, store=store)) as url,
        signed_in(url, "admin@example.test") as admin,
        signed_in(url, "sales@example.test") as sales,
    ):
        assert "No model is published" not in httpx.get(f"{url}/signin").text  # only to those signed in
        page = admin.get("/leads").text
        assert "<strong>No model is published:</strong>" in page
        assert '<a href="/model">Publish a model</a>' in page
        assert "An admin or marketer can publish one." in sales.get("/leads").text
        publish(store, load_model(LINDA))
        assert "No model is published" not in admin.get("/leads").text


def test_a_server_stopped_while_warming_up_waits_for_it(pg_store: Store) -> None:
    """The warm-up thread holds a pooled connection while it reads; a server stopped before it ends waits for
    it (then closes the store), instead of leaving its connection to a disposed pool. Here it is made to
    wait: another transaction holds the scores table locked until 1.5 s after the server was told to stop."""
    import threading

    from sqlalchemy import text

    locker = pg_store.engine.connect()
    locker.begin()
    locker.execute(text("LOCK TABLE scores IN ACCESS EXCLUSIVE MODE"))
    app = create_app(Settings(database_url=str(pg_store.url), run_processor=False), pg_store)
    release = threading.Timer(1.5, locker.rollback)
    try:
        with serving(app):
            warming = next(t for t in threading.enumerate() if t.name == "warm-up")
            time.sleep(0.3)
            assert warming.is_alive()  # blocked at the scores table
            release.start()
        assert not warming.is_alive() and app.state.leadscore.warmed.is_set()
    finally:
        release.join()
        locker.close()
