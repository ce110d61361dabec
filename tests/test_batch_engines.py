"""The same model scores the same on every engine: SQLite, PostgreSQL, DuckDB and Spark (Hypothesis).

Random models and Segment message streams (``strategies``) are ingested into a store, whose relations
are exported to Parquet; SQLite (and PostgreSQL when LEADSCORE_TEST_POSTGRES_URL is set) score the store,
DuckDB and Spark score the Parquet files, each with ``compile_model`` rendered for its dialect, and every
ledger is compared field by field: exactly when no rule decays, to 1e-9 relative when one does.
Spark is slow to start and to plan, so it gets one session for the module and few examples.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy import create_engine, select, text
from typer.testing import CliRunner

from case_runner import Case, compare_events, load_case, run_case, share_problems
from case_runner import compare as compare_case
from leadscore.batch.duckdb_engine import arrow_batches, parquet_view
from leadscore.batch.locations import ParquetLocation
from leadscore.batch.parquet import export_relation
from leadscore.batch.run import relation, targets
from leadscore.cli.main import app
from leadscore.compile import Ledger, Sources, compile_model, half_life_ms, read_ledger, render_sql
from leadscore.compile.contributions import Explanation, compile_contributions, read_explanations
from leadscore.compile.dialects import CAPABILITIES
from leadscore.errors import UnsupportedRuleError
from leadscore.ingest.segment import Message
from leadscore.model import ScoringModel
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import all_leads, score
from leadscore.store import Store
from leadscore.store.schema import leads, metadata
from strategies import AS_OF, message_streams, models

ROOT = Path(__file__).resolve().parent.parent
CASES_DIR = ROOT / "tests" / "cases"

PG_URL = os.environ.get("LEADSCORE_TEST_POSTGRES_URL")
RELATIVE = 1e-9
RELATIONS = ("events", "identities", "leads", "accounts")
SETTINGS: dict[str, Any] = {"deadline": None, "suppress_health_check": list(HealthCheck)}
SPARK_MISSING = (
    "pyspark is not installed (pip install -e '.[spark]')"
    if importlib.util.find_spec("pyspark") is None
    else "no Java runtime on PATH or JAVA_HOME (Spark needs Java 17+)"
    if not (shutil.which("java") or os.environ.get("JAVA_HOME"))
    else None
)
pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    if SPARK_MISSING:
        pytest.skip(SPARK_MISSING)
    from pyspark.sql import SparkSession

    # the Python workers (mapInArrow) run this interpreter, with leadscore's dependencies, not PATH's python3
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        session = (
            SparkSession.builder.master("local[2]")
            .appName("leadscore tests")
            .config("spark.ui.enabled", "false")
            .config("spark.ui.showConsoleProgress", "false")
            .config("spark.sql.shuffle.partitions", "2")
            .getOrCreate()
        )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="module")
def sqlite_db(workdir: Path) -> Iterator[Store]:
    store = Store.from_url(str(workdir / "engines.db"))
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def pg_db() -> Iterator[Store | None]:
    if not PG_URL:
        yield None
        return
    schema = f"e_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL.replace("postgresql://", "postgresql+psycopg://", 1))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    store = Store.from_url(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield store
    finally:
        store.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _load(store: Store, messages: list[Message]) -> None:
    with store.begin() as conn:
        if store.dialect == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())
    ingest(store, messages, source="test")


def store_ledgers(store: Store, model: ScoringModel) -> dict[str, Ledger]:
    """Every lead's ledger on the store's own engine, keyed by external id."""
    with store.connect() as conn:
        external = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        return {external[lg.lead_id]: lg for lg in score(conn, model, store.sources(), all_leads(AS_OF))}


def export(store: Store, folder: Path) -> dict[str, ParquetLocation]:
    folder.mkdir(parents=True, exist_ok=True)
    return {name: export_relation(store, name, folder / f"{name}.parquet") for name in RELATIONS}


def external_ids(store: Store) -> dict[int, str]:
    with store.connect() as conn:
        return dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())  # type: ignore[arg-type]


def duckdb_ledgers(
    model: ScoringModel, files: dict[str, ParquetLocation], as_of: int = AS_OF
) -> list[Ledger]:
    import duckdb

    con = duckdb.connect()
    try:
        views = {name: relation(name, parquet_view(con, name, loc.files())) for name, loc in files.items()}
        sources = Sources(**views)
        sql = render_sql(compile_model(model, sources, targets(sources, as_of), "duckdb"), "duckdb")
        return [
            read_ledger(model, row) for batch in arrow_batches(con, sql, 1000) for row in batch.to_pylist()
        ]
    finally:
        con.close()


def spark_ledgers(
    spark: Any, model: ScoringModel, files: dict[str, ParquetLocation], as_of: int = AS_OF
) -> list[Ledger]:
    from leadscore.batch.spark_engine import parquet_view as spark_view

    sources = Sources(**{name: relation(name, spark_view(spark, name, loc)) for name, loc in files.items()})
    sql = render_sql(compile_model(model, sources, targets(sources, as_of), "spark"), "spark")
    return [read_ledger(model, row.asDict()) for row in spark.sql(sql).collect()]


def decays(model: ScoringModel) -> bool:
    return any(half_life_ms(model, rule) for rule in model.engagement)


def assert_same(a: Ledger, b: Ledger, exact: bool) -> None:
    """Equal field by field; floats exactly (no decay) or to 1e-9 relative."""
    da, db_ = a.as_dict(), b.as_dict()
    la, lb = da.pop("lines"), db_.pop("lines")
    assert [(x["rule_id"], x["kind"], x["matched"], x["capped"]) for x in la] == [
        (x["rule_id"], x["kind"], x["matched"], x["capped"]) for x in lb
    ]
    for x, y in [(da, db_), *zip(la, lb, strict=True)]:
        assert x.keys() == y.keys()
        for key in x:
            u, v = x[key], y[key]
            if isinstance(u, float) and isinstance(v, float) and not exact:
                assert abs(u - v) <= RELATIVE * max(abs(u), abs(v), 1.0), (key, u, v)
            else:
                assert u == v, (key, u, v)


def assert_same_ledgers(expected: dict[str, Ledger], got: dict[str, Ledger], model: ScoringModel) -> None:
    assert got.keys() == expected.keys()
    for key, ledger in expected.items():
        assert_same(ledger, got[key], exact=not decays(model))


def _by_external(ledgers: list[Ledger], ids: dict[int, str]) -> dict[str, Ledger]:
    return {ids[lg.lead_id]: lg for lg in ledgers}


@settings(max_examples=40, **SETTINGS)
@given(model=models(), messages=message_streams())
def test_duckdb_and_postgres_score_as_sqlite(
    sqlite_db: Store, pg_db: Store | None, workdir: Path, model: ScoringModel, messages: list[Message]
) -> None:
    _load(sqlite_db, messages)
    expected = store_ledgers(sqlite_db, model)
    files = export(sqlite_db, workdir / "duck")
    assert_same_ledgers(expected, _by_external(duckdb_ledgers(model, files), external_ids(sqlite_db)), model)
    if pg_db is not None:
        _load(pg_db, messages)
        assert_same_ledgers(expected, store_ledgers(pg_db, model), model)


@settings(max_examples=4, **SETTINGS)
@given(model=models(), messages=message_streams(max_events=15))
def test_spark_scores_as_sqlite(
    spark: Any, sqlite_db: Store, workdir: Path, model: ScoringModel, messages: list[Message]
) -> None:
    _load(sqlite_db, messages)
    expected = store_ledgers(sqlite_db, model)
    files = export(sqlite_db, workdir / f"spark-{uuid.uuid4().hex[:8]}")
    assert_same_ledgers(
        expected, _by_external(spark_ledgers(spark, model, files), external_ids(sqlite_db)), model
    )


REGEX_MODEL = ScoringModel.model_validate(
    {
        "model": "regex",
        "fit": [
            {"id": "cto", "name": "CTO", "when": {"attribute": "job_title", "regex": "cto|vp"}, "points": 5}
        ],
    }
)


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_an_undeclared_construct_fails_at_compile_time_naming_the_rule(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = Store.from_url("sqlite://", migrate_schema=False).sources()
    wanted = all_leads(AS_OF)
    assert render_sql(compile_model(REGEX_MODEL, sources, wanted, engine), engine)
    monkeypatch.setitem(CAPABILITIES, engine, CAPABILITIES[engine] - {"regex"})
    with pytest.raises(UnsupportedRuleError) as info:
        compile_model(REGEX_MODEL, sources, wanted, engine)
    assert "cto" in str(info.value) and engine in str(info.value)


CASES = {c.name.removesuffix(".yaml"): c for c in map(load_case, sorted(CASES_DIR.glob("*.yaml")))}
# distinct counts, account scope, recency, ratio and exclusions: scored and explained on Spark too
NEW_KINDS = ("distinct-counts", "account-committee", "recency-ratio", "pql-trial", "seat-share", "exclusions",
             "burst-as-of")  # fmt: skip
SPARK_CASES = ("operators-numeric", "operators-text", "half-life", "stitching", "text-folding-regex",
               "numbers-in-text", "sums-exact", "decay-sum-exact", "attribute-names-unicode", *NEW_KINDS)  # fmt: skip


def _case_on(engine_ledgers: Any, case: Case, folder: Path) -> list[str]:
    """Run a hand-computed case (tests/cases) through the store, then score its Parquet export elsewhere."""
    store = Store.from_url(str(folder / "case.db"))
    try:
        run_case(store, case)
        files = export(store, folder / "parquet")
        ids = external_ids(store)
    finally:
        store.dispose()
    got = {ids[lg.lead_id]: lg for lg in engine_ledgers(case.model, files, case.as_of)}
    problems = [
        f"{u}: {p}"
        for u, want in case.expect.items()
        for p in compare_case(got[str(u)], want, tolerant=case.decays)
    ]
    return problems + [f"unexpected lead {u}" for u in sorted(set(got) - {str(k) for k in case.expect})]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_computed_cases_on_duckdb(name: str, tmp_path: Path) -> None:
    problems = _case_on(duckdb_ledgers, CASES[name], tmp_path)
    assert not problems, "\n".join(problems)


def duckdb_explanations(
    model: ScoringModel, files: dict[str, ParquetLocation], as_of: int
) -> list[Explanation]:
    import duckdb

    con = duckdb.connect()
    try:
        views = {name: relation(name, parquet_view(con, name, loc.files())) for name, loc in files.items()}
        sources = Sources(**views)
        sql = render_sql(compile_contributions(model, sources, targets(sources, as_of), "duckdb"), "duckdb")
        return read_explanations(
            model, [row for batch in arrow_batches(con, sql, 1000) for row in batch.to_pylist()]
        )
    finally:
        con.close()


def spark_explanations(
    spark: Any, model: ScoringModel, files: dict[str, ParquetLocation], as_of: int
) -> list[Explanation]:
    from leadscore.batch.spark_engine import parquet_view as spark_view

    sources = Sources(**{name: relation(name, spark_view(spark, name, loc)) for name, loc in files.items()})
    sql = render_sql(compile_contributions(model, sources, targets(sources, as_of), "spark"), "spark")
    return read_explanations(model, [row.asDict() for row in spark.sql(sql).collect()])


def _explained_on(engine_explanations: Any, case: Case, folder: Path) -> list[str]:
    """A hand-computed case explained on another engine: the case runner's check that the events under
    every line add up to it and the lines to the score, and the events the case expects."""
    store = Store.from_url(str(folder / "case.db"))
    try:
        run_case(store, case)
        files = export(store, folder / "parquet")
        ids = external_ids(store)
    finally:
        store.dispose()
    got = {ids[x.ledger.lead_id]: x for x in engine_explanations(case.model, files, case.as_of)}
    problems = [f"{u}: {p}" for u, x in got.items() for p in share_problems(x)]
    for u, want in case.expect.items():
        if str(u) not in got:
            problems.append(f"{u}: no explanation")
            continue
        problems += [f"{u}: {p}" for p in compare_events(got[str(u)], want.get("events") or {})]
    return problems + [f"unexpected lead {u}" for u in sorted(set(got) - {str(k) for k in case.expect})]


@pytest.mark.parametrize("name", sorted(CASES))
def test_hand_computed_cases_explained_on_duckdb(name: str, tmp_path: Path) -> None:
    problems = _explained_on(duckdb_explanations, CASES[name], tmp_path)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    "name", ("explain-once", "explain-threshold", "explain-group-cap", "ties-by-code-point", *NEW_KINDS)
)
def test_hand_computed_cases_explained_on_spark(spark: Any, name: str, tmp_path: Path) -> None:
    """A few cases only: Spark is slow to start each query."""
    problems = _explained_on(
        lambda model, files, as_of: spark_explanations(spark, model, files, as_of), CASES[name], tmp_path
    )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", SPARK_CASES)
def test_hand_computed_cases_on_spark(spark: Any, name: str, tmp_path: Path) -> None:
    problems = _case_on(
        lambda model, files, as_of: spark_ledgers(spark, model, files, as_of), CASES[name], tmp_path
    )
    assert not problems, "\n".join(problems)


# ``leadscore batch score`` end to end: the README-style command on every engine, the same output.

BENCH_MODEL = ROOT / "bench" / "model.yaml"


@pytest.fixture(scope="module")
def demo_store(workdir: Path) -> Path:
    """A store with generated data (bench/datagen.py, small) and its Parquet export."""
    sys.path.insert(0, str(ROOT / "bench"))
    import datagen

    db = workdir / "demo.db"
    store = Store.from_url(str(db))
    try:
        datagen.load(store, datagen.Spec(leads=120, events=4_000, seed=5))
        export(store, workdir / "demo")
    finally:
        store.dispose()
    return db


def _batch(*args: str) -> None:
    result = CliRunner().invoke(app, ["batch", "score", "--as-of", "2025-06-30", *args])
    assert result.exit_code == 0, result.output
    assert "scored 120 leads" in result.output


def _outputs(folder: Path) -> tuple[Any, Any]:
    import pyarrow.parquet as pq

    scores = pq.read_table(folder / "scores.parquet").sort_by("lead_id")
    ledger = pq.read_table(folder / "ledger.parquet").sort_by(
        [("lead_id", "ascending"), ("rule_id", "ascending")]
    )
    return scores, ledger


def assert_same_outputs(a: tuple[Any, Any], b: tuple[Any, Any]) -> None:
    for x, y in zip(a, b, strict=True):
        assert x.num_rows == y.num_rows and x.schema == y.schema
        for name in x.column_names:
            u, v = x.column(name).to_pylist(), y.column(name).to_pylist()
            if x.schema.field(name).type == "double":
                assert all(
                    p == q or abs(p - q) <= RELATIVE * max(abs(p), abs(q), 1.0)
                    for p, q in zip(u, v, strict=True)
                ), name
            else:
                assert u == v, name


@pytest.fixture(scope="module")
def sqlite_output(demo_store: Path, workdir: Path) -> tuple[Any, Any]:
    out = workdir / "out-sqlite"
    _batch("--engine", "sqlite", "--db", str(demo_store), "--events", "store", "--leads", "store",
           "--accounts", "store", "--identities", "store", "--model", str(BENCH_MODEL), "--out", str(out))  # fmt: skip
    scores, ledger = _outputs(out)
    assert scores.num_rows == 120 and ledger.num_rows > 120
    assert set(ledger.column("kind").to_pylist()) >= {"fit", "each", "once", "threshold"}
    return scores, ledger


def _parquet_args(workdir: Path) -> list[str]:
    d = workdir / "demo"
    return ["--events", str(d / "events.parquet"), "--leads", str(d / "leads.parquet"),
            "--accounts", str(d / "accounts.parquet"), "--identities", str(d / "identities.parquet"),
            "--model", str(BENCH_MODEL)]  # fmt: skip


def test_batch_score_on_duckdb_writes_what_sqlite_writes(sqlite_output: Any, workdir: Path) -> None:
    out = workdir / "out-duckdb"
    _batch("--engine", "duckdb", *_parquet_args(workdir), "--out", str(out))
    assert_same_outputs(sqlite_output, _outputs(out))


def test_batch_score_into_duckdb_tables(sqlite_output: Any, workdir: Path) -> None:
    import duckdb

    path = workdir / "scores.duckdb"
    _batch("--engine", "duckdb", *_parquet_args(workdir), "--duckdb", str(path), "--out", "table:lead_scores")
    con = duckdb.connect(str(path))
    try:
        scores = con.sql("SELECT * FROM lead_scores ORDER BY lead_id").to_arrow_table()
        lines = con.execute("SELECT count(*) FROM lead_scores_ledger").fetchone()
    finally:
        con.close()
    assert scores.column("lead_id").to_pylist() == sqlite_output[0].column("lead_id").to_pylist()
    assert scores.column("score").to_pylist() == pytest.approx(
        sqlite_output[0].column("score").to_pylist(), rel=RELATIVE
    )
    assert lines == (sqlite_output[1].num_rows,)


def test_batch_score_on_spark_writes_what_sqlite_writes(
    spark: Any, sqlite_output: Any, workdir: Path
) -> None:
    out = workdir / "out-spark"
    _batch("--engine", "spark", *_parquet_args(workdir), "--out", str(out))
    assert_same_outputs(sqlite_output, _outputs(out))


@pytest.mark.postgres
def test_batch_score_on_postgres_reads_parquet(
    pg_db: Store | None, sqlite_output: Any, workdir: Path
) -> None:
    if pg_db is None:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    out = workdir / "out-postgres"
    _batch("--engine", "postgres", "--db", pg_db.url, *_parquet_args(workdir), "--out", str(out))
    assert_same_outputs(sqlite_output, _outputs(out))


def test_batch_score_refuses_an_engine_it_does_not_know(workdir: Path) -> None:
    result = CliRunner().invoke(
        app, ["batch", "score", "--engine", "oracle", *_parquet_args(workdir), "--out", "x"]
    )
    assert result.exit_code != 0 and "oracle" in result.output


# ``batch score`` never scores without the relations that attribute events and accounts (issue #15):
# left out, they are read from the store when the events (leads) come from it; otherwise refused.

ENGINES_HERE = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres), "duckdb", "spark"]


def _engine_db(engine: str, request: pytest.FixtureRequest, demo_store: Path) -> Iterator[str]:
    """The --db for a run on ``engine`` holding the demo data (a PostgreSQL copy for postgres)."""
    if engine == "spark":
        request.getfixturevalue("spark")
    if engine != "postgres":
        yield str(demo_store)
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    import datagen

    from pg_schema import pg_schema_store

    with pg_schema_store("b") as pg:
        datagen.load(pg, datagen.Spec(leads=120, events=4_000, seed=5))  # as demo_store
        yield pg.url


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_batch_score_reads_the_left_out_relations_from_the_store(
    engine: str, request: pytest.FixtureRequest, demo_store: Path, sqlite_output: Any, workdir: Path
) -> None:
    """--events store --leads store alone scores as with all four named: engagement is not dropped."""
    for db in _engine_db(engine, request, demo_store):
        out = workdir / f"out-implied-{engine}"
        result = CliRunner().invoke(
            app,
            ["batch", "score", "--as-of", "2025-06-30", "--engine", engine, "--db", db, "--events", "store",
             "--leads", "store", "--model", str(BENCH_MODEL), "--out", str(out)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "reading --identities store" in result.output and "reading --accounts store" in result.output
        got = _outputs(out)
        assert_same_outputs(sqlite_output, got)
        # the data set's events reach their leads only through identities (person keys are not lead ids)
        assert max(got[0].column("engagement_score").to_pylist()) > 0


@pytest.mark.parametrize("engine", ENGINES_HERE)
def test_batch_score_refuses_sources_that_leave_out_identities_or_accounts(
    engine: str, request: pytest.FixtureRequest, demo_store: Path, workdir: Path
) -> None:
    d = workdir / "demo"
    for db in _engine_db(engine, request, demo_store):
        base = ["batch", "score", "--engine", engine, "--db", db, "--model", str(BENCH_MODEL), "--out", "x"]
        parquet = ["--events", str(d / "events.parquet"), "--leads", str(d / "leads.parquet")]
        result = CliRunner().invoke(app, [*base, *parquet])
        assert result.exit_code != 0
        message = str(result.exception)
        assert "incomplete sources" in message
        assert "--identities is missing" in message and "--accounts is missing" in message, message
        # events from the store with leads from Parquet: only the accounts are missing
        result = CliRunner().invoke(app, [*base, "--events", "store", "--leads", str(d / "leads.parquet")])
        assert result.exit_code != 0
        assert "--accounts is missing" in str(result.exception)
        assert "--identities" not in str(result.exception)
        assert not Path("x").exists()


def test_batch_score_takes_none_said_out_loud(sqlite_output: Any, workdir: Path) -> None:
    """``--identities none``: each event's person_key is its lead's id, so these events reach no lead."""
    d, out = workdir / "demo", workdir / "out-none"
    _batch("--engine", "duckdb", "--events", str(d / "events.parquet"), "--leads", str(d / "leads.parquet"),
           "--accounts", str(d / "accounts.parquet"), "--identities", "none", "--model", str(BENCH_MODEL),
           "--out", str(out))  # fmt: skip
    scores = _outputs(out)[0]
    assert set(scores.column("engagement_score").to_pylist()) == {0}
    assert scores.column("fit_score").to_pylist() == sqlite_output[0].column("fit_score").to_pylist()
    result = CliRunner().invoke(app, ["batch", "score", "--events", "none", "--leads", "store", "--out", "x"])
    assert result.exit_code != 0 and "only --identities and --accounts may be none" in result.output


DECAYED = ScoringModel.model_validate(
    {
        "model": "decayed-reads",
        "engagement": [
            {"id": "read", "name": "Read", "event": {"type": "track", "name": "Read"}, "points": 1.5},
            {"id": "whole", "name": "Whole", "event": {"type": "track", "name": "Read"}, "points": 2,
             "half_life": "none", "cap": 1000000},
        ],
        "defaults": {"half_life": "7d"},
        "scale": {"fit_max": 10, "engagement_max": 100000},
    }
)  # fmt: skip


def test_how_a_rule_sum_is_spelled_is_part_of_the_statement_cache_key() -> None:
    """Two models alike but for their points share a cached statement unless the spelling is in the key."""
    whole, half = (
        ScoringModel.model_validate(
            {"model": "m", "engagement": [{"id": "r", "name": "R", "event": {"type": "page"}, "points": p}]}
        )
        for p in (2, 2.5)
    )
    store_sources = Store.from_url("sqlite://").sources()
    queries = [compile_model(m, store_sources, all_leads(AS_OF), "postgresql") for m in (whole, half)]
    keys = [q._generate_cache_key() for q in queries]
    assert keys[0] is not None and keys[1] is not None and keys[0].key != keys[1].key
    whole_sql, half_sql = (render_sql(q, "postgresql") for q in queries)
    assert "AS BIGINT" not in whole_sql and "AS BIGINT" in half_sql


@pytest.mark.postgres
def test_postgres_scores_do_not_depend_on_how_parallel_workers_split_the_events(pg_db: Store | None) -> None:
    """Decayed points are summed in fixed point, so a plan whose parallel workers each aggregate part of a
    lead's events gives the same bits as the serial plan (float partial sums added in arrival order do not).
    """
    if pg_db is None:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    _load(pg_db, [])
    with pg_db.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO leads (id, external_id, attributes, created_ms, updated_ms) "
                "SELECT g, 'lead-' || g, '{}', 0, 0 FROM generate_series(1, 4) AS g"
            )
        )
        conn.execute(
            text(
                "INSERT INTO identities (key, lead_id, created_ms) SELECT 'u:' || g, g, 0 FROM generate_series(1, 4) AS g"
            )
        )
        # 40,000 events, the four leads' interleaved, a minute and a bit apart going back from as_of
        conn.execute(
            text(
                "INSERT INTO events (message_id, type, name, person_key, properties, context, ts, received_ms, source) "
                "SELECT 'm' || g, 'track', 'Read', 'u:' || (g % 4 + 1), '{}', '{}', :as_of - CAST(g AS BIGINT) * 61001, 0, 'test' "
                "FROM generate_series(1, 40000) AS g"
            ),
            {"as_of": AS_OF},
        )
        conn.execute(text("ANALYZE"))
    query = compile_model(DECAYED, pg_db.sources(), all_leads(AS_OF), "postgresql")
    serial = {"max_parallel_workers_per_gather": "0"}
    split = {
        "max_parallel_workers_per_gather": "2", "parallel_setup_cost": "0", "parallel_tuple_cost": "0",
        "min_parallel_table_scan_size": "0", "enable_nestloop": "off", "enable_mergejoin": "off",
        "enable_indexscan": "off", "enable_indexonlyscan": "off", "enable_bitmapscan": "off",
    }  # fmt: skip

    def run(setting: dict[str, str]) -> tuple[str, list[Any]]:
        with pg_db.connect() as conn:
            for name, value in setting.items():
                conn.exec_driver_sql(f"SET {name} = {value}")
            sql = str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
            plan = "\n".join(row[0] for row in conn.exec_driver_sql("EXPLAIN " + sql))
            return plan, [tuple(row) for row in conn.execute(query)]

    serial_plan, serial_rows = run(serial)
    split_plan, split_rows = run(split)
    assert "Parallel" not in serial_plan and "Parallel Seq Scan on events" in split_plan
    assert len(serial_rows) == 4
    assert split_rows == serial_rows  # every column, to the bit
    assert run(split)[1] == serial_rows


def test_regex_on_spark(spark: Any) -> None:
    """tests/test_regex_engines.py's patterns and texts, each answer as RE2 reads the pattern ignoring case,
    in one Spark query (Spark is slow to start each)."""
    from sqlalchemy import literal

    from leadscore.compile.dialects import RegexI
    from test_regex_engines import CASES as REGEX_CASES

    columns = [
        RegexI(literal(text), pattern).label(f"c{i}") for i, (pattern, text, _) in enumerate(REGEX_CASES)
    ]
    row = spark.sql(render_sql(select(*columns), "spark")).collect()[0]
    got = [(pattern, text, row[f"c{i}"]) for i, (pattern, text, _) in enumerate(REGEX_CASES)]
    assert got == REGEX_CASES
