"""Where a further score's CPU goes: each stage of a full rescoring and of the real-time processor timed
with one score active and with three (issue #20; the ratios of ``bench/multi_scores.py`` broken down).

    python bench/multi_stages.py [--rounds R] [--leads N] [--events M]

The stores are ``bench/multi_scores.py``'s (the three realistic models of ``bench/multi_models``, the
3,000-lead data set; the processor's inbox of M events). Each stage is a function of the scoring path
wrapped with a CPU timer (``time.process_time``) for the run; nested stages are listed under their
caller (``a``, ``b``...: parts of the stage above, not to be added to it). Prints, per stage, the median
over R rounds of one score, of three, and what the two further scores add; one and three alternate in
every round so that a busy moment hits both alike.
"""

from __future__ import annotations

import argparse
import collections
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
import multi_scores  # noqa: E402
from rescore import bench_store  # noqa: E402

from leadscore.ingest.apply import event_row  # noqa: E402
from leadscore.ingest.segment import normalise  # noqa: E402
from leadscore.scoring import due, history, pipeline, run, snapshot  # noqa: E402
from leadscore.scoring.pipeline import publish  # noqa: E402
from leadscore.scoring.processor import SQLITE_BATCH, process_pending  # noqa: E402
from leadscore.store.event_log import enqueue  # noqa: E402

Spent = collections.Counter[str]

# (module, function as the caller looks it up, label)
FULL = (
    (pipeline, "rescore_all", "rescore_all"),
    (pipeline, "score_everyone", "1 scoring statement and reading (score_everyone)"),
    (run, "read_result", "1a fetch and read (read_result)"),
    (run, "read_ledgers", "1b ledgers read (read_ledgers)"),
    (pipeline, "schedule_models", "2 due times (schedule_models)"),
    (due, "_due", "2a decay bound (_due)"),
    (history, "plan_record_saved", "3 history (plan_record_saved)"),
    (pipeline, "save_named_scores", "4 save (save_named_scores)"),
)
PROCESSOR = (
    (multi_scores, "process_pending", "process_pending"),
    (snapshot, "log_rows", "1 events applied (log_rows)"),
    (snapshot, "plan_rescore", "2 scored (plan_rescore)"),
    (pipeline, "score_points_models", "2a current scores (score_points_models)"),
    (history, "plan_replay", "2b history replay (plan_replay)"),
    (run, "execute_kept", "2c scoring statements executed (execute_kept)"),
    (run, "read_ledgers", "2d ledgers read (read_ledgers)"),
    (pipeline, "schedule_models", "2e due times (schedule_models)"),
    (due, "_due", "2f decay bound (_due)"),
    (snapshot, "save_rescore", "3 saved (save_rescore)"),
    (pipeline, "save_named_scores", "3a scores and ledgers (save_named_scores)"),
    (history, "write_replay", "3b history rows (write_replay)"),
)


@contextmanager
def timed(stages: tuple[tuple[Any, str, str], ...], spent: Spent) -> Iterator[None]:
    """Each stage's function replaced by one adding its CPU time to ``spent``, for the block."""
    kept = [(module, name, getattr(module, name)) for module, name, _ in stages]

    def timer(function: Callable[..., Any], label: str) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            start = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - start

        return wrapped

    for (module, name, label), (_, _, function) in zip(stages, kept, strict=True):
        setattr(module, name, timer(function, label))
    try:
        yield
    finally:
        for module, name, function in kept:
            setattr(module, name, function)


def full_rescoring(leads: int, rounds: int) -> dict[int, list[Spent]]:
    spec = datagen.Spec(leads=leads, events=leads * 20)
    named = multi_scores.score_models("realistic")
    others = [name for name, _ in named[1:]]
    out: dict[int, list[Spent]] = {1: [], 3: []}
    with bench_store("sqlite") as store:
        datagen.load(store, spec)
        publish(store, named[0][1], as_of=spec.as_of)
        for name, model in named[1:]:
            publish(store, model, as_of=spec.as_of, score_name=name)
        for warm in [True] + [False] * rounds:
            for n in (1, 3):
                multi_scores._others_active(store, others, n == 3)
                spent: Spent = collections.Counter()
                with timed(FULL, spent):
                    pipeline.rescore_all(store, as_of=spec.as_of)
                if not warm:
                    out[n].append(spent)
    return out


def processor(events: int, rounds: int) -> dict[int, list[Spent]]:
    out: dict[int, list[Spent]] = {1: [], 3: []}
    for _ in range(rounds):
        for n in (1, 3):
            with bench_store("sqlite") as store:
                named = multi_scores.score_models("realistic", processor=True)
                publish(store, named[0][1])
                for name, model in named[1:n]:
                    publish(store, model, score_name=name)
                now = int(time.time() * 1000)
                rnd = random.Random(7)
                rows = [
                    event_row(normalise(multi_scores._message("realistic", i, rnd), received_ms=now), "api")
                    for i in range(events + SQLITE_BATCH)
                ]
                with store.begin() as conn:
                    enqueue(conn, rows)
                process_pending(store, limit=SQLITE_BATCH)  # warm-up, as bench/multi_scores.py
                spent: Spent = collections.Counter()
                with timed(PROCESSOR, spent):
                    drained = True
                    while drained:  # until a drain finds nothing pending
                        drained = bool(multi_scores.process_pending(store, limit=SQLITE_BATCH))
                out[n].append(spent)
    return out


def report(title: str, stages: tuple[tuple[Any, str, str], ...], found: dict[int, list[Spent]]) -> None:
    print(f"{title} ({multi_scores.load()}), CPU-s, median of {len(found[1])}:")
    for _, _, label in stages:
        one = statistics.median(s[label] for s in found[1])
        three = statistics.median(s[label] for s in found[3])
        print(f"  {label:48s} one {one:6.3f}  three {three:6.3f}  two more add {three - one:+.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--events", type=int, default=3000, help="processor: events drained")
    args = parser.parse_args()
    report("full rescoring, SQLite", FULL, full_rescoring(args.leads, args.rounds))
    report("processor, SQLite", PROCESSOR, processor(args.events, args.rounds))


if __name__ == "__main__":
    main()
