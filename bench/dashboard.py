"""Dashboard page times with many leads: server time per page (p50, p95) for every page of the dashboard
(the list derived from the app's routes: ``tests/web_pages.py``), and each one's ratio to an empty page
(``/leads/0``: the session check and the page template around a "no such lead" message) measured in the
same run, on a real uvicorn server over loopback.

    python bench/dashboard.py                       # 100,000 leads, 1,000,000 events (SQLite)
    python bench/dashboard.py --leads 2000 --events 40000 --requests 20

Data: ``bench/datagen.py`` (deterministic) written into a fresh SQLite store, ``bench/model.yaml`` with the
lifecycle of ``bench/dashboard_lifecycle.yaml`` published (every lead scored, history recorded), one
lifecycle round (stages, MQLs assigned to the sellers), and outcomes for a share of the MQLs (accepted,
rejected, opportunities, wins) over the last weeks. A signed-in admin then requests each page
``--requests`` times, interleaved so a busy moment hits all pages alike (a page that has used up
``--page-budget`` seconds is asked no more: its figures then rest on fewer requests, printed as n).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))

import datagen  # noqa: E402

from leadscore.api import create_app  # noqa: E402
from leadscore.auth.passwords import hash_password  # noqa: E402
from leadscore.settings import Settings  # noqa: E402
from leadscore.store import Store  # noqa: E402
from live_server import serving  # noqa: E402
from web_pages import page_routes  # noqa: E402

PASSWORD = "bench password 123"
ADMIN = "bench@example.test"
SELLER = "lena.vogt@vendor.example"  # a seller of dashboard_lifecycle.yaml's EMEA team
DAY_MS = 86_400_000


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Ids:
    leads: int
    accounts: list[int]
    letter: int
    versions: tuple[int, int]


@dataclass
class Page:
    route: str  # the route template (web_pages.page_routes)
    make: Callable[[int], str]
    status: int = 200
    seller: bool = False  # asked by the seller's session instead of the admin's
    anonymous: bool = False
    times: list[float] = field(default_factory=list)
    pending: int = 0  # replies (cold one included) that said a report is still being computed


def model_text() -> str:
    return (BENCH / "model.yaml").read_text() + "\n" + (BENCH / "dashboard_lifecycle.yaml").read_text()


def build(store: Store, spec: datagen.Spec, seed: int) -> Ids:
    """Load the data, publish the model, run the lifecycle once and record outcomes; add the users, a
    dead letter and a second (draft) model version to compare."""
    from sqlalchemy import func, select

    from leadscore.lifecycle.feedback import give_feedback, record_outcome
    from leadscore.lifecycle.runner import run_round
    from leadscore.model import loads_model
    from leadscore.scoring.pipeline import publish
    from leadscore.store import dead_letters
    from leadscore.store.model_versions import add_version
    from leadscore.store.schema import accounts, lead_stages
    from leadscore.store.users import add_user

    started = time.perf_counter()
    datagen.load(store, spec)
    loaded = time.perf_counter()
    model = loads_model(model_text(), "bench/model.yaml + bench/dashboard_lifecycle.yaml")
    version, scored = publish(store, model, note="bench", as_of=spec.as_of)
    published = time.perf_counter()
    settings = Settings()
    run_round(store, settings, now_ms=spec.as_of, deliver=False)
    with store.connect() as conn:
        mqls = [i for (i,) in conn.execute(select(lead_stages.c.lead_id).where(lead_stages.c.stage == "mql"))]
        account_ids = [i for (i,) in conn.execute(select(accounts.c.id).order_by(accounts.c.id))]
    rnd = random.Random(seed)
    decided = 0
    for lead_id in sorted(mqls):
        roll = rnd.random()
        if roll > 0.6:
            continue  # still waiting for sales
        at = spec.as_of + rnd.randrange(1, 3 * 24) * 3_600_000
        decision = "rejected" if roll < 0.15 else "accepted"
        give_feedback(store, model, lead_id, decision, reason="not_icp" if decision == "rejected" else None,
                      note="", by=SELLER, at_ms=at, settings=settings, now_ms=at)  # fmt: skip
        decided += 1
        if decision == "accepted" and roll < 0.4:
            at += rnd.randrange(1, 20) * DAY_MS
            record_outcome(store, model, lead_id, "opportunity", at_ms=at, amount=None, reason=None,
                           source="bench", settings=settings, now_ms=at)  # fmt: skip
            if roll < 0.25:
                at += rnd.randrange(1, 30) * DAY_MS
                record_outcome(store, model, lead_id, "won", at_ms=at, amount=1000.0, reason=None,
                               source="bench", settings=settings, now_ms=at)  # fmt: skip
    with store.begin() as conn:
        add_user(conn, ADMIN, "Bench admin", "admin", hash_password(PASSWORD), 0)
        add_user(conn, SELLER, "Lena Vogt", "sales", hash_password(PASSWORD), 0)
        letter = dead_letters.add(conn, {"message_id": "bench-1", "type": "track"}, "bench: a dead letter", 0)
        draft, _ = add_version(
            conn, model.model, model_text().replace("points: 20", "points: 19", 1), 0, "draft"
        )
        leads_count = int(conn.execute(select(func.count()).select_from(lead_stages)).scalar_one())
    print(
        f"{spec.leads:,} leads, {spec.events:,} events: load {loaded - started:.1f} s, "
        f"publish (score {scored:,} leads + history) {published - loaded:.1f} s, "
        f"lifecycle and {decided:,} sales decisions on {len(mqls):,} MQLs "
        f"{time.perf_counter() - published:.1f} s ({leads_count:,} leads with a stage)",
        flush=True,
    )
    return Ids(spec.leads, account_ids, letter, (version.id, draft.id))


def pages(ids: Ids, rnd: random.Random) -> dict[str, Page]:
    """Every page of the dashboard, by name; fails when ``web_pages.page_routes()`` has one more."""
    old, new = ids.versions
    every = {
        "empty page": Page("/leads/{lead_id}", lambda i: "/leads/0", status=404),
        "sign-in": Page("/signin", lambda i: "/signin", anonymous=True),
        "leads list": Page("/leads", lambda i: f"/leads?page={1 + i % 20}" + ("&band=hot" if i % 2 else "")),
        "lead page": Page("/leads/{lead_id}", lambda i: f"/leads/{rnd.randint(1, ids.leads)}"),
        "line events": Page(
            "/leads/{lead_id}/lines/{rule_id}", lambda i: f"/leads/{rnd.randint(1, ids.leads)}/lines/blog"
        ),
        "matrix": Page("/leads/matrix", lambda i: "/leads/matrix" + ("?band=warm" if i % 2 else "")),
        "hand-off (admin)": Page("/handoff", lambda i: "/handoff"),
        "hand-off (seller)": Page("/handoff", lambda i: "/handoff", seller=True),
        "funnel": Page("/funnel", lambda i: "/funnel" + ("?by=lead_source" if i % 2 else "")),
        "accounts": Page("/accounts", lambda i: "/accounts"),
        "account page": Page("/accounts/{account_id}", lambda i: f"/accounts/{rnd.choice(ids.accounts)}"),
        "model": Page("/model", lambda i: "/model"),
        "builder values": Page(
            "/model/builder/values", lambda i: "/model/builder/values?cond_field=lead_source&section=fit"
        ),
        "model diff": Page("/model/diff", lambda i: f"/model/diff?old={old}&new={new}"),
        "evaluation": Page("/evaluation", lambda i: "/evaluation"),
        "review": Page("/review", lambda i: "/review"),
        "review proposals": Page("/review", lambda i: "/review?proposals=1"),
        "dead letters": Page("/deadletters", lambda i: "/deadletters"),
        "dead letter": Page("/deadletters/{letter_id}", lambda i: f"/deadletters/{ids.letter}"),
        "tracking code": Page("/tracking", lambda i: "/tracking"),
        "users": Page("/users", lambda i: "/users"),
        "user notifications": Page("/users/{user_id}/notifications", lambda i: "/users/1/notifications"),
        "profile (seller)": Page("/profile", lambda i: "/profile", seller=True),
        "API keys": Page("/keys", lambda i: "/keys"),
    }
    missing = page_routes() - {p.route for p in every.values()}
    assert not missing, f"pages the benchmark does not ask for: {sorted(missing)}"
    return every


def signed_in(url: str, email: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=600)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/signin").text)
    assert token
    done = client.post("/signin", data={"email": email, "password": PASSWORD, "csrf_token": token.group(1)})
    assert done.status_code in (200, 303), done.text
    return client


def measure(url: str, every: dict[str, Page], requests: int, budget_s: float) -> dict[str, float]:
    """Ask each page ``requests`` times, interleaved; returns the first (cold) request's time per page."""
    admin, seller, anonymous = signed_in(url, ADMIN), signed_in(url, SELLER), httpx.Client(base_url=url)
    cold: dict[str, float] = {}
    try:
        for i in range(requests + 1):  # request 0 warms each page up (imports, caches) and is kept apart
            for name, p in every.items():
                if sum(p.times) / 1000 > budget_s:
                    continue
                client = anonymous if p.anonymous else seller if p.seller else admin
                t0 = time.perf_counter()
                response = client.get(p.make(i))
                took = (time.perf_counter() - t0) * 1000
                assert response.status_code == p.status, (name, response.status_code, response.text[:300])
                p.pending += "being computed in the background" in response.text
                if i == 0:
                    cold[name] = took
                    if "Cannot evaluate yet" in response.text:
                        print(f"  note: {name} says it cannot evaluate on this data", flush=True)
                else:
                    p.times.append(took)
    finally:
        for c in (admin, seller, anonymous):
            c.close()
    return cold


