"""Batch rescoring benchmark: the compiled model on DuckDB, Spark, SQLite and PostgreSQL vs hand-written.

    python bench/batch.py --leads 1000000 --events 100000000            # DuckDB at full size
    python bench/batch.py --engines duckdb,pandas,python --leads 100000 --events 2000000
    python bench/batch.py --engines spark --leads 100000 --events 10000000
    python bench/batch.py --engines sqlite,postgres --leads 100000 --events 10000000

Data: ``parquet_gen.py`` writes it (once per size and seed) under ``--data`` (default a folder per size
in the temporary directory). DuckDB: the compiled model (``explain=False``: the scores the hand-written
query computes; and ``explain=True``: every ledger column, what ``leadscore batch score`` runs) against
``batch_handwritten.duckdb_query``, both over the same ``read_parquet`` views, each materialised into a
temporary table, median of ``--repeat`` interleaved runs. pandas and a plain Python loop compute the same
scores from the same Parquet. Spark: the compiled query in local mode, executed in full into Spark's
``noop`` sink. SQLite and PostgreSQL: ``rescore.py`` (store tables loaded by ``datagen.py``, hand-written
SQL from ``handwritten.py``). Every engine runs in a child process of its own, which reports its peak RSS;
results are checked against the compiled model (to half a millionth: its scores are kept to six decimals)
before anything is timed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import batch_handwritten  # noqa: E402
import parquet_gen  # noqa: E402

from leadscore.batch.locations import ParquetLocation  # noqa: E402
from leadscore.batch.run import relation, targets  # noqa: E402
from leadscore.compile import Sources, compile_model, render_sql  # noqa: E402
from leadscore.model import load_model  # noqa: E402

MODEL = BENCH / "model.yaml"
# the compiled query keeps scores to a millionth (docs/model-language.md), the hand-written query does not
TOLERANCE = 0.5e-6 + 1e-9
AS_OF = parquet_gen.datagen.AS_OF_MS
RELATIONS = ("events", "identities", "leads", "accounts")


def data_dir(spec: parquet_gen.Spec, root: Path | None) -> Path:
    """The data set for ``spec``, generated unless it is already there."""
    folder = root or Path(tempfile.gettempdir()) / f"leadscore-bench-{spec.leads}-{spec.events}-{spec.seed}"
    if not (folder / "leads.parquet").exists():
        started = time.perf_counter()
        rows = parquet_gen.write(spec, folder)
        print(f"generated {rows} in {time.perf_counter() - started:.1f} s → {folder}", flush=True)
    return folder


def locations(folder: Path) -> dict[str, ParquetLocation]:
    return {
        name: ParquetLocation(str(folder / name if name == "events" else folder / f"{name}.parquet"))
        for name in RELATIONS
    }


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _median_interleaved(runs: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(t) for name, t in times.items()}


def duckdb_bench(folder: Path, repeat: int, threads: int) -> dict[str, Any]:
    import duckdb

    from leadscore.batch.duckdb_engine import parquet_view

    model = load_model(MODEL)
    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    views = {n: parquet_view(con, n, loc.files()) for n, loc in locations(folder).items()}
    sources = Sources(**{n: relation(n, v) for n, v in views.items()})
    compiled = render_sql(
        compile_model(model, sources, targets(sources, AS_OF), "duckdb", explain=False), "duckdb"
    )
    explained = render_sql(compile_model(model, sources, targets(sources, AS_OF), "duckdb"), "duckdb")
    hand = batch_handwritten.duckdb_query(AS_OF, *(views[n] for n in RELATIONS))
    (rows, hand_rows, diff) = con.execute(
        f"SELECT count(*), count(h.lead_id), max(greatest(abs(c.score - h.score), abs(c.fit_score - h.fit_score), "
        f"abs(c.engagement_score - h.engagement_score))) FROM ({compiled}) c FULL JOIN ({hand}) h USING (lead_id)"
    ).fetchone()
    if rows != hand_rows or diff is None or diff > TOLERANCE:
        raise SystemExit(
            f"DuckDB: compiled and hand-written disagree ({rows} vs {hand_rows} rows, diff {diff})"
        )

    def materialise(sql: str) -> Callable[[], None]:
        return lambda: con.execute(f"CREATE OR REPLACE TEMP TABLE result AS {sql}")

    times = _median_interleaved(
        {
            "compiled": materialise(compiled),
            "handwritten": materialise(hand),
            "explain": materialise(explained),
        },
        repeat,
    )
    return {"rows": rows, "max_diff": diff, **times, "peak_rss_mib": peak_rss_mib()}


def _check(
    name: str, got: dict[int, tuple[float, float, float]], want: dict[int, tuple[float, float, float]]
) -> float:
    if got.keys() != want.keys():
        raise SystemExit(f"{name}: {len(got)} leads, compiled has {len(want)}")
    diff = max((max(abs(a - b) for a, b in zip(got[k], want[k], strict=True)) for k in want), default=0.0)
    if diff > TOLERANCE:
        raise SystemExit(f"{name}: scores differ from the compiled model by {diff}")
    return diff


def _compiled_scores(folder: Path) -> dict[int, tuple[float, float, float]]:
    import duckdb

    from leadscore.batch.duckdb_engine import parquet_view

    model = load_model(MODEL)
    con = duckdb.connect()
    sources = Sources(
        **{n: relation(n, parquet_view(con, n, loc.files())) for n, loc in locations(folder).items()}
    )
    sql = render_sql(
        compile_model(model, sources, targets(sources, AS_OF), "duckdb", explain=False), "duckdb"
    )
    rows = con.execute(f"SELECT lead_id, fit_score, engagement_score, score FROM ({sql}) s").fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def pandas_bench(folder: Path, repeat: int) -> dict[str, Any]:
    import pyarrow.parquet as pq

    def run() -> Any:
        read = {
            n: pq.read_table(loc.files()[0] if n != "events" else loc.path).to_pandas()
            for n, loc in locations(folder).items()
        }
        return batch_handwritten.pandas_scores(
            AS_OF, read["events"], read["identities"], read["leads"], read["accounts"]
        )

    frame = run()
    got = {int(r.lead_id): (r.fit_score, r.engagement_score, r.score) for r in frame.itertuples()}
    diff = _check("pandas", got, _compiled_scores(folder))
    times = _median_interleaved({"pandas": run}, repeat)
    return {"rows": len(got), "max_diff": diff, **times, "peak_rss_mib": peak_rss_mib()}


def python_bench(folder: Path, repeat: int) -> dict[str, Any]:
    import pyarrow.dataset as ds

    loc = locations(folder)

    def rows(name: str, columns: list[str]) -> Any:
        dataset = ds.dataset(loc[name].files(), format="parquet")
        for batch in dataset.to_batches(columns=columns, batch_size=100_000):
            yield from zip(*(batch.column(c).to_pylist() for c in columns), strict=True)

    def run() -> dict[int, tuple[float, float, float]]:
        return batch_handwritten.python_loop(
            AS_OF,
            rows("events", ["person_key", "ts", "type", "name", "path", "properties"]),
            rows("identities", ["key", "lead_id"]),
            rows("leads", ["id", "attributes", "email_domain", "account_id"]),
            rows("accounts", ["id", "domain", "attributes"]),
        )

    got = run()
    diff = _check("python", got, _compiled_scores(folder))
    times = _median_interleaved({"python": run}, repeat)
    return {"rows": len(got), "max_diff": diff, **times, "peak_rss_mib": peak_rss_mib()}


def spark_bench(folder: Path, repeat: int, threads: int) -> dict[str, Any]:
    import warnings

    from pyspark.sql import SparkSession

    from leadscore.batch.spark_engine import parquet_view

    warnings.simplefilter("ignore", FutureWarning)
    started = time.perf_counter()
    spark = (
        SparkSession.builder.master(f"local[{threads}]")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", str(4 * threads))
        .config("spark.driver.memory", "8g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    start_s = time.perf_counter() - started
    model = load_model(MODEL)
    sources = Sources(**{n: relation(n, parquet_view(spark, n, loc)) for n, loc in locations(folder).items()})
    compiled = render_sql(
        compile_model(model, sources, targets(sources, AS_OF), "spark", explain=False), "spark"
    )
    explained = render_sql(compile_model(model, sources, targets(sources, AS_OF), "spark"), "spark")
    want = _compiled_scores(folder)
    got = {
        r[0]: (r[1], r[2], r[3])
        for r in spark.sql(compiled).select("lead_id", "fit_score", "engagement_score", "score").collect()
    }
    diff = _check("spark", got, want)

    def noop(sql: str) -> Callable[[], None]:
        return lambda: spark.sql(sql).write.format("noop").mode("overwrite").save()

    times = _median_interleaved({"compiled": noop(compiled), "explain": noop(explained)}, repeat)
    jvm = _jvm_peak_mib(spark)
    spark.stop()
    return {
        "rows": len(got),
        "max_diff": diff,
        "session_start": start_s,
        **times,
        "peak_rss_mib": peak_rss_mib(),
        "jvm_peak_mib": jvm,
    }


def _jvm_peak_mib(spark: Any) -> float | None:
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    if proc is None:
        return None
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def sql_bench(engine: str, spec: parquet_gen.Spec, repeat: int) -> dict[str, Any]:
    import datagen
    import rescore

    result = rescore.run(
        "sqlite" if engine == "sqlite" else "postgresql",
        datagen.Spec(spec.leads, spec.events, spec.seed),
        repeat=repeat,
    )
    print(rescore.report(result), flush=True)
    return {
        "rows": result.loaded.leads, "max_diff": result.max_diff, "load": result.load_s, "compiled": result.compiled_s,
        "handwritten": result.handwritten_s, "peak_rss_mib": peak_rss_mib(),
    }  # fmt: skip


def _child(queue: Any, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    try:
        queue.put(fn(*args))
    except BaseException as exc:  # the parent reports it; a child that dies silently would hang it
        queue.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def in_child(fn: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one engine's benchmark in a fresh process (so its peak RSS is its own)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args))
    proc.start()
    result: dict[str, Any] = queue.get()
    proc.join()
    if "error" in result:
        raise SystemExit(f"{fn.__name__}: {result['error']}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--engines", default="duckdb", help="comma-separated: duckdb, pandas, python, spark, sqlite, postgres"
    )
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=100_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--data", type=Path, default=None, help="data folder (default: one per size under $TMPDIR)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    spec = parquet_gen.Spec(args.leads, args.events, args.seed)
    engines = args.engines.split(",")
    folder = data_dir(spec, args.data) if set(engines) - {"sqlite", "postgres"} else None
    print(
        f"{spec.leads:,} leads, {spec.events:,} events, seed {spec.seed}, {args.threads} threads", flush=True
    )
    for engine in engines:
        if engine == "duckdb":
            r = in_child(duckdb_bench, folder, args.repeat, args.threads)
            ratio = r["compiled"] / r["handwritten"]
            print(
                f"duckdb   compiled {r['compiled']:.2f} s  hand-written {r['handwritten']:.2f} s  ratio {ratio:.2f}x  "
                f"compiled+ledger columns {r['explain']:.2f} s  peak RSS {r['peak_rss_mib']:.0f} MiB  "
                f"(max diff {r['max_diff']:.1e})",
                flush=True,
            )
        elif engine in ("pandas", "python"):
            r = in_child(pandas_bench if engine == "pandas" else python_bench, folder, args.repeat)
            print(
                f"{engine:8} {r[engine]:.2f} s  peak RSS {r['peak_rss_mib']:.0f} MiB  (max diff {r['max_diff']:.1e})",
                flush=True,
            )
        elif engine == "spark":
            r = in_child(spark_bench, folder, args.repeat, args.threads)
            print(
                f"spark    session start {r['session_start']:.1f} s  compiled {r['compiled']:.2f} s  "
                f"compiled+ledger columns {r['explain']:.2f} s  driver peak RSS {r['peak_rss_mib']:.0f} MiB  "
                f"JVM peak RSS {r['jvm_peak_mib'] or 0:.0f} MiB  (max diff {r['max_diff']:.1e})",
                flush=True,
            )
        elif engine in ("sqlite", "postgres"):
            r = in_child(sql_bench, engine, spec, args.repeat)
            print(f"{engine:8} peak RSS {r['peak_rss_mib']:.0f} MiB", flush=True)
        else:
            raise SystemExit(f"unknown engine {engine}")


if __name__ == "__main__":
    main()
