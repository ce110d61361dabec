"""Alias merges in the processor: a batch of ``alias`` calls each merging two leads (both ids identified,
each with three page views) against a batch of the same size that only identifies people again.

    python bench/alias_merges.py              # 500 merges, SQLite
    python bench/alias_merges.py --n 300 --url postgresql://postgres@127.0.0.1:5432/test

On SQLite the processor holds the write lock while it applies a batch's identities, so a batch of merges
is time every acknowledgement waits. Prints CPU seconds of each batch, the CPU a merge costs, and the
ratio to the identify batch (measured in the same run). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rescore import add_url_option, url_store

from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise
from leadscore.model import load_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.processor import process_pending
from leadscore.store import Store

MODEL = Path(__file__).resolve().parents[1] / "examples" / "b2b_saas" / "model.yaml"
NOW = 1_780_000_000_000


def people(n: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(n):
        for side in ("old", "new"):
            out.append({"type": "identify", "userId": f"{side}-{i}", "messageId": f"{side}-id-{i}",
                        "traits": {"email": f"{side}{i}@x{i % 50}.com", "title": "CTO"}})  # fmt: skip
            out += [{"type": "page", "userId": f"{side}-{i}", "messageId": f"{side}-p{i}-{k}",
                     "properties": {"path": "/pricing"}} for k in range(3)]  # fmt: skip
    return out


def timed_batch(store: Store, messages: list[dict[str, Any]]) -> tuple[float, float]:
    """Send ``messages``, then process them in one batch: (CPU seconds, wall seconds) of the batch (on
    PostgreSQL most of the work is the server's: the wall time shows it)."""
    committer = GroupCommitter(store).start()
    try:
        committer.submit([event_row(normalise(m, received_ms=NOW), "api") for m in messages]).result()
    finally:
        committer.stop()
    cpu, wall = time.process_time(), time.perf_counter()
    done = process_pending(store, limit=len(messages))
    assert done == len(messages), done
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    add_url_option(parser)
    args = parser.parse_args()
    n = args.n
    with url_store(args.url) as store:
        publish(store, load_model(MODEL))
        ingest(store, [normalise(m, received_ms=NOW) for m in people(n)], source="bench", as_of=NOW)
        again = [{"type": "identify", "userId": f"new-{i}", "messageId": f"again-{i}", "traits": {"plan": "pro"}}
                 for i in range(n)]  # fmt: skip
        identify_cpu, _ = timed_batch(store, again)
        merges = [{"type": "alias", "previousId": f"old-{i}", "userId": f"new-{i}", "messageId": f"al-{i}"}
                  for i in range(n)]  # fmt: skip
        merge_cpu, _ = timed_batch(store, merges)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{n} identifies again: {identify_cpu:.2f} CPU-s; {n} alias merges: {merge_cpu:.2f} CPU-s "
          f"({1000 * merge_cpu / n:.2f} CPU-ms a merge), {merge_cpu / identify_cpu:.2f}x; load {load}")  # fmt: skip


if __name__ == "__main__":
    main()
