"""One person's explanation after a page-view flood, against one of a person with a few events (in the
same run): CPU seconds, peak Python memory and the size of the JSON the API answers.

    python bench/explain_flood.py                      # 20,000 page views, SQLite
    python bench/explain_flood.py --views 50000 --url postgresql://postgres@127.0.0.1:5432/test

A write key can send any number of page views for one user id. Her explanation (the lead page, ``leadscore
explain``, ``GET /v1/leads/{ref}/explanation``) lists each rule's newest counted events and counts the rest
(``compile.contributions.EVENTS_PER_LINE``); before, it listed every counted event. The lead page's
journey (``web.data.lead.journey``) is timed beside it: it counts her events and reads the newest 200 event
times; before, it read every event. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alias_merges import NOW, timed_batch
from page_view_flood import MODEL, page
from rescore import add_url_option, url_store

from leadscore.model import load_model
from leadscore.scoring.explain import explain_current
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.people import find_lead


def explained(store: Store, user: str) -> tuple[float, float, int, int]:
    """(CPU seconds, peak MiB, JSON bytes, events listed) of the user's explanation, the best of three."""
    best = (float("inf"), 0.0, 0, 0)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        assert lead_id is not None
        for _ in range(3):
            tracemalloc.start()
            cpu = time.process_time()
            found = explain_current(conn, store.sources(), lead_id)
            assert found is not None
            body = json.dumps(found[1].as_dict())
            spent = time.process_time() - cpu
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            if spent < best[0]:
                best = (spent, peak, len(body), len(found[1].events))
    return best


def journey(store: Store, user: str) -> tuple[float, float]:
    """(CPU seconds, peak MiB) of the lead page's journey of the user, the best of three."""
    from leadscore.web.data import lead as lead_data

    best = (float("inf"), 0.0)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        assert lead_id is not None
        view = lead_data.load(conn, store.sources(), lead_id)
        assert view is not None
        for _ in range(3):
            tracemalloc.start()
            cpu = time.process_time()
            lead_data.journey(conn, store.sources(), view)
            spent = time.process_time() - cpu
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            best = min(best, (spent, peak))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--views", type=int, default=20_000, help="page views of the flooded person")
    parser.add_argument("--few", type=int, default=100, help="page views of the other person")
    add_url_option(parser)
    args = parser.parse_args()
    start = NOW - 10 * 86_400_000
    with url_store(args.url) as store:
        publish(store, load_model(MODEL))
        timed_batch(store, [page("few", i, start + i * 1000) for i in range(args.few)])
        for first in range(0, args.views, 500):
            size = min(500, args.views - first)
            timed_batch(store, [page("bot", first + i, start + (first + i) * 100) for i in range(size)])
        few, flood = explained(store, "few"), explained(store, "bot")
        few_journey, flood_journey = journey(store, "few"), journey(store, "bot")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    for who, (cpu, peak, size, listed) in ((f"{args.few} views", few), (f"{args.views:,} views", flood)):
        print(
            f"{who}: {cpu:.3f} CPU-s, peak {peak:.1f} MiB, {size:,} bytes of JSON, {listed:,} events listed"
        )
    print(f"flood / few: {flood[0] / few[0]:.1f}x CPU, {flood[2] / few[2]:.1f}x JSON; load {load}")
    for who, (cpu, peak) in ((f"{args.few} views", few_journey), (f"{args.views:,} views", flood_journey)):
        print(f"lead page journey, {who}: {cpu:.3f} CPU-s, peak {peak:.1f} MiB")
    print(f"journey flood / few: {flood_journey[0] / few_journey[0]:.1f}x CPU")


if __name__ == "__main__":
    main()
