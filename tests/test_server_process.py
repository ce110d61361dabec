"""What a server process sets up for itself: the collector tuned once the app is built (in a child
process, since it changes the whole interpreter)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

CHILD = """
import gc, os
os.environ["LEADSCORE_DATABASE_URL"] = os.path.join({tmp!r}, "db.sqlite")
os.environ["LEADSCORE_RUN_PROCESSOR"] = "0"
from leadscore.api.app import app_from_env
assert gc.get_freeze_count() == 0
app_from_env()
print(gc.get_threshold(), gc.get_freeze_count() > 1000)
"""


def test_the_app_factory_tunes_the_collector(tmp_path: object) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(tmp=str(tmp_path))], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[0] == "(10000, 20, 20) True"


def _children(pid: int) -> list[int]:
    """The worker processes (multiprocessing's spawned children) of process ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # gone meanwhile
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet reaped by its new parent, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_their_supervisor(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "LEADSCORE_RUN_PROCESSOR": "0"}
    log = tmp_path / "serve.log"
    serve = [sys.executable, "-c", "from leadscore.cli.main import main; main()", "serve"]
    with log.open("wb") as out:
        supervisor = subprocess.Popen(
            [*serve, "--db", str(tmp_path / "db.sqlite"), "--port", str(port), "--workers", "2"],
            stdout=out,
            stderr=out,
            env=env,
        )
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while len(workers) < 2 or not all(_answers(port) for _ in range(4)):
            assert supervisor.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the workers did not start: " + log.read_text()
            time.sleep(0.1)
            workers = _children(supervisor.pid)
        assert len(workers) == 2
        supervisor.kill()  # SIGKILL: no handler runs, the workers are not told
        supervisor.wait()
        deadline = time.monotonic() + 15
        while any(_alive(w) for w in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [w for w in workers if _alive(w)], log.read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for worker in workers:
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)


def _answers(port: int) -> bool:
    with contextlib.suppress(httpx.TransportError):
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    return False
