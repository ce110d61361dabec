"""The scan of an erasure for mentions of her (``privacy.erase.mentions``): others' events against the
identifiers of a person merged many times (a user id and an anonymous id a merge, plus her e-mail and
name), the current scan against the one before it (an SQL pass a value for each identifier, then an
alternation of them all; kept below as ``old_mentions``), in the same run on the same store.

    python bench/erase_mentions.py                          # 20,000 events; 10, 80, 300 merges; SQLite
    python bench/erase_mentions.py --merges 10 80 --url postgresql://postgres@127.0.0.1:5432/test

Prints the scan's CPU seconds (this process; on a local PostgreSQL its server process's too, read from
/proc) and wall seconds for each, and their ratio. Both must find the same mentions (checked: a
difference stops the run). Nothing is timed against a target.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rescore import add_url_option, url_store
from sqlalchemy import Connection, select, text

from leadscore.compile.dialects import LowerText
from leadscore.model.text_case import fold_case
from leadscore.privacy.erase import MENTIONS_READ, _text_columns, _text_of, mentions
from leadscore.privacy.tables import present_tables
from leadscore.store import Store
from leadscore.store.id_lists import contains_any
from leadscore.store.schema import events


def old_mentions(conn: Connection, identifiers: tuple[str, ...]) -> dict[str, int]:
    """The scan before (main at ca3e4fa): the rows containing one identifier found in SQL, a pass over
    the value for each; then an alternation of them all on each."""
    found: dict[str, int] = {}
    folded = sorted({fold_case(i) for i in identifiers})
    sqlite = conn.dialect.name == "sqlite"
    alternatives = "|".join(re.escape(i) for i in folded)
    words = re.compile(rf"(?<![\w.@+-])(?:{alternatives})(?![\w@+-]|\.\w)", re.IGNORECASE)
    for table in present_tables(conn):
        for column in _text_columns(table):
            value_text = _text_of(column, sqlite)
            like = contains_any(LowerText.of_any_text(value_text), folded)
            rows = conn.execute(select(value_text).where(like).execution_options(yield_per=MENTIONS_READ))
            hits = sum(1 for value in rows.scalars() if words.search(fold_case(value)))
            if hits:
                found[f"{table.name}.{column.name}"] = hits
    return found


def her_identifiers(merges: int) -> tuple[str, ...]:
    ids = ["erin@example.com", "Erin Example"]
    for k in range(merges + 1):
        ids += [f"usr-erin-{k:04d}", f"anon-{k:04d}-5f0c2d7e-8b1a-4c3e-9d6f-{k:012x}"]
    return tuple(ids)


def fill(store: Store, n: int) -> None:
    """``n`` page views of 2,000 other people; one in 500 names one of her ids in its properties."""
    rows = []
    for i in range(n):
        person = f"usr-{i % 2000:05d}"
        note = f"forwarded by usr-erin-{i % 7:04d}" if i % 500 == 0 else f"visit {i}"
        rows.append({
            "message_id": f"ev-{i}", "type": "page", "name": "Pricing", "person_key": f"u:{person}",
            "user_id": person, "anonymous_id": f"anon-{i % 3000:05d}-other", "path": f"/pricing/{i % 40}",
            "url": f"https://www.example.com/pricing/{i % 40}?utm_source=news&ref={person}",
            "properties": {"path": f"/pricing/{i % 40}", "title": "Pricing · Example Inc.", "note": note,
                           "referrer": f"https://www.google.com/search?q=lead+scoring+{i % 97}"},
            "context": {"ip": f"198.51.100.{i % 250}", "locale": "de-DE",
                        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0"},
            "ts": 1_700_000_000_000 + i, "received_ms": 1_700_000_000_000 + i, "source": "bench",
        })  # fmt: skip
    with store.begin() as conn:
        conn.execute(events.delete())
        for start in range(0, n, 5000):
            conn.execute(events.insert(), rows[start : start + 5000])


def _server_cpu(conn: Connection) -> float | None:
    """CPU seconds of this connection's PostgreSQL process, where it runs on this machine."""
    if conn.dialect.name != "postgresql":
        return 0.0
    pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / 100  # utime, stime in clock ticks (USER_HZ 100)


def measure(
    store: Store, scan: Any, identifiers: tuple[str, ...]
) -> tuple[dict[str, int], float, float | None, float]:
    with store.connect() as conn:
        server = _server_cpu(conn)
        wall, cpu = time.perf_counter(), time.process_time()
        found = scan(conn, identifiers)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        after = _server_cpu(conn)
    return found, cpu, None if server is None or after is None else after - server, wall


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_url_option(parser)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--merges", type=int, nargs="+", default=[10, 80, 300])
    parser.add_argument("--skip-old-over", type=int, default=10**9, help="no old scan past this many merges")
    args = parser.parse_args()
    with url_store(args.url) as store:
        run(store, args)


def run(store: Store, args: argparse.Namespace) -> None:
    fill(store, args.events)
    print(f"{store.dialect}, {args.events:,} others' events")
    print("merges  ids   scan     CPU-s  server CPU-s  wall-s   mentions")
    for merges in args.merges:
        ids = her_identifiers(merges)
        runs = [("new", mentions)] + ([("old", old_mentions)] if merges <= args.skip_old_over else [])
        results = {}
        for label, scan in runs:
            found, cpu, server, wall = measure(store, scan, ids)
            results[label] = (found, cpu + (server or 0))
            shown = "-" if server is None else f"{server:.2f}"
            print(
                f"{merges:6d} {len(ids):4d}   {label}  {cpu:8.2f}  {shown:>12}  {wall:6.2f}   {found}",
                flush=True,
            )
        if "old" in results:
            if results["old"][0] != results["new"][0]:
                raise SystemExit(f"the scans disagree at {merges} merges")
            old, new = results["old"][1], results["new"][1]
            print(f"{'':12}old / new CPU (process + server): {old / max(new, 1e-9):.1f}x")


if __name__ == "__main__":
    main()
