"""``leadscore batch score``: score every lead where the data is (SQLite, PostgreSQL, DuckDB, Spark)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from leadscore.cli.model_cmds import load_or_exit
from leadscore.cli.options import AsOf, Db, parse_as_of
from leadscore.cli.render import console
from leadscore.errors import LeadscoreError

if TYPE_CHECKING:
    from leadscore.batch.locations import Source


app = typer.Typer(help="Batch scoring on SQLite, PostgreSQL, DuckDB or Spark.", no_args_is_help=True)

SOURCE_HELP = "store, table:NAME, or Parquet (a file, a directory of files, or a glob)."


def _location(value: str | None, option: str) -> Source | None:
    from leadscore.batch.locations import NoLocation, parse_location

    if value is None:
        return None
    try:
        location = parse_location(value)
    except LeadscoreError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    if isinstance(location, NoLocation) and option not in ("--identities", "--accounts"):
        raise typer.BadParameter("only --identities and --accounts may be none", param_hint=option)
    return location


@app.command("score")
def score(
    events: Annotated[str, typer.Option("--events", help=f"Events: {SOURCE_HELP}")],
    leads: Annotated[str, typer.Option("--leads", help=f"Leads: {SOURCE_HELP}")],
    out: Annotated[
        str,
        typer.Option(
            "--out",
            help="A directory for scores.parquet and ledger.parquet, table:NAME (tables NAME and "
            "NAME_ledger), or store (the active model's current scores).",
        ),
    ],
    engine: Annotated[
        str, typer.Option("--engine", help="sqlite, postgres, duckdb or spark.", case_sensitive=False)
    ] = "duckdb",
    accounts: Annotated[
        str | None,
        typer.Option(
            "--accounts",
            help=f"Accounts: {SOURCE_HELP} Or none (no lead has an account). Default: store when --leads "
            "is store, else required.",
        ),
    ] = None,
    identities: Annotated[
        str | None,
        typer.Option(
            "--identities",
            help=f"Identities: {SOURCE_HELP} Or none (each event's person_key is its lead's id). "
            "Default: store when --events is store, else required.",
        ),
    ] = None,
    as_of: AsOf = None,
    model: Annotated[
        str, typer.Option("--model", help="A model YAML file, or 'active' for the store's active version.")
    ] = "active",
    db: Db = None,
    duckdb_file: Annotated[
        str | None,
        typer.Option("--duckdb", help="DuckDB database file for table: locations (default: in memory)."),
    ] = None,
    master: Annotated[
        str | None,
        typer.Option("--master", help="Spark master URL (default: the active session, else local[*])."),
    ] = None,
    score_names: Annotated[
        list[str] | None,
        typer.Option(
            "--score",
            help="The named score to run (default: the primary). Repeat it, or give --all-scores, to run "
            "several in one job: DuckDB reads the sources once for all of them; --out then holds one "
            "folder (or table:NAME_SCORE) per score.",
        ),
    ] = None,
    all_scores: Annotated[
        bool, typer.Option("--all-scores", help="Run every named score's active version in one job.")
    ] = False,
) -> None:
    """Score every lead as of a time (default now); write scores and the per-rule ledger in long form.

    The model compiles through the same compiler as `leadscore score`; the engine runs it where the
    data is. Every source names the same relations the store has (docs/batch.md lists the columns).
    With --score NAME, 'active' is that named score's active version (and --out store writes that score).
    """
    from leadscore.batch import BatchJob, run_batch
    from leadscore.batch.run import ENGINES, NamedModel, complete_sources, run_batch_scores
    from leadscore.scoring.pipeline import active_model, active_models
    from leadscore.scoring.run import Active, now_ms
    from leadscore.settings import database_url
    from leadscore.store import Store
    from leadscore.store.model_versions import active_version
    from leadscore.store.score_names import resolve

    engine = engine.lower()
    if engine not in ENGINES:
        raise typer.BadParameter(f"{engine!r}: use one of {', '.join(ENGINES)}", param_hint="--engine")
    located = {
        name: _location(value, f"--{name}")
        for name, value in (
            ("events", events),
            ("leads", leads),
            ("out", out),
            ("accounts", accounts),
            ("identities", identities),
        )
    }
    version_id, version_score = None, None
    several = all_scores or len(score_names or []) > 1
    score_name = score_names[0] if score_names and not several else None
    named: list[NamedModel] = []
    if several and model != "active":
        raise typer.BadParameter(
            "several scores run their active versions: leave --model out", param_hint="--model"
        )
    if several:
        store = Store.from_url(database_url(db))
        try:
            with store.connect() as conn:
                wanted = (
                    None if all_scores else [resolve(conn, name) for name in dict.fromkeys(score_names or [])]
                )
                actives = {
                    a.version.score_name: NamedModel(a.version.score_name, a.version.id, a.model)
                    for a in active_models(conn)
                    if a.version is not None
                }
        finally:
            store.dispose()
        for name in wanted if wanted is not None else list(actives):
            if name not in actives:
                raise LeadscoreError(f"score {name!r} has no active version: publish one")
            named.append(actives[name])
        scoring_model = named[0].model if named else None
    elif model == "active":
        store = Store.from_url(database_url(db))
        try:
            with store.connect() as conn:
                # a score named must have an active version (an unknown or retired one says so)
                active = Active.of(active_version(conn, score_name)) if score_name else active_model(conn)
        finally:
            store.dispose()
        if active is None or active.version is None:
            raise LeadscoreError("no active model: publish one, or give --model MODEL.yaml")
        scoring_model, version_id, version_score = active.model, active.version.id, active.version.score_name
    else:
        scoring_model = load_or_exit(Path(model))
    if scoring_model is None:
        raise LeadscoreError("no active model: publish one")
    job = BatchJob(
        engine=engine,
        events=located["events"],  # type: ignore[arg-type]
        leads=located["leads"],  # type: ignore[arg-type]
        out=located["out"],  # type: ignore[arg-type]
        accounts=located["accounts"],
        identities=located["identities"],
        model=scoring_model,
        as_of=parse_as_of(as_of) or now_ms(),
        db=database_url(db) if engine in ("sqlite", "postgres") or _needs_store(located) else None,
        duckdb=duckdb_file,
        master=master,
        version_id=version_id,
        score_name=version_score,
    )
    job, notes = complete_sources(job)
    for note in notes:
        console.print(f"reading {note}", highlight=False)
    started = time.perf_counter()
    if several:
        for one, result in zip(named, run_batch_scores(job, named), strict=True):
            console.print(
                f"{one.score_name}: scored {result.leads} leads on {engine} ({result.ledger_lines} ledger "
                f"lines) → {result.out}",
                highlight=False,
            )
        console.print(f"{len(named)} scores in {time.perf_counter() - started:.1f} s", highlight=False)
        return
    result = run_batch(job)
    console.print(
        f"scored {result.leads} leads on {engine} ({result.ledger_lines} ledger lines) → {result.out} "
        f"in {time.perf_counter() - started:.1f} s",
        highlight=False,
    )


def _needs_store(located: dict[str, Source | None]) -> bool:
    from leadscore.batch.locations import StoreLocation

    return any(isinstance(loc, StoreLocation) for loc in located.values())
