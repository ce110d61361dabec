"""Full rescoring benchmark: the compiled model against a hand-written query of the same model.

    python bench/rescore.py [--engine sqlite|postgres|both] [--leads N] [--events M] [--seed S] [--repeat R]

Default: both engines, 10,000 leads, 500,000 events (about a minute on 2 cores).

For each engine: generate the data set into a fresh store (bench/datagen.py), then time, as the median of
R runs after a warm-up, (1) the compiled SELECT executed and every row fetched, (2) the hand-written query
(bench/handwritten.py) executed and fetched, (3) ``leadscore.scoring.run.score`` end to end (compile,
execute, fetch, assemble every ledger). Both queries must give the same fit, engagement and total score
for every lead (to half a millionth: the compiled scores are kept to six decimals) or the run fails.
Prints the ratio compiled / hand-written (target <= 1.3x).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
import handwritten  # noqa: E402

from leadscore.compile import compile_model  # noqa: E402
from leadscore.model import ScoringModel, load_model  # noqa: E402
from leadscore.scoring.run import all_leads, score  # noqa: E402
from leadscore.store import Store  # noqa: E402

MODEL_PATH = BENCH / "model.yaml"
PG_URL = os.environ.get("LEADSCORE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
# the compiled query keeps scores to a millionth (docs/model-language.md), the hand-written query does not
TOLERANCE = 0.5e-6 + 1e-9
Scores = dict[int, tuple[float, float, float]]


@dataclass(frozen=True)
class Result:
    engine: str
    spec: datagen.Spec
    loaded: datagen.Loaded
    load_s: float
    compiled_s: float
    handwritten_s: float
    serial_s: float  # the hand-written query without parallel workers (PostgreSQL; same as above on SQLite)
    ledger_s: float
    score_s: float
    max_diff: float

    @property
    def ratio(self) -> float:
        return self.compiled_s / self.handwritten_s


@contextmanager
def bench_store(engine: str, pg_url: str = PG_URL) -> Iterator[Store]:
    """A fresh, migrated store: a SQLite file in a temporary folder, or a PostgreSQL schema of its own."""
    if engine == "sqlite":
        with tempfile.TemporaryDirectory(prefix="leadscore-bench-") as folder:
            store = Store.from_url(str(Path(folder) / "bench.db"))
            try:
                yield store
            finally:
                store.dispose()
        return
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in pg_url else "?"
    store = Store.from_url(f"{pg_url}{sep}options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def add_url_option(parser: argparse.ArgumentParser) -> None:
    """``--url``: a PostgreSQL URL to run in (a schema of its own, ``bench_store``); SQLite by default."""
    parser.add_argument(
        "--url", help="a PostgreSQL URL: the bench runs in a schema of its own (default: a new SQLite file)"
    )


def url_store(url: str | None) -> AbstractContextManager[Store]:
    """``bench_store`` of the ``--url`` option."""
    return bench_store("postgres" if url else "sqlite", url or "")


def compiled_scores(
    conn: Connection, model: ScoringModel, store: Store, as_of: int, explain: bool = False
) -> Scores:
    """The compiled query: scores only (what the hand-written query computes), or with every ledger column."""
    query = compile_model(model, store.sources(), all_leads(as_of), engine=conn.dialect.name, explain=explain)
    rows = conn.execute(query).mappings().all()
    return {r["lead_id"]: (r["fit_score"], r["engagement_score"], r["score"]) for r in rows}


def handwritten_scores(conn: Connection, as_of: int, serial: bool = False) -> Scores:
    """The hand-written query; ``serial`` forbids parallel workers on PostgreSQL, as the compiled query's
    targets do (parallel partial sums make a score's last bits depend on how the rows were split)."""
    if serial and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET max_parallel_workers_per_gather = 0")
    try:
        rows = conn.execute(text(handwritten.query(conn.dialect.name)), {"as_of": as_of}).all()
    finally:
        if serial and conn.dialect.name == "postgresql":
            conn.exec_driver_sql("RESET max_parallel_workers_per_gather")
    return {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in rows}


def max_difference(a: Scores, b: Scores) -> float:
    """The largest absolute difference between two score sets; infinite when they cover different leads."""
    if a.keys() != b.keys():
        return float("inf")
    return max((abs(x - y) for k in a for x, y in zip(a[k], b[k], strict=True)), default=0.0)


def _median_times(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Median wall time of each function; the functions take turns, so a busy moment hits them alike."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for fn, spent in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            spent.append(time.perf_counter() - start)
    return [statistics.median(spent) for spent in times]


def run(
    engine: str, spec: datagen.Spec, repeat: int = 3, explain: bool = False, pg_url: str = PG_URL
) -> Result:
    """Generate, load and time one engine; raises AssertionError when the two queries disagree."""
    model = load_model(MODEL_PATH)
    with bench_store(engine, pg_url) as store:
        start = time.perf_counter()
        loaded = datagen.load(store, spec)
        load_s = time.perf_counter() - start
        with store.connect() as conn:
            if conn.dialect.name == "postgresql":
                # as leadscore's scoring sessions do (scoring.run.score); applies to both queries alike
                conn.exec_driver_sql("SET jit = off")
            # warm-up (and the agreement check): caches, SQLAlchemy's statement cache, planner statistics
            ours = compiled_scores(conn, model, store, spec.as_of)
            explained = compiled_scores(conn, model, store, spec.as_of, explain=True)
            assert explained == ours, "the ledger and score-only forms of the compiled query disagree"
            theirs = handwritten_scores(conn, spec.as_of)
            diff = max_difference(ours, theirs)
            ledgers = {
                lg.lead_id: lg.score for lg in score(conn, model, store.sources(), all_leads(spec.as_of))
            }
            assert ledgers.keys() == ours.keys(), "score() and the compiled query cover different leads"
            diff = max(diff, max((abs(ledgers[k] - ours[k][2]) for k in ours), default=0.0))
            if diff > TOLERANCE:
                raise AssertionError(f"{engine}: compiled and hand-written scores differ by {diff:g}")
            if explain:
                _explain(conn, model, store, spec.as_of)
            compiled_s, handwritten_s, serial_s, ledger_s, score_s = _median_times(
                [
                    lambda: compiled_scores(conn, model, store, spec.as_of),
                    lambda: handwritten_scores(conn, spec.as_of),
                    lambda: handwritten_scores(conn, spec.as_of, serial=True),
                    lambda: compiled_scores(conn, model, store, spec.as_of, explain=True),
                    lambda: score(conn, model, store.sources(), all_leads(spec.as_of)),
                ],
                repeat,
            )
    return Result(engine, spec, loaded, load_s, compiled_s, handwritten_s, serial_s, ledger_s, score_s, diff)


def _explain(conn: Connection, model: ScoringModel, store: Store, as_of: int) -> None:
    query = compile_model(model, store.sources(), all_leads(as_of), engine=conn.dialect.name)
    compiled_sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    prefix = "EXPLAIN QUERY PLAN " if conn.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS) "
    for label, sql, params in (
        ("compiled", compiled_sql, {}),
        ("hand-written", handwritten.query(conn.dialect.name), {"as_of": as_of}),
    ):
        print(f"--- {label} plan ({conn.dialect.name})")
        for row in conn.execute(text(prefix + sql), params):
            print("   ", " | ".join(str(v) for v in row))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def report(r: Result) -> str:
    n = r.loaded.leads
    lines = [
        f"{r.engine}: {n:,} leads, {r.loaded.events:,} events, {r.loaded.identities:,} identities, "
        f"{r.loaded.accounts:,} accounts (seed {r.spec.seed}); load {r.load_s:.1f} s "
        f"({r.loaded.events / r.load_s:,.0f} events/s)",
        f"  compiled query      {r.compiled_s:8.3f} s  {n / r.compiled_s:12,.0f} leads/s",
        f"  hand-written query  {r.handwritten_s:8.3f} s  {n / r.handwritten_s:12,.0f} leads/s",
        f"  ratio compiled / hand-written  {r.ratio:.2f}x  (target <= 1.3x)",
        f"  hand-written, serial {r.serial_s:8.3f} s  -> compiled / serial hand-written {r.compiled_s / r.serial_s:.2f}x"
        if r.engine == "postgresql"
        else "",
        f"  compiled with ledger columns {r.ledger_s:8.3f} s  ({r.ledger_s / r.handwritten_s:.2f}x hand-written)",
        f"  score() end to end  {r.score_s:8.3f} s  {n / r.score_s:12,.0f} leads/s  "
        f"(fetch + ledger assembly {r.score_s / r.compiled_s:.2f}x the bare query)",
        f"  max |compiled - hand-written| = {r.max_diff:.1e}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per query after one warm-up (>= 3)")
    parser.add_argument("--explain", action="store_true", help="print both query plans")
    parser.add_argument(
        "--pg-url", default=PG_URL, help="PostgreSQL server (a schema of its own is used and dropped)"
    )
    args = parser.parse_args(argv)
    if args.repeat < 3:
        parser.error("--repeat must be at least 3")
    spec = datagen.Spec(leads=args.leads, events=args.events, seed=args.seed)
    engines = (
        ["sqlite", "postgresql"] if args.engine == "both" else [args.engine.replace("postgres", "postgresql")]
    )
    for engine in engines:
        result = run(engine, spec, args.repeat, args.explain, args.pg_url)
        print(report(result), flush=True)
    print(f"peak RSS of this process: {peak_rss_mib():,.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
