"""Several servers on one database: nothing lost, nothing applied twice, no crossing recorded twice.

Two complete apps in this process (each with its own engine, committer and processor, as two
`leadscore serve` processes have), and `leadscore serve --workers 2` itself, take concurrent and repeated
writes for the same leads, on SQLite (writers of every process take turns through a lock file) and on
PostgreSQL (rows are locked).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from leadscore.api import create_app
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.scoring.run import all_leads, score
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import waiting_events
from leadscore.store.keys import create_key
from leadscore.store.results import read_crossings
from leadscore.store.schema import events, scores
from live_server import serving

MODEL = """
model: concurrent
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 4}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 60, warm: 20}}
"""
LEADS, EVENTS_PER_LEAD = 12, 20  # 20 visits x 4 = 80 points: every lead crosses cold → warm → hot once


SERVE = [sys.executable, "-c", "from leadscore.cli.main import main; main()", "serve"]


@contextmanager
def _serve_workers(url: str, log: Path) -> Iterator[str]:
    """``leadscore serve --workers 2`` on ``url`` in a child process; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LEADSCORE_PROCESSOR_IDLE_S": "0.05"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [*SERVE, "--db", url, "--port", str(port), "--workers", "2"], stdout=out, stderr=out, env=env
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):  # not listening yet
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "the workers did not start: " + log.read_text()
            time.sleep(0.1)
        yield base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(
    params=[
        "apps-sqlite",
        pytest.param("apps-postgres", marks=pytest.mark.postgres),
        "workers-sqlite",
        pytest.param("workers-postgres", marks=pytest.mark.postgres),
    ]
)
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[list[str], str, Store]]:
    kind, engine = request.param.split("-")
    store: Store = request.getfixturevalue("sqlite_store" if engine == "sqlite" else "pg_store")
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
    url = store.engine.url.render_as_string(hide_password=False)
    if kind == "workers":
        with _serve_workers(url, tmp_path / "serve.log") as base:
            yield [base, base], write, store
        return
    stores = [Store.from_url(url, migrate_schema=False) for _ in range(2)]
    settings = Settings(database_url="unused", processor_idle_s=0.05)
    with ExitStack() as stack:
        urls = [stack.enter_context(serving(create_app(settings, store=s))) for s in stores]
        yield urls, write, store
    for s in stores:
        s.dispose()


def test_concurrent_writers_lose_nothing_and_repeat_nothing(
    two_servers: tuple[list[str], str, Store],
) -> None:
    urls, write, store = two_servers
    auth = {"Authorization": "Basic " + base64.b64encode(f"{write}:".encode()).decode()}
    messages = [
        {
            "type": "page",
            "userId": f"lead-{lead}",
            "messageId": f"m-{lead}-{n}",
            "properties": {"path": f"/p{n}"},
            "timestamp": f"2024-05-01T10:{n:02d}:00Z",
        }
        for lead in range(LEADS)
        for n in range(EVENTS_PER_LEAD)
    ]
    random.Random(7).shuffle(messages)
    failures: list[str] = []

    def send(worker: int) -> None:
        # a connection per request: the kernel spreads them over both workers of `serve --workers 2`
        with httpx.Client(timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for i, message in enumerate(messages[worker::4]):
                # alternate servers, and send a quarter of the messages twice, to both
                target = urls[(worker + i) % 2]
                r = client.post(
                    f"{target}/v1/track" if message["type"] == "track" else f"{target}/v1/page",
                    json=message,
                    headers=auth,
                )
                if r.status_code != 200:
                    failures.append(r.text)
                if i % 4 == 0:
                    client.post(f"{urls[(worker + i + 1) % 2]}/v1/page", json=message, headers=auth)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    deadline = time.monotonic() + 30
    while True:
        with store.connect() as conn:
            pending = waiting_events(conn)
        if pending == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert pending == 0
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(events)).scalar() == LEADS * EVENTS_PER_LEAD
        stored = dict(conn.execute(select(scores.c.lead_id, scores.c.score)).all())
        crossings = read_crossings(conn)
        fresh = {
            lg.lead_id: lg.score
            for lg in score(conn, loads_model(MODEL), store.sources(), all_leads(int(time.time() * 1000)))
        }
    # every lead's stored score is what the model gives on all its events: 20 visits x 4 = 80
    assert stored == fresh == dict.fromkeys(fresh, 80.0)
    # each lead crossed each band boundary exactly once
    per_lead: dict[int, list[tuple[str, str]]] = {}
    for c in crossings:
        if c["kind"] == "band":
            per_lead.setdefault(c["lead_id"], []).append((c["from_value"], c["to_value"]))
    assert len(per_lead) == LEADS
    for chain in per_lead.values():
        assert len(chain) == len(set(chain))
        assert chain[-1][1] == "hot"
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chain))
