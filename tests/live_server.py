"""A real uvicorn server on a free loopback port, in a background thread, for HTTP tests (``serving``; the
tracking API with its processor and a write key: ``tracking``); or the ``leadscore serve`` command itself,
in a child process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from leadscore.api import create_app
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key


@contextmanager
def serving(app: FastAPI) -> Iterator[str]:
    """Run ``app`` until the block ends; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def tracking(store: Store, model: str | None = None, source: str = "site") -> Iterator[tuple[str, str]]:
    """The API of ``store`` served with its processor polling every 50 ms, ``model`` (YAML text) published
    first when given; yields the base URL and a new write key of ``source``."""
    if model is not None:
        publish(store, loads_model(model))
    with store.begin() as conn:
        _, write = create_key(conn, "write", source, 0)
    with serving(create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)) as url:
        yield url, write


@contextmanager
def serve_command(db: str, log: Path, **env: str) -> Iterator[str]:
    """``leadscore serve --db DB`` as a child process on a free loopback port (its output in ``log``,
    ``env`` as LEADSCORE_ settings), until the block ends; yields its base URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-c", "from leadscore.cli.main import main; main()", "serve", "--db", db,
               "--port", str(port)]  # fmt: skip
    environment = {**os.environ, **{f"LEADSCORE_{k.upper()}": v for k, v in env.items()}}
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        serve = subprocess.Popen(command, stdout=out, stderr=out, env=environment)
    try:
        deadline = time.monotonic() + 60
        while not _answers(url):
            if serve.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("leadscore serve did not start: " + log.read_text())
            time.sleep(0.1)
        yield url
    finally:
        serve.terminate()
        serve.wait(30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
