"""Ingest benchmark: the tracking API under load on 127.0.0.1, with every ratio measured in the same run.

    python bench/ingest.py [--engine sqlite|postgres|both] [--seconds S] [--latency-seconds L] [--rate R]
                           [--workers N] [--connections C] [--only abcp] [--processors P]

Default: both engines, 8 s per wrk run, 60 s of latency measurement at 1,000 events/s (about five
minutes in all). Needs ``wrk`` (apt-get install wrk). Every server is a child process on a free loopback
port with the same uvicorn settings (uvloop + httptools, no access log; one process, or ``--workers N``
processes each on its own SO_REUSEPORT socket as ``leadscore serve --workers N`` runs them, baseline
included), and wrk the same connections and threads against both sides of a ratio.

(a) ``POST /v1/track``, one event per request, each acknowledged only once committed: requests/s
    against a bare ASGI app that reads the body and answers 200 (target >= 40 %).
(b) ``POST /v1/batch`` with 100 events per request: durable events/s (target >= 100k/s on 2 cores),
    against the same rows written straight through the database driver with ``executemany`` (one
    transaction per 100 rows, as a server without group commit; and all rows in one transaction).
(c) event -> score updated (and crossing recorded) latency at a fixed arrival rate: an open-loop client
    sends single events on schedule; a poller sees each acknowledged event reach the event log, which happens
    in the transaction that stores the lead's new score, ledger, history and crossings. p50/p99 from the
    send (target p99 <= 250 ms).
With ``--processors P`` (P >= 1) the server runs as ``leadscore serve --no-processor`` and P
``leadscore process`` children score the events ((a)'s "processor on" and (c)); their CPU time is read
from /proc, so (c) also reports the events the processors scored per CPU-second (per core).
(d) the same on PostgreSQL (``LEADSCORE_BENCH_POSTGRES_URL``, default postgresql://postgres@127.0.0.1/test;
    each run gets a fresh schema).
(p) PostHog format beside Segment, ingest only, 100 events per request, each against the same bare
    endpoint (fed the PostHog body) in one run: ``POST /v1/batch`` (Segment: the messages of (b), and the
    same with each message's ``timestamp`` and the batch's ``sentAt``), ``POST /batch/`` with the
    body posthog-python sends (``api_key``, ``sent_at``, ``batch`` of events with ``uuid``,
    ``distinct_id``, ``timestamp`` and its ``$lib`` properties), and the same gzipped
    (``Content-Encoding: gzip``, posthog-python's ``gzip=True``; bodies made in advance, one per request).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from leadscore.ingest.apply import event_row
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store, event_log
from leadscore.store.event_log import EVENT_FIELDS, inbox_events, waiting_events
from leadscore.store.keys import create_key

PG_URL = os.environ.get("LEADSCORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MODEL = """
model: ingest_bench
engagement:
  - {id: clicks, name: Clicks, event: {type: track, name: Clicked}, points: 10}
  - {id: pricing, name: Pricing, event: {type: page}, where: {property: path, prefix: /pricing}, points: 20}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""
USERS = 5_000
BATCH = 100
CONNECTIONS = 32  # wrk connections for (a) and (b); --connections changes it (for both sides of a ratio)
# the inbox entry of leads logged and not yet scored (a source without it never leaves one)
PENDING = getattr(event_log, "PENDING", "pending_rescore")
PROCESSORS = 0  # ``leadscore process`` children (0: the processor runs in the server); --processors
WORKERS = 1  # server processes (``leadscore serve --workers``); --workers changes it, for both sides
LATENCY_CONNECTIONS = 256  # the latency client stays open-loop while answers take up to ~250 ms
MAX_SECONDS = 120  # no single measurement runs longer, whatever the flags say
GRACE_S = 30.0
RAW_MAX_ROWS = 2_000_000  # how long the latency run waits for stragglers after its last send

# -- servers ---------------------------------------------------------------------------------------------


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The baseline: an ASGI app that reads the whole body and answers 200 with a small JSON body."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": b'{"ok":true,"success":true}'})


def _serve(kind: str, port: int, db: str, processor: bool, workers: int = 1) -> None:
    import uvicorn

    from leadscore.api import create_app
    from leadscore.api import workers as serve_workers
    from leadscore.settings import Settings

    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "loop": "uvloop",
        "http": "httptools",
    }
    if workers > 1:  # as ``leadscore serve --workers N``: a SO_REUSEPORT socket per process
        os.environ.update(
            LEADSCORE_DATABASE_URL=db,
            LEADSCORE_RUN_PROCESSOR="1" if processor else "0",
            LEADSCORE_PROCESSOR_IDLE_S="0.5",
        )
        app_path = serve_workers.APP if kind == "leadscore" else "ingest:bare_app"
        serve_workers.run("127.0.0.1", port, workers, options, app=app_path)
        return
    app: Any = bare_app
    if kind == "leadscore":
        app = create_app(Settings(database_url=db, run_processor=processor, processor_idle_s=0.5))
    serve_workers.tune_gc()  # as ``leadscore serve`` does, for both sides of a ratio
    uvicorn.run(app, host="127.0.0.1", port=port, **options)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Processors:
    """``leadscore process`` children; ``cpu_s()`` is their CPU time so far (user + system)."""

    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cpu_s(self) -> float:
        total = 0.0
        for proc in self.procs:
            fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total


