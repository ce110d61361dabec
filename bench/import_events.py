"""Backfill benchmark: ``leadscore import events`` against DuckDB's ``read_json`` of the same file, in one run.

    python bench/import_events.py [--lines N] [--users U] [--engine sqlite|postgres] [--keep DIR]

Generates a Segment export (JSON Lines as Segment's warehouse/S3 export writes them: track, page,
identify, group, alias with context, library, IP, user agent; about 330 bytes a line; 1 % of the lines
are resent copies of earlier messages), then times, in this order and in the same process:

(a) DuckDB ``read_json`` of the file into a table (``format='newline_delimited'``): the floor a
    columnar engine reading the same bytes sets;
(b) ``leadscore import events FILE`` into a fresh store with a model published (parse, validate,
    dedupe, store, apply identities, one rescore and history pass at the end), as a child process so its
    peak RSS is measured too. Its CPU seconds include those of the process parsing lines beside it
    (``--parse-workers``; 0 parses in the importing process).

Prints events/s of each and the ratio (target: import >= 50,000 events/s, or within 3x of DuckDB).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

PG_URL = os.environ.get("LEADSCORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MODEL = """
model: import_bench
fit:
  - {id: title, name: Marketing title, when: {attribute: job_title, regex: market}, points: 20}
  - {id: size, name: 50 or more employees, when: {attribute: employees, gte: 50}, points: 10}
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 10}
  - {id: demo, name: Demo requested, event: {type: track, name: Demo Requested}, points: 40, half_life: none}
  - {id: ebook, name: Ebook, event: {type: track, name: Ebook Downloaded}, points: 15, half_life: 30d}
scale: {fit_max: 30, engagement_max: 100, bands: {hot: 70, warm: 30}}
"""
PATHS = ["/", "/pricing", "/pricing/enterprise", "/blog/lead-scoring", "/docs/start", "/customers", "/about"]
EVENTS = ["Ebook Downloaded", "Demo Requested", "Signed Up", "Video Played", "Clicked"]
TITLES = ["Marketing Manager", "CTO", "Head of Marketing", "Engineer", "Sales Lead"]
START_MS = 1_700_000_000_000
SPAN_MS = 180 * 86_400_000


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def segment_lines(lines: int, users: int, seed: int = 7) -> Iterator[bytes]:
    """``lines`` Segment messages as an export holds them (times ascending, 1 % resent)."""
    rnd = random.Random(seed)
    step = SPAN_MS // max(lines, 1)
    sent: list[bytes] = []
    for n in range(lines):
        if sent and rnd.random() < 0.01:
            yield rnd.choice(sent)
            continue
        user = rnd.randrange(users)
        ts = START_MS + n * step
        kind = rnd.choices(["page", "track", "identify", "group", "alias"], [60, 30, 6, 3, 1])[0]
        known = rnd.random() < 0.8
        message: dict[str, Any] = {
            "type": kind,
            "messageId": f"ajs-{uuid.UUID(int=rnd.getrandbits(128))}",
            "anonymousId": f"anon-{user}",
            "timestamp": _iso(ts),
            "receivedAt": _iso(ts + 40),
            "sentAt": _iso(ts + 20),
            "originalTimestamp": _iso(ts),
            "context": {
                "library": {"name": "analytics.js", "version": "4.1.0"},
                "ip": f"10.{user % 250}.{n % 250}.7",
                "userAgent": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
                "locale": "en-US",
            },
        }
        if known or kind in ("identify", "group", "alias"):
            message["userId"] = f"user-{user}"
        if kind == "page":
            path = rnd.choice(PATHS)
            message["properties"] = {"path": path, "url": f"https://example.com{path}", "title": "Example"}
        elif kind == "track":
            message["event"] = rnd.choice(EVENTS)
            message["properties"] = {"plan": rnd.choice(["free", "team", "enterprise"])}
        elif kind == "identify":
            message["traits"] = {
                "email": f"user-{user}@example{user % 97}.com",
                "firstName": "Ann",
                "job_title": rnd.choice(TITLES),
                "employees": rnd.randrange(1, 5000),
            }
        elif kind == "group":
            message["groupId"] = f"org-{user % 500}"
            message["traits"] = {"name": f"Org {user % 500}", "website": f"https://org{user % 500}.example"}
        else:
            message["previousId"] = f"anon-{user}"
        line = orjson.dumps(message) + b"\n"
        sent.append(line) if len(sent) < 10_000 else None
        yield line


def write_export(path: Path, lines: int, users: int) -> int:
    with path.open("wb") as out:
        for line in segment_lines(lines, users):
            out.write(line)
    return path.stat().st_size


def duckdb_read(path: Path) -> float:
    import duckdb

    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(
        f"CREATE TABLE segment AS SELECT * FROM read_json('{path}', format='newline_delimited', "
        "maximum_object_size=33554432)"
    )
    elapsed = time.perf_counter() - started
    rows = con.execute("SELECT count(*) FROM segment").fetchone()
    assert rows is not None
    con.close()
    return elapsed


@contextmanager
def database(engine: str, workdir: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield str(workdir / "import.db")
        return
    from sqlalchemy import create_engine, text

    schema = f"bench_import_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{PG_URL}{'&' if '?' in PG_URL else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def leadscore(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-c", "from leadscore.cli.main import main; main()", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})


def import_run(path: Path, db: str, workdir: Path, workers: int | None) -> tuple[float, float, int, str]:
    """Wall seconds, CPU seconds and peak RSS (KiB) of ``leadscore import events`` in a child process
    (CPU seconds: comparable across runs on a loaded machine, where wall time is not); its summary."""
    model = workdir / "model.yaml"
    model.write_text(MODEL)
    published = leadscore("model", "publish", str(model), "--db", db)
    assert published.returncode == 0, published.stderr + published.stdout
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    before, cpu_before = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    extra = [] if workers is None else ["--parse-workers", str(workers)]
    done = leadscore("import", "events", str(path), "--no-progress", "--db", db, *extra)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    peak, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime - cpu_before
    assert done.returncode in (0, 1), done.stderr + done.stdout
    return elapsed, cpu, max(peak, before), done.stdout


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=300_000, help="lines in the generated export")
    parser.add_argument("--users", type=int, default=20_000, help="distinct people in it")
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument(
        "--parse-workers", type=int, help="passed to `import events --parse-workers` (default: its own)"
    )
    parser.add_argument("--keep", type=Path, help="write the export (and database) here and keep them")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        export = workdir / "segment-export.jsonl"
        size = write_export(export, args.lines, args.users)
        print(f"export: {args.lines:,} lines, {args.users:,} people, {size / 1e6:.0f} MB ({export})")
        duck_s = duckdb_read(export)
        with database(args.engine, workdir) as db:
            import_s, cpu_s, peak_kib, summary = import_run(export, db, workdir, args.parse_workers)
        print(summary)
        print(f"(a) DuckDB read_json:           {duck_s:7.2f} s  {args.lines / duck_s:>10,.0f} lines/s")
        print(
            f"(b) leadscore import ({args.engine}): {import_s:7.2f} s  {args.lines / import_s:>10,.0f} lines/s"
            f"  ({cpu_s:.1f} CPU-s)  peak RSS {peak_kib / 1024:.0f} MiB"
        )
        print(f"ratio import / read_json: {import_s / duck_s:.1f}x (target <= 3x, or >= 50,000 events/s)")
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"load average at the end (1, 5, 15 min): {load} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
