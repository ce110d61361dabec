"""The rule builder's server times with many leads: the model page (builder pickers included), a live count
for a fit condition and for an engagement condition, and a value picker, each as p50 / p95 and as a ratio
to an empty page (``/leads/0``) measured in the same run, on a real uvicorn server over loopback.

    python bench/builder.py                       # 100,000 leads, 1,000,000 events (SQLite)
    python bench/builder.py --leads 2000 --events 40000 --requests 10

Data: ``bench/datagen.py`` (deterministic) into a fresh SQLite store and ``bench/model.yaml`` published,
as ``bench/dashboard.py`` does.
"""

from __future__ import annotations

import argparse
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
from leadscore.model.source import read_stored_text  # noqa: E402
from leadscore.scoring.pipeline import publish  # noqa: E402
from leadscore.scoring.run import now_ms  # noqa: E402
from leadscore.settings import Settings  # noqa: E402
from leadscore.store import Store  # noqa: E402
from leadscore.store.users import add_user  # noqa: E402
from leadscore.web.data.remembered import forget  # noqa: E402
from live_server import serving  # noqa: E402

PASSWORD = "bench password 123"


def _rows(field: str, op: str, value: str) -> dict[str, list[str]]:
    return {
        "cond_field": [field, "", "", ""],
        "cond_op": [op, "equals", "equals", "equals"],
        "cond_value": [value, "", "", ""],
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20, help="requests per kind")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "builder.db")
        store = Store.from_url(db)
        started = time.perf_counter()
        # the data ends now: the builder counts the events of the last 90 days before the present
        spec = datagen.Spec(leads=args.leads, events=args.events, seed=args.seed, as_of=now_ms())
        datagen.load(store, spec)
        model_path = BENCH / "model.yaml"
        draft = read_stored_text(model_path)
        publish(store, load_model(model_path), text=draft, note="bench", as_of=spec.as_of)
        with store.begin() as conn:
            add_user(conn, "bench@example.test", "Bench", "marketing", hash_password(PASSWORD), 0)
        print(f"{args.leads:,} leads, {args.events:,} events: ready in {time.perf_counter() - started:.1f} s")
        app = create_app(Settings(database_url=db, run_processor=False), store)
        with serving(app) as url, httpx.Client(base_url=url, timeout=120) as client:
            token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text)
            assert token
            client.post(
                "/signin",
                data={"email": "bench@example.test", "password": PASSWORD, "csrf_token": token.group(1)},
            )
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/model").text)
            assert csrf
            base = {"csrf_token": csrf.group(1), "draft": draft}
            shown: list[float] = []  # from the first ask to the count shown, asking again every 50 ms
            firsts: list[float] = []  # the first reply (the request the page waits for)

            def engagement() -> httpx.Response:
                """A cold engagement count (nothing remembered): the first reply is what is timed as the
                request; asked again until the count is there, as the page does (it waits 1 s, not 50 ms)."""
                forget()
                data = {
                    **base,
                    "section": "engagement",
                    "event_type": "page",
                    **_rows("path", "prefix", "/pricing"),
                }
                t0 = time.perf_counter()
                first = reply = client.post("/model/builder/count", data=data)
                firsts.append((time.perf_counter() - t0) * 1000)
                while "counting the events" in reply.text:
                    time.sleep(0.05)
                    reply = client.post("/model/builder/count", data=data)
                shown.append((time.perf_counter() - t0) * 1000)
                last[0] = reply
                return first

            last: list[httpx.Response] = []
            last.append(client.get("/leads/0"))
            kinds = {
                "empty page": lambda: client.get("/leads/0"),
                "model page + pickers": lambda: client.get("/model"),
                "count: fit": lambda: client.post(
                    "/model/builder/count",
                    data={**base, "section": "fit", **_rows("job_title", "contains", "growth")},
                ),
                "count: engagement": lambda: engagement(),
                "value picker": lambda: client.get(
                    "/model/builder/values", params={"cond_field": "country", "section": "fit"}
                ),
            }
            for name, make in kinds.items():  # warm-up; what the counts counted
                text = make().text if name != "count: engagement" else (make(), last[0])[1].text
                if name.startswith("count"):
                    found = re.search(r"The whole rule:</strong>(.*?)</li>", text, re.S)
                    print(f"{name}: {re.sub(r'<[^>]+>', '', found.group(1)).strip() if found else '?'}")
            times: dict[str, list[float]] = {k: [] for k in kinds}
            for _ in range(args.requests):
                for name, make in kinds.items():
                    t0 = time.perf_counter()
                    response = make()
                    times[name].append(
                        (time.perf_counter() - t0) * 1000 if name != "count: engagement" else firsts[-1]
                    )
                    assert response.status_code == (404 if name == "empty page" else 200), name
        store.dispose()
    empty = statistics.median(times["empty page"])
    print(f"\n{'request':<24}{'p50 ms':>9}{'p95 ms':>9}{'p50 / empty':>13}")
    for name, values in times.items():
        p50 = statistics.median(values)
        print(f"{name:<24}{p50:9.1f}{percentile(values, 0.95):9.1f}{p50 / empty:12.1f}x")
    shown = shown[1:]  # less the warm-up's
    p50 = statistics.median(shown)
    print(f"{'engagement until shown':<24}{p50:9.1f}{percentile(shown, 0.95):9.1f}{p50 / empty:12.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
