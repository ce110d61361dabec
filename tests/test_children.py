"""Worker processes end with their parent (``leadscore.children``): a server killed with ``kill -9`` leaves
no pool worker behind waiting forever.

Each case starts a real parent process that starts its workers and prints their process ids, kills the
parent with SIGKILL, and waits for the workers to be gone. The control case, a pool without the
initializer, shows the defect: its workers outlive the parent (the test ends them itself).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SRC = str(Path(__file__).parents[1] / "src")

# the dashboard's pool (web.data.remembered), started as the server's warm-up starts it
DASHBOARD = """
import json, sys, time
from leadscore.web.data import remembered
remembered.start_children()
print(json.dumps(sorted(remembered._children()._processes)), flush=True)
time.sleep(600)
"""

# a pool with or without the initializer (argv[1]: "watched" or "plain"), its watch every 0.1 s
POOL = """
import json, multiprocessing, os, sys, time
from concurrent.futures import ProcessPoolExecutor
from leadscore.children import child_init
watched = sys.argv[1] == "watched"
pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"),
                           initializer=child_init if watched else None, initargs=(0, 0.1) if watched else ())
for f in [pool.submit(time.sleep, 0.3) for _ in range(2)]:
    f.result()
print(json.dumps(sorted(pool._processes)), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its new parent) counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _workers_after_parent_killed(script: str, *args: str) -> tuple[list[int], list[int]]:
    """Run ``script``; read its workers' ids; SIGKILL it; wait up to 20 s for them to end. Returns (the
    workers, those still alive)."""
    env = {**os.environ, "PYTHONPATH": SRC}
    with subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, env=env, text=True
    ) as parent:
        assert parent.stdout is not None
        workers: list[int] = json.loads(parent.stdout.readline())
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    return workers, [pid for pid in workers if _alive(pid)]


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_the_dashboards_workers_end_with_a_killed_server() -> None:
    workers, alive = _workers_after_parent_killed(DASHBOARD)
    assert alive == [], f"workers {alive} of {workers} outlived their parent"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc (Linux)")
def test_a_watched_pool_ends_with_its_parent_and_a_plain_one_does_not() -> None:
    workers, alive = _workers_after_parent_killed(POOL, "watched")
    assert alive == [], f"workers {alive} of {workers} outlived their parent"
    workers, alive = _workers_after_parent_killed(POOL, "plain")
    try:
        assert alive == workers  # the defect the initializer removes
    finally:
        for pid in alive:
            os.kill(pid, signal.SIGKILL)
