"""Several named scores: what three active models cost against one, in full rescoring and in the real-time
processor (issue #20's target: at most 1.5x).

    python bench/multi_scores.py [--engine sqlite|postgres] [--models realistic|identical|both]
                                 [--leads N] [--events-per-lead E] [--events M] [--rounds R]
    python bench/multi_scores.py --batch-duckdb [--models ...] [--leads N] [--events-per-lead E] [--rounds R]

The models (``--models``, realistic unless told):

- realistic: three product-line models as one company writes them (bench/multi_models/: core, analytics,
  partners): most fit rules alike (seniority, company size, industry, free mail), the common engagement
  rules (pricing, demo request, e-mails, webinars) with points and thresholds of their own, and a few
  rules of each product. One score is the core model alone.
- identical: bench/model.yaml (the processor: a two-rule model) under three score names, so each costs
  what one does (the figures of the tenth and eleventh sessions).

Full rescoring: the bench data set (bench/datagen.py) scored by the first model as the primary score and
the other two under their names, ``scoring.pipeline.rescore_all`` timed with one score active and with
all three, alternated R times so that a busy moment hits both alike (the other two are switched off and
on through their ``active`` flag between runs). The processor: M events waiting in the inbox (realistic:
pages, e-mails, demo requests and product use in the data set's proportions; identical: "Clicked"),
drained (``scoring.processor.process_pending``) into a store with one score and into one with three.

With --batch-duckdb: ``batch score`` on DuckDB over the data set's Parquet export, three scores in one
job (``batch.run.run_batch_scores``: the sources read once) against three jobs of one score each and one
job of one score, alternated R times.

Prints wall and CPU seconds and the ratio three / one, beside the load average (figures are noisy under
load).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import update

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
from process_batches import MODEL as PROCESS_MODEL  # noqa: E402
from rescore import PG_URL, bench_store  # noqa: E402

from leadscore.ingest.apply import event_row  # noqa: E402
from leadscore.ingest.segment import normalise  # noqa: E402
from leadscore.model import ScoringModel, load_model, loads_model  # noqa: E402
from leadscore.scoring.pipeline import publish, rescore_all  # noqa: E402
from leadscore.scoring.processor import BATCH, SQLITE_BATCH, process_pending  # noqa: E402
from leadscore.store import Store  # noqa: E402
from leadscore.store.event_log import enqueue  # noqa: E402
from leadscore.store.schema import model_versions  # noqa: E402

PRODUCT_LINES = ("core", "analytics", "partners")  # bench/multi_models/<name>.yaml
IDENTICAL = ("first", "second", "third")
USERS = 5_000


def renamed(model: ScoringModel, name: str) -> ScoringModel:
    return model.model_copy(update={"model": name})


def score_models(kind: str, processor: bool = False) -> list[tuple[str, ScoringModel]]:
    """The three named models of ``kind``, the one timed alone first."""
    if kind == "realistic":
        return [(name, load_model(BENCH / "multi_models" / f"{name}.yaml")) for name in PRODUCT_LINES]
    model = loads_model(PROCESS_MODEL) if processor else load_model(BENCH / "model.yaml")
    return [(name, renamed(model, name)) for name in IDENTICAL]


def load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def _others_active(store: Store, others: Sequence[str], active: bool) -> None:
    with store.begin() as conn:
        conn.execute(
            update(model_versions).where(model_versions.c.score_name.in_(others)).values(active=active)
        )


def full_rescoring(
    engine: str, kind: str, leads: int, events_per_lead: int, rounds: int, pg_url: str
) -> None:
    spec = datagen.Spec(leads=leads, events=leads * events_per_lead)
    named = score_models(kind)
    others = [name for name, _ in named[1:]]
    with bench_store(engine, pg_url) as store:
        datagen.load(store, spec)
        publish(store, named[0][1], as_of=spec.as_of)
        for name, model in named[1:]:
            publish(store, model, as_of=spec.as_of, score_name=name)
        times: dict[int, list[tuple[float, float]]] = {1: [], 3: []}
        for _ in range(rounds):
            for n in (1, 3):
                _others_active(store, others, n == 3)
                wall, cpu = time.perf_counter(), time.process_time()
                rescore_all(store, as_of=spec.as_of)
                times[n].append((time.perf_counter() - wall, time.process_time() - cpu))
        one = statistics.median(w for w, _ in times[1])
        three = statistics.median(w for w, _ in times[3])
        one_cpu = statistics.median(c for _, c in times[1])
        three_cpu = statistics.median(c for _, c in times[3])
        print(
            f"[{load()}] {engine} full rescoring, {kind} models, {leads:,} leads, {spec.events:,} events: one "
            f"score {one:.2f} s wall ({one_cpu:.2f} CPU-s), three scores {three:.2f} s wall ({three_cpu:.2f} "
            f"CPU-s): {three / one:.2f}x wall, {three_cpu / one_cpu:.2f}x CPU (median of {rounds})",
            flush=True,
        )


def _message(kind: str, i: int, rnd: random.Random) -> dict[str, Any]:
    """Event ``i`` of the processor's inbox: a "Clicked" (identical models), else one of the data set's
    kinds in its proportions (pages with their paths, e-mails, demo requests, product use)."""
    base = {"userId": f"user-{i % USERS}", "messageId": f"m-{i}"}
    if kind != "realistic":
        return {"type": "track", "event": "Clicked", **base}
    weights = [k[0] for k in datagen.EVENT_KINDS]
    _, kind_of, label, suffixes = rnd.choices(datagen.EVENT_KINDS, weights)[0]
    if kind_of == "page":
        path = f"{label}{rnd.randrange(suffixes)}-article" if suffixes else label
        return {"type": "page", "properties": {"path": path}, **base}
    if kind_of == "track":
        properties = {"minutes": rnd.randrange(1, 91)} if label == "Webinar Attended" else {}
        return {"type": "track", "event": label, "properties": properties, **base}
    return {"type": "identify", "traits": {"job_title": "Data Analyst"}, **base}


def processor(engine: str, kind: str, n: int, scores: int, pg_url: str) -> tuple[float, float]:
    with bench_store(engine, pg_url) as store:
        named = score_models(kind, processor=True)
        publish(store, named[0][1])
        for name, model in named[1:scores]:
            publish(store, model, score_name=name)
        now = int(time.time() * 1000)
        limit = BATCH if engine == "postgres" else SQLITE_BATCH
        rnd = random.Random(7)
        rows = [
            event_row(normalise(_message(kind, i, rnd), received_ms=now), "api") for i in range(n + limit)
        ]
        with store.begin() as conn:
            enqueue(conn, rows)
        process_pending(store, limit=limit)  # warm-up: the compiled queries, the model cache
        wall, cpu = time.perf_counter(), time.process_time()
        rounds = 0
        while process_pending(store, limit=limit):
            rounds += 1
        assert rounds > 0, "nothing was processed"
        return time.perf_counter() - wall, time.process_time() - cpu


def batch_duckdb(kind: str, leads: int, events_per_lead: int, rounds: int) -> None:
    import tempfile

    from leadscore.batch.locations import ParquetLocation
    from leadscore.batch.parquet import export_relation
    from leadscore.batch.run import BatchJob, NamedModel, run_batch, run_batch_scores

    spec = datagen.Spec(leads=leads, events=leads * events_per_lead)
    with bench_store("sqlite") as store, tempfile.TemporaryDirectory(prefix="leadscore-bench-") as tmp:
        datagen.load(store, spec)
        files = {
            name: export_relation(store, name, Path(tmp) / f"{name}.parquet")
            for name in ("events", "identities", "leads", "accounts")
        }
        named = [NamedModel(name, 0, model) for name, model in score_models(kind)]
        job = BatchJob(
            engine="duckdb",
            model=named[0].model,
            as_of=spec.as_of,
            out=ParquetLocation(f"{tmp}/out"),
            **files,
        )
        ways = {
            "one score": lambda: run_batch(job),
            "three jobs of one score": lambda: [run_batch_scores(job, [m]) for m in named],
            "three scores in one job": lambda: run_batch_scores(job, named),
        }
        times: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
        for _ in range(rounds):
            for way, run in ways.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                times[way].append((time.perf_counter() - wall, time.process_time() - cpu))
        base = statistics.median(w for w, _ in times["one score"])
        base_cpu = statistics.median(c for _, c in times["one score"])
        for way, got in times.items():
            wall_s, cpu_s = statistics.median(w for w, _ in got), statistics.median(c for _, c in got)
            print(
                f"[{load()}] duckdb batch score, {kind} models, {leads:,} leads, {spec.events:,} events, {way}: "
                f"{wall_s:.2f} s wall ({cpu_s:.2f} CPU-s), {wall_s / base:.2f}x one score wall, "
                f"{cpu_s / base_cpu:.2f}x CPU (median of {rounds})",
                flush=True,
            )


def processor_runs(engine: str, kind: str, events: int, rounds: int) -> None:
    runs: dict[int, list[tuple[float, float]]] = {1: [], 3: []}
    for _ in range(rounds):
        for scores in (1, 3):
            runs[scores].append(processor(engine, kind, events, scores, PG_URL))
    one, three = (statistics.median(w for w, _ in runs[k]) for k in (1, 3))
    one_cpu, three_cpu = (statistics.median(c for _, c in runs[k]) for k in (1, 3))
    print(
        f"[{load()}] {engine} processor, {kind} models, {events:,} events: one score {events / one:,.0f} "
        f"events/s ({one_cpu:.2f} CPU-s), three scores {events / three:,.0f} events/s ({three_cpu:.2f} "
        f"CPU-s): {three / one:.2f}x wall, {three_cpu / one_cpu:.2f}x CPU (median of {rounds})",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--models", choices=["realistic", "identical", "both"], default="realistic")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--events-per-lead", type=int, default=20)
    parser.add_argument("--events", type=int, default=10_000, help="processor: events drained")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-duckdb", action="store_true", help="time batch score on DuckDB instead")
    parser.add_argument("--skip-processor", action="store_true", help="full rescoring only")
    args = parser.parse_args()
    kinds = ["realistic", "identical"] if args.models == "both" else [args.models]
    for kind in kinds:
        if args.batch_duckdb:
            batch_duckdb(kind, args.leads, args.events_per_lead, args.rounds)
            continue
        full_rescoring(args.engine, kind, args.leads, args.events_per_lead, args.rounds, PG_URL)
        if not args.skip_processor:
            processor_runs(args.engine, kind, args.events, args.rounds)


if __name__ == "__main__":
    main()