def wait_for_reports(url: str, every: dict[str, Page], limit_s: float) -> None:
    """Ask each page that says its report is being computed in the background again every 5 s until it
    shows the numbers (at most ``limit_s`` in all): the run then measures the pages with their figures
    (``--wait-reports``), not the page that says they are under way."""
    admin, seller, anonymous = signed_in(url, ADMIN), signed_in(url, SELLER), httpx.Client(base_url=url)
    started = time.perf_counter()
    try:
        for name, p in every.items():
            client = anonymous if p.anonymous else seller if p.seller else admin
            while "being computed in the background" in client.get(p.make(0)).text:
                if time.perf_counter() - started > limit_s:
                    print(f"  {name}: still being computed after {limit_s:.0f} s", flush=True)
                    break
                time.sleep(5)
            else:
                print(
                    f"  {name}: computed, {time.perf_counter() - started:.0f} s after the warm-up", flush=True
                )
    finally:
        for c in (admin, seller, anonymous):
            c.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="requests per page")
    parser.add_argument(
        "--page-budget", type=float, default=120.0, help="seconds of requests per page at most"
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--db", help="keep the database here (built when missing, reused when present)")
    parser.add_argument("--build-only", action="store_true", help="build the database (--db) and stop")
    parser.add_argument("--skip", action="append", default=[], help="a page not to ask for (repeatable)")
    parser.add_argument(
        "--wait-reports",
        type=float,
        default=0.0,
        help="seconds to wait, before measuring, for pages computed in the background to have their figures",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or str(Path(tmp) / "dashboard.db")
        spec = datagen.Spec(leads=args.leads, events=args.events, seed=args.seed)
        fresh = not Path(db).exists()
        store = Store.from_url(db)
        ids = build(store, spec, args.seed) if fresh else reopened(store, spec)
        if args.build_only:
            store.dispose()
            return 0
        every = pages(ids, random.Random(args.seed))
        for name in args.skip:
            del every[name]
        app = create_app(Settings(database_url=db, run_processor=False), store)
        print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        with serving(app) as url:
            # the server answers at once; its dashboard warm-up (web/warmup.py) runs beside it for a moment
            # after the start: the cold requests are asked once it is done, as a person's first click is
            started = time.perf_counter()
            assert app.state.leadscore.warmed.wait(120), "the dashboard's warm-up did not end"
            print(f"warm-up done {time.perf_counter() - started:.1f} s after the server answered", flush=True)
            if args.wait_reports:
                wait_for_reports(url, every, args.wait_reports)
            cold = measure(url, every, args.requests, args.page_budget)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)
        store.dispose()
    print(report(every, cold, args.skip))
    return 0


def reopened(store: Store, spec: datagen.Spec) -> Ids:
    """The ids of a database an earlier run built (``--db``)."""
    from sqlalchemy import func, select

    from leadscore.store.schema import accounts, dead_letters, model_versions

    with store.connect() as conn:
        account_ids = [i for (i,) in conn.execute(select(accounts.c.id).order_by(accounts.c.id))]
        letter = conn.execute(select(func.min(dead_letters.c.id))).scalar_one()
        versions = [i for (i,) in conn.execute(select(model_versions.c.id).order_by(model_versions.c.id))]
    return Ids(spec.leads, account_ids, int(letter), (versions[0], versions[1]))


def report(every: dict[str, Page], cold: dict[str, float], skipped: list[str]) -> str:
    empty = statistics.median(every["empty page"].times)
    lines = [
        f"\nempty page p50 {empty:.1f} ms: the baseline of the ratio column\n"
        f"\n{'page':<20}{'n':>4}{'cold ms':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'p95 / empty':>13}"
    ]
    for name, p in every.items():
        if not p.times:
            lines.append(f"{name:<20}{0:4d}{cold.get(name, 0):9.1f}  (over its budget on the first request)")
            continue
        p95 = percentile(p.times, 0.95)
        lines.append(
            f"{name:<20}{len(p.times):4d}{cold.get(name, 0):9.1f}{statistics.median(p.times):9.1f}"
            f"{p95:9.1f}{max(p.times):9.1f}{p95 / empty:12.1f}x"
        )
    for name, p in every.items():
        if p.pending:
            lines.append(
                f"  {name}: {p.pending} of {len(p.times) + 1} replies said a report was being computed"
            )
    slow = [
        name
        for name, p in every.items()
        if not p.times or percentile(p.times, 0.95) > 300 or cold.get(name, 0) > 300
    ]
    lines.append(f"not asked for (--skip): {', '.join(skipped) or 'none'}")
    lines.append(f"\npages over 300 ms (p95 or the cold request): {', '.join(slow) if slow else 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
