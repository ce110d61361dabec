"""The account score of a crowded account: one account of ``--people`` contacts (an identify, a group call
of one domain and a page view each, what a public write key can send), then CPU seconds and wall seconds
of ``lifecycle.accounts.refresh_accounts`` of that account (what the runner runs in its write transaction
on every round touching one of its contacts, rolled back here) and of the account page's data
(``web.data.account.load``: its contacts, activity and weekly account score).

``--html N`` also asks a signed-in marketing user's browser for the whole page (``/accounts/{id}``, served
in this process) N times: the process's CPU seconds (server and client) and the HTML's bytes.

``--db PATH`` keeps the SQLite store between runs (built when missing), so the start code and a branch
can be measured on the same store in one sitting: run it with ``PYTHONPATH`` at each one's ``src``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from leadscore.ingest.segment import normalise
from leadscore.lifecycle.accounts import refresh_accounts
from leadscore.model import load_model
from leadscore.scoring.pipeline import active_model, ingest, publish
from leadscore.store import Store
from leadscore.store.schema import accounts, users
from leadscore.web.data import account as account_data

MODEL = Path(__file__).resolve().parents[1] / "examples" / "b2b_saas" / "model.yaml"
NOW = 1_780_000_000_000
DAY = 86_400_000
BATCH = 1_000  # people per ingest transaction
VIEWER = "bench@example.test"  # a marketing user (``--html``), added when missing


def people(start: int, stop: int) -> list[dict[str, Any]]:
    """Each person's identify, group call (domain y.com) and page view, one to 180 days before now (so the
    page charts the account score at 26 week ends)."""
    return [m for i in range(start, stop) for m in (
        {"type": "identify", "userId": f"p{i}", "messageId": f"i{i}", "timestamp": NOW - 181 * DAY,
         "traits": {"email": f"p{i}@y.com"}},
        {"type": "group", "userId": f"p{i}", "groupId": "y", "messageId": f"g{i}", "timestamp": NOW - 181 * DAY,
         "traits": {"domain": "y.com", "name": "Y"}},
        {"type": "page", "userId": f"p{i}", "messageId": f"v{i}", "timestamp": NOW - (1 + i % 180) * DAY - i,
         "properties": {"path": "/pricing"}},
    )]  # fmt: skip


def build(store: Store, count: int) -> None:
    publish(store, load_model(MODEL), as_of=NOW - 182 * DAY)
    for start in range(0, count, BATCH):
        messages = people(start, min(count, start + BATCH))
        ingest(store, [normalise(m, received_ms=NOW) for m in messages], source="bench", as_of=NOW)


def timed(run: Any) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    run()
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=20_000, help="contacts in the account")
    parser.add_argument("--db", type=Path, required=True, help="the SQLite file (built when missing)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the lowest is printed")
    parser.add_argument("--page-repeat", type=int, help="runs of the page (default: --repeat)")
    parser.add_argument("--label", default="", help="printed before the figures")
    parser.add_argument("--html", type=int, default=0, help="requests of the whole page (0: none)")
    args = parser.parse_args()
    fresh = not args.db.exists()
    store = Store.from_url(str(args.db))
    try:
        if fresh:
            print(f"building {args.people} contacts: {timed(lambda: build(store, args.people))[1]:.1f} s")
        with store.connect() as conn:
            account_id = int(
                conn.execute(select(accounts.c.id).where(accounts.c.domain == "y.com")).scalar_one()
            )
            active = active_model(conn)
            assert active is not None
            model = active.model
            conn.rollback()
            refresh, page = [], []
            for _ in range(args.repeat):
                trans = conn.begin()
                refresh.append(timed(lambda: refresh_accounts(conn, model, [account_id], NOW)))
                trans.rollback()
            for _ in range(args.repeat if args.page_repeat is None else args.page_repeat):
                page.append(timed(lambda: account_data.load(conn, model, account_id, NOW)))
                conn.rollback()
        for name, runs in (("refresh_accounts", refresh), ("account page", page)):
            cpu, wall = min(r[0] for r in runs), min(r[1] for r in runs)
            print(f"{args.label} {name}: {cpu:.3f} CPU-s, {wall:.3f} s wall (lowest of {len(runs)})")
        if args.html:
            served(store, args.db, account_id, args.html, args.label)
    finally:
        store.dispose()


def served(store: Store, db: Path, account_id: int, requests: int, label: str) -> None:
    """The whole page through the app, as a signed-in marketing user asks for it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dashboard import PASSWORD, signed_in

    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.settings import Settings
    from leadscore.store.users import add_user
    from live_server import serving

    with store.begin() as conn:
        if not conn.execute(select(func.count()).where(users.c.email == VIEWER)).scalar_one():
            add_user(conn, VIEWER, "Bench", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(db), run_processor=False), store)
    with serving(app) as url:
        client = signed_in(url, VIEWER)
        answers: list[Any] = []
        runs = [timed(lambda: answers.append(client.get(f"/accounts/{account_id}"))) for _ in range(requests)]
        assert all(a.status_code == 200 for a in answers), answers[-1].text[:500]
        size = len(answers[-1].content)
    cpu, wall = min(r[0] for r in runs), min(r[1] for r in runs)
    print(f"{label} whole page: {cpu:.3f} CPU-s, {wall:.3f} s wall (lowest of {len(runs)}), {size:,} bytes")


if __name__ == "__main__":
    main()