@contextmanager
def processors(db: str, n: int) -> Iterator[Processors]:
    """``n`` ``leadscore process`` children on ``db`` (the first also runs the lifecycle), stopped after."""
    out = Processors()
    base = [sys.executable, "-c", "from leadscore.cli.main import main; main()", "process", "--db", db]
    try:
        for i in range(n):
            extra = [] if i == 0 else ["--no-lifecycle"]
            out.procs.append(subprocess.Popen([*base, *extra], stdout=subprocess.DEVNULL))
        yield out
    finally:
        for proc in out.procs:
            proc.terminate()
        try:
            for proc in out.procs:
                try:
                    proc.wait(60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        finally:  # the bench interrupted: none is left running
            for proc in out.procs:
                if proc.poll() is None:
                    proc.kill()


@contextmanager
def scoring_server(db: str, scoring: bool = True) -> Iterator[tuple[str, Processors]]:
    """The leadscore server with scoring on (in the server, or with ``--processors P`` in P processes of
    their own) or off (``scoring=False``: events wait in the inbox)."""
    with (
        processors(db, PROCESSORS if scoring else 0) as procs,
        server("leadscore", db, scoring and PROCESSORS == 0) as url,
    ):
        yield url, procs


@contextmanager
def server(kind: str, db: str = "", processor: bool = True) -> Iterator[str]:
    """A server child process (``leadscore`` app or the ``bare`` baseline); yields its base URL."""
    port = _free_port()
    args = [sys.executable, __file__, "_serve", kind, str(port), db, "1" if processor else "0", str(WORKERS)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {proc.stderr.read().decode() if proc.stderr else ''}")
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start") from None
                time.sleep(0.05)
        if WORKERS > 1:  # one worker answered; give the others time to bind their sockets
            time.sleep(6)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# -- databases -------------------------------------------------------------------------------------------


@contextmanager
def database(engine: str, workdir: Path) -> Iterator[str]:
    """A fresh database URL: a new SQLite file, or a new PostgreSQL schema (dropped afterwards)."""
    if engine == "sqlite":
        yield str(workdir / f"ingest-{uuid.uuid4().hex[:8]}.db")
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    try:
        # every connection of the run names the schema, so that ``Shares`` finds its server processes
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prepare(url: str) -> str:
    """Migrate, publish the bench model, create a write key; returns the key."""
    store = Store.from_url(url)
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        _, key = create_key(conn, "write", "bench", 0)
    store.dispose()
    return key


def count(url: str, table: str) -> int:
    store = Store.from_url(url, migrate_schema=False)
    try:
        with store.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() or 0)
    finally:
        store.dispose()


def stored(url: str) -> int:
    """Events stored: in the log, or acknowledged and still waiting in the inbox."""
    store = Store.from_url(url, migrate_schema=False)
    try:
        with store.connect() as conn:
            logged = int(conn.execute(text("SELECT count(*) FROM events")).scalar() or 0)
            return logged + waiting_events(conn)
    finally:
        store.dispose()


# -- wrk -------------------------------------------------------------------------------------------------

WRK_SCRIPT = """
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
local seq, prefix, batch, path = 0, "", %(batch)d, "%(path)s"
function init(args) prefix = args[1] .. "-" .. tid .. "-" end
local function event()
  seq = seq + 1
  return '{"type":"track","userId":"user-' .. (seq %% %(users)d) .. '","event":"Clicked","messageId":"'
    .. prefix .. seq .. '","properties":{"plan":"team","value":' .. seq .. '}}'
end
request = function()
  local body
  if batch == 0 then body = event() else
    local items = {}
    for i = 1, batch do items[i] = event() end
    body = '{"batch":[' .. table.concat(items, ",") .. ']}'
  end
  return wrk.format("POST", path, nil, body)
end
"""


POSTHOG_SCRIPT = """
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
local seq, prefix, key = 0, "", "%(key)s"
function init(args) prefix = args[1] .. "-" .. tid .. "-" end
local function event(now)
  seq = seq + 1
  return '{"event":"Clicked","distinct_id":"user-' .. (seq %% %(users)d) .. '","uuid":"' .. prefix .. seq
    .. '","timestamp":"' .. now .. '","properties":{"plan":"team","value":' .. seq
    .. ',"$lib":"posthog-python","$lib_version":"7.9.1","$geoip_disable":true}}'
end
request = function()
  local now = os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ")
  local items = {}
  for i = 1, %(batch)d do items[i] = event(now) end
  local body = '{"api_key":"' .. key .. '","sent_at":"' .. now .. '","batch":[' .. table.concat(items, ",") .. ']}'
  return wrk.format("POST", "/batch/", nil, body)
end
"""
# Segment batches as analytics-python sends them: each message with its timestamp, the batch with sentAt
# (the clock correction posthog-python's timestamp and sent_at also cost)
SEGMENT_TIMED_SCRIPT = """
local n = 0
function setup(thread) n = n + 1; thread:set("tid", n) end
local seq, prefix = 0, ""
function init(args) prefix = args[1] .. "-" .. tid .. "-" end
local function event(now)
  seq = seq + 1
  return '{"type":"track","userId":"user-' .. (seq %% %(users)d) .. '","event":"Clicked","messageId":"'
    .. prefix .. seq .. '","timestamp":"' .. now .. '","properties":{"plan":"team","value":' .. seq .. '}}'
end
request = function()
  local now = os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ")
  local items = {}
  for i = 1, %(batch)d do items[i] = event(now) end
  return wrk.format("POST", "/v1/batch", nil, '{"sentAt":"' .. now .. '","batch":[' .. table.concat(items, ",") .. ']}')
end
"""
# bodies made in advance (gzip), one per request, read from a file: lengths on the first line
FILE_SCRIPT = """
local bodies, at = {}, 0
function init(args)
  local f = io.open("%(bodies)s", "rb")
  local lengths = f:read("*l")
  for len in string.gmatch(lengths, "%%d+") do bodies[#bodies + 1] = f:read(tonumber(len)) end
  f:close()
end
request = function()
  at = at %% #bodies + 1
  return wrk.format("POST", "%(path)s", {["Content-Encoding"] = "gzip"}, bodies[at])
end
"""


@dataclass
class WrkResult:
    requests_s: float
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


def _ms(value: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", value)
    if found is None:
        return float("nan")
    number, unit = found.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}[unit]


def wrk(
    url: str, path: str, key: str, batch: int, seconds: float, workdir: Path, script_text: str | None = None
) -> WrkResult:
    """A wrk run: Segment messages made in Lua (``batch`` 0: one per request), or ``script_text``."""
    script = workdir / f"wrk-{uuid.uuid4().hex[:8]}.lua"
    script.write_text(script_text or WRK_SCRIPT % {"batch": batch, "path": path, "users": USERS})
    auth = "Authorization: Basic " + base64.b64encode(f"{key}:".encode()).decode()
    seconds = min(seconds, MAX_SECONDS)
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:.0f}s", "--timeout", "10s", "--latency"]
    args += ["-s", str(script)]
    args += ["-H", auth, "-H", "Content-Type: application/json", url, "--", uuid.uuid4().hex[:8]]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    done = re.search(r"(\d+) requests in", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    p50 = re.search(r"50%\s+(\S+)", out)
    p99 = re.search(r"99%\s+(\S+)", out)
    if not (done and rate and p50 and p99):
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    return WrkResult(float(rate.group(1)), int(done.group(1)), errors, _ms(p50.group(1)), _ms(p99.group(1)))


# -- (a) single events -----------------------------------------------------------------------------------


def single_events(engine: str, workdir: Path, seconds: float) -> dict[str, Any]:
    with server("bare") as url:
        wrk(url, "/v1/track", "x", 0, 2, workdir)  # warm-up
        bare = wrk(url, "/v1/track", "x", 0, seconds, workdir)
    out: dict[str, Any] = {"bare": bare}
    for processor in (True, False):
        with database(engine, workdir) as db:
            key = prepare(db)
            with scoring_server(db, processor) as (url, procs):
                wrk(url, "/v1/track", key, 0, 2, workdir)
                servers = _children()["server"]
                before = [procs.cpu_s(), sum(_proc_cpu_s(pid) or 0.0 for pid in servers)]
                result = wrk(url, "/v1/track", key, 0, seconds, workdir)
                # CPU-s of the processors and of the server during the measured run
                spent = [procs.cpu_s(), sum(_proc_cpu_s(pid) or 0.0 for pid in servers)]
                # how far scoring kept up: events in the log (scored) of those stored, as wrk stopped
                scored = count(db, "events")
                kept = stored(db)
        assert result.errors == 0, f"{result.errors} failed requests"
        assert kept >= result.requests, (kept, result.requests)
        out["processor" if processor else "ingest_only"] = result
        if processor:
            out["scored_of_stored"] = (scored, kept)
            out["cpu_s"] = {"processors": spent[0] - before[0], "server": spent[1] - before[1]}
    return out


# -- (b) batches of 100 ----------------------------------------------------------------------------------


def batch_rows(n: int) -> list[dict[str, Any]]:
    """The rows leadscore stores for ``n`` bench events (the same shape wrk sends)."""
    received = int(time.time() * 1000)
    return [
        event_row(
            normalise(
                {
                    "type": "track",
                    "userId": f"user-{i % USERS}",
                    "event": "Clicked",
                    "messageId": f"raw-{i}",
                    "properties": {"plan": "team", "value": i},
                },
                received_ms=received,
            ),
            "api",
        )
        for i in range(n)
    ]


def raw_executemany(engine: str, workdir: Path, rows: list[dict[str, Any]], per_commit: int) -> float:
    """Rows/s of the same rows written with the driver's executemany into a migrated store's event log."""
    cols = ", ".join(EVENT_FIELDS)
    values = [
        tuple(json.dumps(r[k]) if k in ("properties", "context") else r[k] for k in EVENT_FIELDS)
        for r in rows
    ]
    with database(engine, workdir) as db:
        Store.from_url(db).dispose()
        if engine == "sqlite":
            conn: Any = sqlite3.connect(db, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA cache_size=-65536")  # as the store's connections
            mark = "?"
        else:
            import psycopg

            conn = psycopg.connect(db, autocommit=True)
            mark = "%s"
        events_sql = f"INSERT INTO events ({cols}) VALUES ({', '.join([mark] * len(EVENT_FIELDS))})"
        start = time.perf_counter()
        for at in range(0, len(rows), per_commit):
            cur = conn.cursor()
            cur.execute("BEGIN")
            cur.executemany(events_sql, values[at : at + per_commit])
            cur.execute("COMMIT")
        elapsed = time.perf_counter() - start
        conn.close()
    return len(rows) / elapsed


def batches(engine: str, workdir: Path, seconds: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for processor in (False, True):
        with database(engine, workdir) as db:
            key = prepare(db)
            with server("leadscore", db, processor) as url:
                wrk(url, "/v1/batch", key, BATCH, 2, workdir)
                result = wrk(url, "/v1/batch", key, BATCH, seconds, workdir)
            kept = stored(db)
        assert result.errors == 0, f"{result.errors} failed requests"
        assert kept >= result.requests * BATCH, (kept, result.requests)
        out["processor" if processor else "ingest_only"] = result
        if not processor:
            out["stored"] = kept
    # the baseline writes as many rows as the ingest-only run stored, into a fresh database of the same
    # schema: inserts slow down as the indexes grow, so both sides must grow the log alike
    rows = batch_rows(min(out["stored"], RAW_MAX_ROWS))
    out["raw_rows"] = len(rows)
    out["raw_per_100"] = raw_executemany(engine, workdir, rows, BATCH)
    out["raw_one_txn"] = raw_executemany(engine, workdir, rows, len(rows))
    return out


# -- (p) PostHog format beside Segment ---------------------------------------------------------------------


def posthog_event(i: int, run: str, now_iso: str) -> dict[str, Any]:
    """One event as posthog-python 7 sends it in a batch (the shape the Lua script writes)."""
    return {
        "event": "Clicked",
        "distinct_id": f"user-{i % USERS}",
        "uuid": f"{run}-{i}",
        "timestamp": now_iso,
        "properties": {"plan": "team", "value": i, "$lib": "posthog-python", "$lib_version": "7.9.1",
                       "$geoip_disable": True},
    }  # fmt: skip


def posthog_bodies(key: str, requests: int, run: str) -> list[bytes]:
    """``requests`` gzipped ``/batch/`` bodies of ``BATCH`` events each, every event's uuid unique."""
    import gzip

    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return [
        gzip.compress(
            json.dumps(
                {
                    "api_key": key,
                    "sent_at": now,
                    "batch": [posthog_event(r * BATCH + i, run, now) for i in range(BATCH)],
                }
            ).encode(),
            compresslevel=9,  # GzipFile's default, which posthog-python uses
        )
        for r in range(requests)
    ]


def _bodies_file(workdir: Path, bodies: list[bytes]) -> Path:
    path = workdir / f"bodies-{uuid.uuid4().hex[:8]}.bin"
    with path.open("wb") as f:
        f.write((" ".join(str(len(b)) for b in bodies) + "\n").encode())
        for body in bodies:
            f.write(body)
    return path


def posthog_batches(engine: str, workdir: Path, seconds: float) -> dict[str, Any]:
    """(p): requests/s of the bare endpoint fed the PostHog body, then durable events/s of Segment's
    ``/v1/batch``, PostHog's ``/batch/`` and the same gzipped, ingest only, each in a fresh database."""
    posthog_script = POSTHOG_SCRIPT % {"batch": BATCH, "users": USERS, "key": "x"}
    with server("bare") as url:
        wrk(url, "/batch/", "x", BATCH, 2, workdir, posthog_script)  # warm-up
        out: dict[str, Any] = {"bare": wrk(url, "/batch/", "x", BATCH, seconds, workdir, posthog_script)}
    for kind in ("segment", "segment_timed", "posthog", "posthog_gzip"):
        with database(engine, workdir) as db:
            key = prepare(db)
            script = None
            if kind == "segment_timed":
                script = SEGMENT_TIMED_SCRIPT % {"batch": BATCH, "users": USERS}
            elif kind == "posthog":
                script = POSTHOG_SCRIPT % {"batch": BATCH, "users": USERS, "key": key}
            elif kind == "posthog_gzip":
                # enough bodies that none is sent twice: 3x what the plain run managed, warm-up included
                # (the plain run's rate moves with the machine's load; 1.5x ran out on a busy machine)
                planned = int(out["posthog"].requests_s * (seconds + 2) * 3) + 200
                bodies = posthog_bodies(key, planned, uuid.uuid4().hex[:8])
                out["gzip_ratio"] = sum(len(b) for b in bodies) / len(bodies)
                script = FILE_SCRIPT % {"bodies": _bodies_file(workdir, bodies), "path": "/batch/"}
            path = "/v1/batch" if kind.startswith("segment") else "/batch/"
            with server("leadscore", db, processor=False) as url:
                warm = wrk(url, path, key, BATCH, 2, workdir, script)
                result = wrk(url, path, key, BATCH, seconds, workdir, script)
            kept = stored(db)
        assert result.errors == 0 and warm.errors == 0, f"{result.errors} failed requests"
        if kind == "posthog_gzip":  # each body once: the events stored are the requests sent
            assert warm.requests + result.requests <= planned, "gzip bodies ran out; raise the margin"
        assert kept >= result.requests * BATCH, (kind, kept, result.requests)
        out[kind] = result
    return out


def posthog_report(engine: str, p: dict[str, Any]) -> str:
    bare = p["bare"]
    lines = [f"== {engine} (p) PostHog format beside Segment, x{BATCH} events per request, ingest only, "
             f"wrk -c{CONNECTIONS} ==",
             f"    bare endpoint, PostHog body: {bare.requests_s:,.0f} req/s = {bare.requests_s * BATCH:,.0f} events/s"]  # fmt: skip
    for kind, label in (("segment", "Segment /v1/batch"), ("segment_timed", "the same, timestamped"),
                        ("posthog", "PostHog /batch/"), ("posthog_gzip", "PostHog /batch/ gzip")):  # fmt: skip
        r = p[kind]
        lines.append(
            f"    {label + ':':<22} {r.requests_s * BATCH:,.0f} events/s = {r.requests_s / bare.requests_s:.0%} of bare"
            f", {r.requests_s / p['segment'].requests_s:.0%} of Segment (p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms)"
        )
    lines.append(f"    (gzip bodies average {p['gzip_ratio']:,.0f} bytes a request of 100 events)")
    return "\n".join(lines)


# -- (c) latency -----------------------------------------------------------------------------------------


class HttpConnection:
    """A minimal keep-alive HTTP/1.1 client connection (a load generator should cost little)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def post(self, head: bytes, body: bytes) -> int:
        self.writer.write(head + str(len(body)).encode() + b"\r\n\r\n" + body)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status


@dataclass
class Tracker:
    """Send, acknowledgement and score-visible times of every event (seconds since the epoch)."""

    sent: dict[str, float] = field(default_factory=dict)
    acked: dict[str, float] = field(default_factory=dict)
    done: dict[str, float] = field(default_factory=dict)
    waiting: set[str] = field(default_factory=set)  # acknowledged, not yet seen scored
    failed: int = 0
    max_inbox: int = 0  # events waiting in the inbox, at most
    last_send: float = 0.0  # when the last event was sent
    looked_up: int = 0  # PostgreSQL: events found by message id, not by ``Horizon`` (should stay 0)
    out_of_order: int = 0  # PostgreSQL: events committed after a higher id was seen (``Horizon.behind``)
    lock: threading.Lock = field(default_factory=threading.Lock)


async def _drive(url: str, key: str, rate: int, seconds: float, tracker: Tracker) -> None:
    host, port = url.removeprefix("http://").split(":")
    auth = base64.b64encode(f"{key}:".encode()).decode()
    head = (
        f"POST /v1/track HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic {auth}\r\n"
        "Content-Type: application/json\r\nContent-Length: "
    ).encode()
    pool: asyncio.Queue[HttpConnection] = asyncio.Queue()
    for _ in range(LATENCY_CONNECTIONS):
        pool.put_nowait(HttpConnection(*await asyncio.open_connection(host, int(port))))
    run = uuid.uuid4().hex[:8]

    async def one(i: int) -> None:
        message_id = f"lat-{run}-{i}"
        body = json.dumps(
            {"userId": f"user-{(i * 7919) % USERS}", "event": "Clicked", "messageId": message_id}
        ).encode()
        conn = await pool.get()
        tracker.sent[message_id] = time.time()
        status = await conn.post(head, body)
        pool.put_nowait(conn)
        if status == 200:
            with tracker.lock:
                tracker.acked[message_id] = time.time()
                if message_id not in tracker.done:  # not scored before its answer came
                    tracker.waiting.add(message_id)
        else:
            tracker.failed += 1

    loop = asyncio.get_running_loop()
    start, tasks = loop.time(), []
    for i in range(int(rate * min(seconds, MAX_SECONDS))):
        delay = start + i / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(i)))
    # answers still missing a while after the last send count as misses (infinite latency) in the report
    tracker.last_send = time.time()
    _, late = await asyncio.wait(tasks, timeout=GRACE_S)
    for task in late:
        task.cancel()
    while not pool.empty():
        pool.get_nowait().writer.close()


# PostgreSQL: an acknowledged event still not seen this long after its send is also looked up by message id
# (a safety net under ``Horizon``, which should leave it nothing: ``looked_up`` counts what it found)
OUT_OF_ORDER_S = 1.0


@dataclass
class Horizon:
    """Which event-log ids a PostgreSQL poller has read all of, although processors commit out of id order.

    Several processors commit out of id order (ids are taken at insert, seen at commit): an event whose
    id is below one already seen can commit a moment later. Each look is a snapshot (repeatable read) that
    reads every row above ``low``; once every transaction in progress at an earlier look has ended (the
    current snapshot's xmin has passed that look's xmax), every id up to the highest that look saw is
    visible: a transaction that had not begun then takes its ids later, above it (a processor's
    transaction takes a transaction id in its claim, before it inserts any event). So ``low`` moves up to
    it, and each look reads only the rows of the transactions that may still be in flight, whatever
    order they commit in."""

    low: int = 0
    seen: set[int] = field(default_factory=set)  # ids above ``low`` already read
    looks: list[tuple[int, int]] = field(default_factory=list)  # (snapshot xmax, highest id then visible)
    highest: int = 0  # the highest id read
    behind: int = 0  # rows read after a higher id (committed out of id order)

    def read(self, conn: Any) -> list[tuple[int, str]]:
        """The rows not read before (in the connection's repeatable-read transaction, not yet begun)."""
        xmin, xmax = conn.execute(
            text(
                "SELECT pg_snapshot_xmin(s)::text::bigint, pg_snapshot_xmax(s)::text::bigint"
                " FROM pg_current_snapshot() AS s"
            )
        ).one()
        rows = conn.execute(
            text("SELECT id, message_id FROM events WHERE id > :low"), {"low": self.low}
        ).all()
        new = [(i, m) for i, m in rows if i not in self.seen]
        self.seen.update(i for i, _ in new)
        # committed behind a higher id read at an earlier look: a poller reading above the highest id it
        # has seen would have missed it
        self.behind += sum(1 for i, _ in new if i < self.highest)
        top = max((i for i, _ in rows), default=self.low)
        self.highest = max(self.highest, top)
        while self.looks and self.looks[0][0] <= xmin:
            self.low = max(self.low, self.looks.pop(0)[1])
        self.seen = {i for i in self.seen if i > self.low}
        self.looks.append((xmax, top))
        return new


def _poll(db: str, tracker: Tracker, stop: threading.Event, interval: float) -> None:
    """Mark each acknowledged event done at the first look that finds it in the event log and scored: the
    processor writes it there in the transaction that stores the lead's new score, ledger, history and
    crossings, or (SQLite) logs it first and leaves a pending row until it stores them."""
    store = Store.from_url(db, migrate_schema=False)
    stop_by = float("inf")
    last_id = 0
    horizon = Horizon()
    try:
        with store.connect() as conn:
            postgres = conn.dialect.name == "postgresql"
            if postgres:  # one snapshot a look (``Horizon``)
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            while True:
                finished = stop.is_set()
                if finished and stop_by == float("inf"):
                    # GRACE_S after the last send (not after the last answer: a run that falls behind
                    # would wait for both in turn, and no longer fit a 5-minute hold beside its baseline)
                    stop_by = (tracker.last_send or time.time()) + GRACE_S
                if postgres:
                    logged = horizon.read(conn)
                    with tracker.lock:
                        behind = [
                            m for m in tracker.waiting if time.time() - tracker.sent[m] > OUT_OF_ORDER_S
                        ]
                    if behind:
                        found = conn.execute(
                            text("SELECT 0, message_id FROM events WHERE message_id = ANY(:ids)"),
                            {"ids": behind},
                        ).all()
                        read = {m for _, m in logged}
                        found = [(i, m) for i, m in found if m not in read]
                        tracker.looked_up += len(found)
                        logged = [*logged, *found]
                else:
                    # a SQLite processor logs a batch's events before it scores them
                    # (``scoring/snapshot.py``): those after the pending rows' ``logged_after`` are not
                    # scored yet
                    pending = [
                        entry[PENDING].get("logged_after", 0)
                        for (text_,) in conn.execute(
                            text(f"SELECT rows FROM inbox WHERE rows LIKE '[{{\"{PENDING}\"%'")
                        )
                        for entry in inbox_events(text_)
                        if isinstance(entry, dict) and PENDING in entry
                    ]
                    logged = conn.execute(
                        text("SELECT id, message_id FROM events WHERE id > :last AND id <= :upto"),
                        {"last": last_id, "upto": min(pending, default=2**62)},
                    ).all()
                    if logged:
                        last_id = max(last_id, *(i for i, _ in logged))
                tracker.max_inbox = max(tracker.max_inbox, waiting_events(conn))
                conn.rollback()  # end the read snapshot
                now = time.time()
                with tracker.lock:
                    for _, m in logged:
                        if m in tracker.waiting:
                            tracker.done[m] = now
                            tracker.waiting.discard(m)
                        elif m not in tracker.done:  # scored before its answer reached the client
                            tracker.done[m] = now
                tracker.out_of_order = horizon.behind
                if finished and (len(tracker.done) >= len(tracker.acked) or time.time() > stop_by):
                    return
                time.sleep(interval)
    finally:
        store.dispose()


def _proc_cpu_s(pid: int) -> float | None:
    """A process's CPU time so far (user + system), or None once it has gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy_s() -> float:
    """CPU-seconds every core of the machine has been busy so far (all processes, /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _role(query: str) -> str | None:
    """Whose PostgreSQL backend a statement shows: the API's acknowledgements, the bench's poller, or a
    processor (None: a statement anyone sends)."""
    if (
        query.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SET", "SELECT 1", "select pg_", "SHOW"))
        or not query
    ):
        return None
    if query.startswith(("INSERT INTO inbox", "SELECT events.message_id", "SELECT message_id FROM events")):
        return "api"
    if query.startswith(("SELECT id, message_id FROM events", "SELECT rows FROM inbox", "SELECT coalesce")):
        return "poller"
    return "processor"


@dataclass
class Shares:
    """Where the CPU went during a PostgreSQL latency run, and what the processors' backends waited on:
    ``pg_stat_activity`` sampled every ``interval`` s for the run's connections (named by
    ``application_name``), each backend's CPU read from /proc (same machine) at its first and last
    sighting."""

    app: str
    interval: float = 0.1
    first: dict[int, float] = field(default_factory=dict)
    last: dict[int, float] = field(default_factory=dict)
    roles: dict[int, dict[str, int]] = field(default_factory=dict)
    waits: dict[str, dict[str, int]] = field(default_factory=dict)  # role -> state/wait -> samples

    def run(self, stop: threading.Event) -> None:
        admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
        query = text(
            "SELECT pid, state, coalesce(wait_event_type || '/' || wait_event, ''), query"
            " FROM pg_stat_activity WHERE application_name = :app AND pid <> pg_backend_pid()"
        )
        try:
            with admin.connect() as conn:
                while not stop.wait(self.interval):
                    for pid, state, wait, statement in conn.execute(query, {"app": self.app}).all():
                        cpu = _proc_cpu_s(pid)
                        if cpu is not None:
                            self.first.setdefault(pid, cpu)
                            self.last[pid] = cpu
                        counts = self.roles.setdefault(pid, {})
                        role = _role(" ".join((statement or "").split()))
                        if role is not None:
                            counts[role] = counts.get(role, 0) + 1
                        role = max(counts.items(), key=lambda kv: kv[1])[0] if counts else "unknown"
                        if state == "idle":
                            continue
                        what = (
                            "client (idle in transaction)"
                            if (state or "").startswith("idle in")
                            else wait or "CPU"
                        )
                        by = self.waits.setdefault(role, {})
                        by[what] = by.get(what, 0) + 1
                    conn.rollback()
        finally:
            admin.dispose()

    def backend_cpu_s(self) -> dict[str, float]:
        """CPU-seconds of the run's PostgreSQL backends, by the role their statements showed most."""
        out: dict[str, float] = {}
        for pid, first in self.first.items():
            counts = self.roles[pid]
            role = max(counts.items(), key=lambda kv: kv[1])[0] if counts else "unknown"
            out[role] = out.get(role, 0.0) + self.last[pid] - first
        return out


def _children() -> dict[str, list[int]]:
    """This bench's child processes: the server and the ``leadscore process`` processors."""
    out: dict[str, list[int]] = {"server": [], "processors": []}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid():
            out["server" if b"_serve" in cmdline else "processors"].append(int(stat.parent.name))
    return out


def latency(engine: str, workdir: Path, rate: int, seconds: float) -> dict[str, Any]:
    with database(engine, workdir) as db:
        key = prepare(db)
        with scoring_server(db) as (url, procs):
            tracker = Tracker()
            stop = threading.Event()
            poller = threading.Thread(target=_poll, args=(db, tracker, stop, 0.005), daemon=True)
            poller.start()
            app = db.rsplit("application_name=", 1)[1] if "application_name=" in db else ""
            shares = Shares(app)
            sampler = threading.Thread(target=shares.run, args=(stop,), daemon=True)
            if app:
                sampler.start()
            children = _children()
            child_cpu = {pid: _proc_cpu_s(pid) or 0.0 for pids in children.values() for pid in pids}
            own, machine = os.times(), _machine_busy_s()
            began, cpu_before = time.time(), procs.cpu_s()
            asyncio.run(_drive(url, key, rate, seconds, tracker))
            sent_for = time.time() - began
            stop.set()
            poller.join(MAX_SECONDS)
            processor_cpu_s = procs.cpu_s() - cpu_before
            took = time.time() - began
            cpu = {
                role: sum((_proc_cpu_s(pid) or child_cpu[pid]) - child_cpu[pid] for pid in pids)
                for role, pids in children.items()
            }
            after = os.times()
            cpu["bench (load generator, poller)"] = after.user + after.system - own.user - own.system
            if app:
                sampler.join(5)
                for role, spent in shares.backend_cpu_s().items():
                    cpu[f"postgres backends: {role}"] = spent
            cpu["machine (every process)"] = _machine_busy_s() - machine
            crossings = count(db, "score_events")
            history = count(db, "score_history")
            assert tracker.failed == 0, f"{tracker.failed} requests failed"
            inf = float("inf")
            planned = int(rate * min(seconds, MAX_SECONDS))
            # an event never acknowledged or never seen scored within the grace period counts as infinitely late
            lat = sorted(
                (tracker.done[m] - tracker.sent[m]) * 1000 if m in tracker.done else inf for m in tracker.sent
            )
            lat += [inf] * (planned - len(lat))
            ack = sorted(
                (tracker.acked[m] - tracker.sent[m]) * 1000 if m in tracker.acked else inf
                for m in tracker.sent
            )
            ack += [inf] * (planned - len(ack))
            result = {
                "events": len(lat),
                "missed": sum(1 for v in lat if v == inf),
                "achieved_rate": len(tracker.acked) / sent_for,
                "p50": statistics.median(lat),
                "p99": lat[int(len(lat) * 0.99) - 1],
                "max": lat[-1],
                "ack_p50": statistics.median(ack),
                "ack_p99": ack[int(len(ack) * 0.99) - 1],
                "max_inbox": tracker.max_inbox,
                "looked_up": tracker.looked_up,
                "out_of_id_order": tracker.out_of_order,
                "crossings": crossings,
                "history_rows": history,
                "processors": PROCESSORS,
                # events scored per CPU-second of the processor processes (one core busy for a second)
                "per_core": len(tracker.done) / processor_cpu_s if processor_cpu_s else None,
                "processor_cpu_s": processor_cpu_s,
                "wall_s": took,
                "cpu_s": cpu,
                "waits": shares.waits,
            }
            # printed before the teardown (stopping processors behind a backlog can take long)
            print(f"{engine} (c) [load {os.getloadavg()[0]:.1f}]: {result}", flush=True)
            print("\n".join(shares_report(result)), flush=True)
    return result


# -- report ----------------------------------------------------------------------------------------------


def report(engine: str, a: dict[str, Any], b: dict[str, Any], c: dict[str, Any]) -> str:
    bare, with_proc, ingest_only = a["bare"], a["processor"], a["ingest_only"]
    b_off, b_on = b["ingest_only"], b["processor"]
    lines = [
        f"== {engine} ({os.cpu_count()} cores, wrk -c{CONNECTIONS}, {WORKERS} server process(es)) ==",
        f"(a) bare ASGI endpoint: {bare.requests_s:,.0f} req/s (p50 {bare.p50_ms:.1f} ms, p99 {bare.p99_ms:.1f} ms)",
        f"    /v1/track durable, processor on:  {with_proc.requests_s:,.0f} req/s = "
        f"{with_proc.requests_s / bare.requests_s:.0%} of bare (p50 {with_proc.p50_ms:.1f} ms, p99 {with_proc.p99_ms:.1f} ms)",
        f"    /v1/track durable, ingest only:   {ingest_only.requests_s:,.0f} req/s = "
        f"{ingest_only.requests_s / bare.requests_s:.0%} of bare (p50 {ingest_only.p50_ms:.1f} ms, p99 {ingest_only.p99_ms:.1f} ms)",
        f"(b) /v1/batch x{BATCH} durable, ingest only: {b_off.requests_s * BATCH:,.0f} events/s "
        f"(p50 {b_off.p50_ms:.1f} ms, p99 {b_off.p99_ms:.1f} ms)",
        f"    /v1/batch x{BATCH} durable, processor on: {b_on.requests_s * BATCH:,.0f} events/s",
        f"    raw executemany of the same {b['raw_rows']:,} rows, commit per {BATCH} rows: "
        f"{b['raw_per_100']:,.0f} rows/s; leadscore ingest = "
        f"{b_off.requests_s * BATCH / b['raw_per_100']:.0%} of it",
        f"    raw executemany, one transaction: {b['raw_one_txn']:,.0f} rows/s; leadscore ingest = "
        f"{b_off.requests_s * BATCH / b['raw_one_txn']:.0%} of it",
        f"(c) event -> score visible at {c['achieved_rate']:,.0f} events/s acknowledged for {c['events']:,} "
        f"events ({c['missed']:,} not scored within {GRACE_S:.0f} s of the last send count as infinitely late): "
        f"p50 {c['p50']:.0f} ms, p99 {c['p99']:.0f} ms, max {c['max']:.0f} ms "
        f"(acknowledged: p50 {c['ack_p50']:.1f} ms, p99 {c['ack_p99']:.1f} ms; "
        f"inbox peak {c['max_inbox']}; {c['history_rows']:,} history rows, {c['crossings']:,} crossings)",
    ]
    if c["processors"]:
        lines.insert(
            1, f"    scoring in {c['processors']} `leadscore process` process(es), not in the server"
        )
        lines.append(
            f"    processors: {c['processor_cpu_s']:.1f} CPU-s for {c['events']:,} events = "
            f"{c['per_core']:,.0f} events/s per core"
        )
    return "\n".join(lines)


def shares_report(c: dict[str, Any]) -> list[str]:
    """(c)'s CPU by process (share of the machine's cores over the run) and, on PostgreSQL, what the
    run's backends were doing when sampled."""
    cores, wall = os.cpu_count() or 1, c["wall_s"]
    lines = [f"    CPU over the {wall:.0f} s of the run ({cores} cores = {cores * wall:.0f} CPU-s):"]
    for role, spent in c["cpu_s"].items():
        lines.append(f"      {role}: {spent:.1f} CPU-s = {spent / (cores * wall):.0%} of the machine")
    for role, waits in sorted(c["waits"].items()):
        total = sum(waits.values())
        top = ", ".join(f"{w} {n / total:.0%}" for w, n in sorted(waits.items(), key=lambda kv: -kv[1])[:6])
        lines.append(f"    {role} backends, {total} busy samples: {top}")
    return lines


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        _serve(argv[1], int(argv[2]), argv[3], argv[4] == "1", int(argv[5]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--seconds", type=float, default=8, help="length of each wrk run")
    parser.add_argument("--latency-seconds", type=float, default=60)
    parser.add_argument("--rate", type=int, default=1000, help="events/s for the latency run")
    parser.add_argument("--only", default="abcp", help="which of a, b, c, p to run")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections for (a), (b)")
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes, for leadscore and the bare baseline alike"
    )
    parser.add_argument(
        "--processors", type=int, default=0, help="`leadscore process` children scoring (0: in the server)"
    )
    args = parser.parse_args(argv)
    global CONNECTIONS, WORKERS, PROCESSORS
    CONNECTIONS, WORKERS, PROCESSORS = args.connections, args.workers, args.processors
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    with tempfile.TemporaryDirectory(prefix="leadscore-ingest-") as tmp:
        workdir = Path(tmp)
        for engine in engines:
            a = b = c = None
            # other work on the machine skews every figure: the load average is printed with each
            if "a" in args.only:
                a = single_events(engine, workdir, args.seconds)
                print(f"{engine} (a) [load {os.getloadavg()[0]:.1f}]: {a}", flush=True)
            if "b" in args.only:
                b = batches(engine, workdir, args.seconds)
                print(f"{engine} (b) [load {os.getloadavg()[0]:.1f}]: {b}", flush=True)
            if "c" in args.only:
                c = latency(engine, workdir, args.rate, args.latency_seconds)
            if a and b and c:
                print(report(engine, a, b, c), flush=True)
            if "p" in args.only:
                p = posthog_batches(engine, workdir, args.seconds)
                print(f"{engine} (p) [load {os.getloadavg()[0]:.1f}]: {p}", flush=True)
                print(posthog_report(engine, p), flush=True)


if __name__ == "__main__":
    main()
