"""One person's page-view flood in the processor: batches of page views all about one person, against a
batch of the same size spread over as many people (measured in the same run).

    python bench/page_view_flood.py                 # 12 batches of 500, SQLite
    python bench/page_view_flood.py --batches 20 --url postgresql://postgres@127.0.0.1:5432/test

A write key can send any number of page views for one user id. The score history holds a row at each of
her event times, each scored over her events up to then, so without a bound every batch about her costs
more than the one before (the whole flood: the square of its length). Prints the CPU seconds of the
spread batch, of the flood's first and last batch, and their ratios. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alias_merges import NOW, timed_batch
from rescore import add_url_option, url_store

from leadscore.model import load_model
from leadscore.scoring.pipeline import publish

MODEL = Path(__file__).resolve().parents[1] / "examples" / "b2b_saas" / "model.yaml"
PATHS = ("/pricing", "/blog/a", "/docs/start", "/case-studies/x", "/careers")


def page(user: str, i: int, at_ms: int) -> dict[str, Any]:
    return {"type": "page", "userId": user, "messageId": f"{user}-p{i}",
            "timestamp": _iso(at_ms), "properties": {"path": PATHS[i % len(PATHS)]}}  # fmt: skip


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=500, help="page views a batch")
    parser.add_argument("--batches", type=int, default=12, help="batches about the one person")
    add_url_option(parser)
    args = parser.parse_args()
    size = args.size
    with url_store(args.url) as store:
        publish(store, load_model(MODEL))
        start = NOW - 10 * 86_400_000
        spread = timed_batch(store, [page(f"u{i}", i, start + i * 1000) for i in range(size)])
        flood = []
        for b in range(args.batches):
            first = start + b * size * 1000
            batch = [page("bot", b * size + i, first + i * 1000) for i in range(size)]
            flood.append(timed_batch(store, batch))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    for k, unit in ((0, "CPU-s"), (1, "s wall")):
        first, last = flood[0][k], flood[-1][k]
        print(f"{size} page views of {size} people: {spread[k]:.2f} {unit}; one person's flood, batch 1: "
              f"{first:.2f} ({first / spread[k]:.2f}x), batch {args.batches} ({size * args.batches} in): "
              f"{last:.2f} ({last / spread[k]:.2f}x)")  # fmt: skip
        print(f"  every flood batch ({unit}): " + " ".join(f"{x[k]:.2f}" for x in flood))
    print(f"load {load}")


if __name__ == "__main__":
    main()
