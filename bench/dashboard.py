"""Dashboard page times with many leads: server time per page (p50, p95) for the leads list (paginated),
the lead page (ledger + journey) and the fit × engagement matrix, and each one's ratio to an empty page
(``/leads/0``: the session check and the page template around a "no such lead" message) measured in the same run, on a real uvicorn server over loopback.

    python bench/dashboard.py                       # 100,000 leads, 1,000,000 events (SQLite)
    python bench/dashboard.py --leads 2000 --events 40000 --requests 20

Data: ``bench/datagen.py`` (deterministic) written into a fresh SQLite store, ``bench/model.yaml``
published (every lead scored, history recorded), then a signed-in session requests each page
``--requests`` times, interleaved so a busy moment hits all pages alike: list pages 1–20 of the default
sort and of the hot band; lead pages of random leads; the matrix unfiltered and for one band.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

import datagen  # noqa: E402

from leadscore.api import create_app  # noqa: E402
from leadscore.auth.passwords import hash_password  # noqa: E402
from leadscore.model import load_model  # noqa: E402
from leadscore.scoring.pipeline import publish  # noqa: E402
from leadscore.settings import Settings  # noqa: E402
from leadscore.store import Store  # noqa: E402
from leadscore.store.users import add_user  # noqa: E402
from live_server import serving  # noqa: E402

PASSWORD = "bench password 123"


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="requests per page kind")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "dashboard.db")
        store = Store.from_url(db)
        started = time.perf_counter()
        spec = datagen.Spec(leads=args.leads, events=args.events, seed=args.seed)
        datagen.load(store, spec)
        loaded = time.perf_counter()
        _, scored = publish(store, load_model(BENCH / "model.yaml"), note="bench", as_of=spec.as_of)
        published = time.perf_counter()
        with store.begin() as conn:
            add_user(conn, "bench@example.test", "Bench", "marketing", hash_password(PASSWORD), 0)
        print(
            f"{args.leads:,} leads, {args.events:,} events: load {loaded - started:.1f} s, "
            f"publish (score {scored:,} leads + history) {published - loaded:.1f} s",
            flush=True,
        )
        app = create_app(Settings(database_url=db, run_processor=False), store)
        with serving(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text)
            assert token
            signed = client.post(
                "/signin",
                data={"email": "bench@example.test", "password": PASSWORD, "csrf_token": token.group(1)},
            )
            assert signed.status_code in (200, 303), signed.text
            rnd = random.Random(args.seed)
            kinds = {
                "empty page": lambda i: "/leads/0",
                "leads list": lambda i: f"/leads?page={1 + i % 20}" + ("&band=hot" if i % 2 else ""),
                "lead page": lambda i: f"/leads/{rnd.randint(1, args.leads)}",
                "matrix": lambda i: "/leads/matrix" + ("?band=warm" if i % 2 else ""),
            }
            for path in ("/leads/0", "/leads", "/leads/1", "/leads/matrix"):  # warm-up
                client.get(path)
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for i in range(args.requests):
                for name, make in kinds.items():
                    t0 = time.perf_counter()
                    response = client.get(make(i))
                    times[name].append((time.perf_counter() - t0) * 1000)
                    assert response.status_code == (404 if name == "empty page" else 200), (
                        name,
                        response.status_code,
                    )
        store.dispose()
    empty = statistics.median(times["empty page"])
    print(f"\n{'page':<22}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p50 / empty':>13}")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:<22}{p50:9.1f}{percentile(values, 0.95):9.1f}{max(values):9.1f}{p50 / empty:12.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
