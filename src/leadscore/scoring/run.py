"""Run the compiled model: (lead, as_of) targets → ledgers. The single entry to scoring for every caller."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    CursorResult,
    Engine,
    Integer,
    MetaData,
    Select,
    Table,
    bindparam,
    column,
    event,
    func,
    literal,
    select,
    type_coerce,
    values,
)
from sqlalchemy.dialects.postgresql import ARRAY

from leadscore.collection import collection_paused
from leadscore.compile import Ledger, Sources, compile_model
from leadscore.compile.composite import SCORE_INDEX, compile_models
from leadscore.compile.ledger import columns_of, read_ledgers, read_totals_of
from leadscore.model import ScoringModel, loads_model
from leadscore.store.model_versions import ModelVersion
from leadscore.store.schema import leads
from leadscore.store.store import jit_off

POINTS_CHUNK = 5000
STATEMENTS = 64  # compiled scoring statements kept per process (model x sources x dialect x explain)
BOUND_DIALECTS = ("sqlite", "postgresql")


def now_ms() -> int:
    return int(time.time() * 1000)


PARSED = 32  # stored versions kept parsed per process
_PARSED: OrderedDict[tuple[str, str], ScoringModel] = OrderedDict()
_PARSED_LOCK = threading.Lock()


def model_of(yaml_text: str, label: str) -> ScoringModel:
    """Parse a stored model version once per process (a model with a list of 200,000 values takes
    seconds to parse)."""
    key = (yaml_text, label)
    with _PARSED_LOCK:
        model = _PARSED.get(key)
        if model is not None:
            _PARSED.move_to_end(key)
            return model
    return remember_model(yaml_text, label, loads_model(yaml_text, label, stored=True))


def remember_model(yaml_text: str, label: str, model: ScoringModel) -> ScoringModel:
    """Keep ``model`` as what ``model_of`` parses ``yaml_text`` to (a publication's own model, which it
    has parsed already); returns it."""
    with _PARSED_LOCK:
        _PARSED[(yaml_text, label)] = model
        _PARSED.move_to_end((yaml_text, label))
        while len(_PARSED) > PARSED:
            _PARSED.popitem(last=False)
    return model


@dataclass(frozen=True)
class Active:
    """A model ready to score: the parsed model and the version it came from (None for a draft file)."""

    model: ScoringModel
    version: ModelVersion | None = None

    @classmethod
    def of(cls, version: ModelVersion) -> Active:
        return cls(model_of(version.yaml, version.label), version)


def all_leads(as_of: int, lead_ids: Iterable[int] | None = None) -> Select[tuple[int, int]]:
    query = select(leads.c.id.label("lead_id"), literal(as_of, BigInteger).label("as_of"))
    if lead_ids is not None:
        query = query.where(leads.c.id.in_(list(lead_ids)))
    return query


def points(pairs: Sequence[tuple[int, int]]) -> Select[tuple[int, int]]:
    """Explicit (lead, as_of) pairs: history and backtests score many times per lead."""
    table = (
        values(column("lead_id", Integer), column("as_of", BigInteger), name="points")
        .data(list(pairs))
        .cte("points")
    )
    return select(table.c.lead_id, table.c.as_of)


def score(
    conn: Connection, model: ScoringModel, sources: Sources, targets: Select[tuple[int, int]]
) -> list[Ledger]:
    """Score every (lead_id, as_of) row of ``targets``: the whole-table path (publish, rescore)."""
    query = compile_model(model, sources, targets, engine=conn.dialect.name)
    _session_settings(conn)
    return read_result((model,), conn.execute(query))[0]


def score_everyone(
    conn: Connection, models: Sequence[ScoringModel], sources: Sources, as_of: int
) -> list[list[Ledger]]:
    """``score_models`` of every lead as of ``as_of`` (full rescoring): on SQLite and PostgreSQL the
    statement reads the time from a bound parameter and is kept across calls as ``bound_statement`` keeps
    one over bound pairs, so a repeated rescoring skips building and compiling it (several models' one
    statement took a tenth of a CPU-second to build and compile at every call)."""
    dialect = conn.dialect.name
    if dialect not in BOUND_DIALECTS:
        return score_models(conn, models, sources, all_leads(as_of))
    held = tuple(models)
    key = (tuple(id(m) for m in held), sources, dialect, "everyone")
    query = kept_statement(
        key,
        held,
        lambda targets: (
            compile_models(held, sources, targets, dialect)
            if len(held) > 1
            else compile_model(held[0], sources, targets, engine=dialect)  # ``score``'s statement
        ),
        dialect,
        targets=_EVERYONE,
    )
    _session_settings(conn)
    return read_result(held, execute_kept(conn, query, {EVERYONE_AS_OF: as_of}))


EVERYONE_AS_OF = "everyone_as_of"
# every lead at one bound time: the targets of ``score_everyone``'s kept statements
_EVERYONE = select(leads.c.id.label("lead_id"), bindparam(EVERYONE_AS_OF, type_=BigInteger).label("as_of"))


def score_models(
    conn: Connection, models: Sequence[ScoringModel], sources: Sources, targets: Select[tuple[int, int]]
) -> list[list[Ledger]]:
    """``score`` for several models in one statement that reads the events once
    (``compile_models``): each model's ledgers, in the order of ``models``."""
    if len(models) == 1:
        return [score(conn, models[0], sources, targets)]
    query = compile_models(models, sources, targets, engine=conn.dialect.name)
    _session_settings(conn)
    return read_result(models, conn.execute(query))


def score_points_models(
    conn: Connection,
    models: Sequence[ScoringModel],
    sources: Sources,
    pairs: Sequence[tuple[int, int]],
    *,
    explain: bool = True,
) -> list[list[Ledger]]:
    """``score_points`` for several models in one statement per chunk that reads the events once: each
    model's ledgers (totals only, without lines, unless ``explain``), in the order of ``models``."""
    out: list[list[Ledger]] = [[] for _ in models]
    for chunk in points_models_chunks(conn, models, sources, pairs, explain=explain):
        for i, ledgers in enumerate(chunk):
            out[i].extend(ledgers)
    return out


def points_models_chunks(
    conn: Connection,
    models: Sequence[ScoringModel],
    sources: Sources,
    pairs: Sequence[tuple[int, int]],
    *,
    explain: bool = True,
) -> Iterator[list[list[Ledger]]]:
    """``score_points_models`` a chunk of pairs at a time, as each chunk is read: per chunk, each model's
    ledgers in the order of ``models`` (a backtest's every checkpoint with lines would not fit at once)."""
    for start in range(0, len(pairs), POINTS_CHUNK):
        yield score_models_chunk(conn, models, sources, pairs[start : start + POINTS_CHUNK], explain=explain)


def score_models_chunk(
    conn: Connection,
    models: Sequence[ScoringModel],
    sources: Sources,
    chunk: Sequence[tuple[int, int]],
    *,
    explain: bool = True,
) -> list[list[Ledger]]:
    """One statement of ``points_models_chunks`` for the pairs ``chunk`` (a caller choosing its own chunks:
    the backtest keeps an account's checkpoints together): each model's ledgers in the order of ``models``."""
    dialect = conn.dialect.name
    _session_settings(conn)
    if dialect in BOUND_DIALECTS:
        return read_bound(
            conn,
            models,
            lambda table: bound_models_statement(models, sources, dialect, explain, table=table),
            chunk,
            explain=explain,
        )
    query = compile_models(models, sources, points(chunk), dialect, explain)
    return read_result(models, conn.execute(query), explain=explain)


def read_bound(
    conn: Connection,
    models: Sequence[ScoringModel],
    statement: Callable[[bool], Select[Any]],
    pairs: Sequence[tuple[int, int]],
    *,
    explain: bool,
) -> list[list[Ledger]]:
    """Run the statement of ``models`` compiled over bound targets (``statement(table)``: over ``TARGETS``
    or not) for ``pairs``, as ``read_result`` reads it; many pairs on SQLite go through ``TARGETS``."""
    table = conn.dialect.name == "sqlite" and len(pairs) >= TABLE_TARGETS
    if not table:
        return read_result(
            models,
            execute_kept(conn, statement(False), target_params(conn.dialect.name, pairs)),
            explain=explain,
        )
    _fill_targets(conn, pairs)
    try:
        found = read_result(models, execute_kept(conn, statement(True)), explain=explain)
    except BaseException:
        # empty for the next call on this connection too when this one failed: a caller may go on in the
        # same transaction (no rollback to empty it), whose next targets would join these; a deletion that
        # fails as well (the connection is gone) must not hide the first error
        with contextlib.suppress(Exception):
            conn.execute(TARGETS.delete())
        raise
    conn.execute(TARGETS.delete())  # empty for the next call
    return found


def read_result(
    models: Sequence[ScoringModel], result: CursorResult[Any], *, explain: bool = True
) -> list[list[Ledger]]:
    """The rows of a scoring statement of ``models`` (``compile_model``'s for one, ``compile_models``'
    for several: each row to the model its ``score_index`` names) as each model's ledgers, read a
    batch at a time (``compile.read_ledgers``; totals only, without lines, unless ``explain``)."""
    keys = list(result.keys())
    with collection_paused():
        rows = result.fetchall()
        parts: list[Sequence[Any]]
        if SCORE_INDEX not in keys:
            parts = [rows]
        else:
            at = keys.index(SCORE_INDEX)
            split: list[list[Any]] = [[] for _ in models]
            for row in rows:
                split[int(row[at])].append(row)
            parts = list(split)
        if len(parts) != len(models):
            raise ValueError(f"read_result: rows of {len(parts)} scores for {len(models)} models")
        return [
            read_ledgers(model, columns_of(keys, part)) if explain else read_totals_of(columns_of(keys, part))
            for model, part in zip(models, parts, strict=True)
        ]


def score_rows(
    conn: Connection, model: ScoringModel, sources: Sources, targets: Select[tuple[int, int]]
) -> Select[Any]:
    """The compiled model's score rows (lead_id, as_of, scores, grade, level, band; no ledger columns) for
    ``targets``, as a query to aggregate inside the database: a draft's score distribution."""
    _session_settings(conn)
    return compile_model(model, sources, targets, engine=conn.dialect.name, explain=False)


def score_points(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    pairs: Sequence[tuple[int, int]],
) -> list[Ledger]:
    """Score explicit (lead, as_of) pairs: a lead's current score, history points, a journey, backtests.

    On SQLite and PostgreSQL the pairs travel as bound parameters of a statement compiled once per model
    (see ``bound_statement``), so a call for one lead costs the query, not the query's construction.
    Pairs naming no lead give no ledger.
    """
    if conn.dialect.name not in BOUND_DIALECTS:
        out: list[Ledger] = []
        for start in range(0, len(pairs), POINTS_CHUNK):
            out.extend(score(conn, model, sources, points(pairs[start : start + POINTS_CHUNK])))
        return out
    query = bound_statement(model, sources, conn.dialect.name)
    _session_settings(conn)
    ledgers: list[Ledger] = []
    for start in range(0, len(pairs), POINTS_CHUNK):
        params = target_params(conn.dialect.name, pairs[start : start + POINTS_CHUNK])
        ledgers.extend(read_result((model,), execute_kept(conn, query, params))[0])
    return ledgers


def score_totals(
    conn: Connection, model: ScoringModel, sources: Sources, pairs: Sequence[tuple[int, int]]
) -> Iterator[Ledger]:
    """The totals of explicit (lead, as_of) pairs (ledgers without lines), chunk by chunk as they are
    read: the scoring query without the columns only explanations read (``compile_model(explain=False)``:
    the same stages and arithmetic), for what reads no ledger line (backtests, history rows)."""
    dialect = conn.dialect.name
    if dialect not in BOUND_DIALECTS:
        for start in range(0, len(pairs), POINTS_CHUNK):
            query = compile_model(model, sources, points(pairs[start : start + POINTS_CHUNK]), dialect, False)
            yield from read_result((model,), conn.execute(query), explain=False)[0]
        return
    query = bound_statement(model, sources, dialect, totals_only)
    _session_settings(conn)
    for start in range(0, len(pairs), POINTS_CHUNK):
        params = target_params(dialect, pairs[start : start + POINTS_CHUNK])
        yield from read_result((model,), execute_kept(conn, query, params), explain=False)[0]


def score_leads(
    conn: Connection, model: ScoringModel, sources: Sources, lead_ids: Iterable[int], as_of: int
) -> list[Ledger]:
    """Score the given leads as of one time (leads that do not exist are left out)."""
    return score_points(conn, model, sources, [(lead_id, as_of) for lead_id in sorted(set(lead_ids))])


def _session_settings(conn: Connection) -> None:
    jit_off(conn)


# -- statements compiled once, targets bound per call ----------------------------------------------------

Compiler = Callable[[ScoringModel, Sources, Select[Any], str], Select[Any]]
# keyed by (model ids, sources, dialect, compiler or explain); the models are held beside the statement
_STATEMENTS: OrderedDict[tuple[Any, ...], tuple[tuple[ScoringModel, ...], Select[Any]]] = OrderedDict()
_STATEMENTS_LOCK = threading.Lock()


def bound_targets(dialect: str) -> Select[int, int]:
    """(lead_id, as_of) targets read from bound parameters: two arrays on PostgreSQL, one JSON array of
    pairs on SQLite. The statement text is the same for every call, so it is built and compiled once."""
    if dialect == "postgresql":
        pairs = (
            func.unnest(
                bindparam("target_leads", type_=ARRAY(BigInteger)),
                bindparam("target_times", type_=ARRAY(BigInteger)),
            )
            .table_valued("lead_id", "as_of")
            .render_derived()
        )
        return select(
            type_coerce(pairs.c.lead_id, BigInteger).label("lead_id"),
            type_coerce(pairs.c.as_of, BigInteger).label("as_of"),
        )
    rows = func.json_each(bindparam("target_pairs")).table_valued("value")
    return select(
        type_coerce(func.json_extract(rows.c.value, "$[0]"), BigInteger).label("lead_id"),
        type_coerce(func.json_extract(rows.c.value, "$[1]"), BigInteger).label("as_of"),
    )


# Many targets on SQLite: in a temporary table (per connection) keyed by (lead, time), which the scoring
# query walks in key order, so its GROUP BY of the targets' events needs no sort (from a JSON array it
# sorted every (target, event) row: 40 % of 50,000 history points' execution). The rows are visited in the
# same order either way (the sort keeps the order rows arrive in within a target), so the sums are the same
# to the bit. ``read_bound`` fills it from the same JSON parameter and empties it.
TABLE_TARGETS = 1000  # from this many targets a call fills the table (two statements more than the array)
_TEMP = MetaData()
TARGETS = Table(
    "leadscore_targets",
    _TEMP,
    Column("lead_id", BigInteger, primary_key=True, autoincrement=False),
    Column("as_of", BigInteger, primary_key=True, autoincrement=False),
    prefixes=["TEMPORARY"],
    sqlite_with_rowid=False,
)
_TARGETS_READY = "leadscore_targets"  # in a connection's ``info`` once the table exists there


def table_targets() -> Select[Any]:
    return select(TARGETS.c.lead_id, TARGETS.c.as_of)


def _fill_targets(conn: Connection, pairs: Sequence[tuple[int, int]]) -> None:
    """``pairs`` into the (empty) ``TARGETS`` table, by one statement; a pair given twice is one target."""
    if not conn.info.get(_TARGETS_READY):
        TARGETS.create(conn, checkfirst=True)
        conn.info[_TARGETS_READY] = True
    pairs_json = bound_targets("sqlite").subquery()
    conn.execute(
        TARGETS.insert().prefix_with("OR IGNORE").from_select(["lead_id", "as_of"], select(pairs_json)),
        target_params("sqlite", pairs),
    )


@event.listens_for(Engine, "rollback")
def _forget_targets(conn: Connection) -> None:
    with contextlib.suppress(Exception):  # the rollback may have undone the creation
        conn.info.pop(_TARGETS_READY, None)


@event.listens_for(Engine, "rollback_savepoint")
def _forget_targets_savepoint(conn: Connection, name: str, context: object) -> None:
    _forget_targets(conn)


def target_params(dialect: str, pairs: Sequence[tuple[int, int]]) -> dict[str, Any]:
    if dialect == "postgresql":
        return {"target_leads": [p[0] for p in pairs], "target_times": [p[1] for p in pairs]}
    return {"target_pairs": orjson.dumps([[int(p[0]), int(p[1])] for p in pairs]).decode()}


def _scoring(model: ScoringModel, sources: Sources, targets: Select[Any], dialect: str) -> Select[Any]:
    return compile_model(model, sources, targets, engine=dialect)


def totals_only(model: ScoringModel, sources: Sources, targets: Select[Any], dialect: str) -> Select[Any]:
    """The scoring query without the columns only explanations read (same stages and arithmetic)."""
    return compile_model(model, sources, targets, engine=dialect, explain=False)


def bound_statement(
    model: ScoringModel,
    sources: Sources,
    dialect: str,
    compiler: Compiler = _scoring,
    *,
    table: bool = False,
) -> Select[Any]:
    """The model compiled (by ``compiler``: the scoring query unless told) over bound targets, kept per
    (model object, sources, dialect, compiler).

    SQLAlchemy then finds the statement's compiled SQL in its cache by a key it memoises on the
    statement object, so a repeated call skips both the construction and the compilation. Parsed model
    versions are themselves cached objects (``model_of``), so the real-time path hits this cache.
    """
    key = ((id(model),), sources, dialect, compiler, table)
    return kept_statement(
        key, (model,), lambda targets: compiler(model, sources, targets, dialect), dialect, table=table
    )


def bound_models_statement(
    models: Sequence[ScoringModel],
    sources: Sources,
    dialect: str,
    explain: bool = True,
    *,
    table: bool = False,
) -> Select[Any]:
    """``compile_models`` over bound targets, kept as ``bound_statement`` keeps one model's."""
    held = tuple(models)
    key = (tuple(id(m) for m in held), sources, dialect, explain, table)
    return kept_statement(
        key,
        held,
        lambda targets: compile_models(held, sources, targets, dialect, explain),
        dialect,
        table=table,
    )


def kept_statement(
    key: tuple[Any, ...],
    models: tuple[ScoringModel, ...],
    build: Callable[[Select[Any]], Select[Any]],
    dialect: str,
    *,
    table: bool = False,
    targets: Select[Any] | None = None,
) -> Select[Any]:
    """The statement ``build`` makes over bound targets (with ``table``, over ``TARGETS``: SQLite only;
    ``targets``: over those), kept under ``key`` while ``models`` (whose ids the key names) are the same
    objects."""
    with _STATEMENTS_LOCK:
        hit = _STATEMENTS.get(key)
        if hit is not None and all(a is b for a, b in zip(hit[0], models, strict=True)):
            _STATEMENTS.move_to_end(key)
            return hit[1]
    if targets is None:
        targets = table_targets() if table else cast("Select[Any]", bound_targets(dialect))
    query = build(targets)
    with _STATEMENTS_LOCK:
        _STATEMENTS[key] = (models, query)  # the models are held, so their ids cannot be reused meanwhile
        while len(_STATEMENTS) > STATEMENTS:
            _STATEMENTS.popitem(last=False)
    return query


# -- kept statements executed by their SQL ---------------------------------------------------------------

# A kept statement's SQL and positional parameters as SQLAlchemy sends them to SQLite, worked out once per
# statement (by SQLAlchemy's own ``construct_expanded_state``): a call then copies the parameters and sets
# its own. SQLAlchemy builds them at every execution, one dictionary entry and one list item per bound
# value, and a model's values are bound (points, thresholds, half-lives, IN lists): 356 for one realistic
# model, 805 for three in one statement, 3.1 M and 7.2 M instructions a call of a processor batch's 100
# leads (of 69 M and 124 M; bench/README.md, "Three scores against one, twentieth session").
PREPARED = 64  # statements kept (as ``STATEMENTS``)
_PREPARED: OrderedDict[tuple[int, str], tuple[Select[Any], _Prepared | None]] = OrderedDict()


@dataclass(frozen=True)
class _Prepared:
    sql: str
    values: tuple[Any, ...]  # every positional parameter, the call's own as at preparation
    slots: tuple[tuple[str, tuple[int, ...]], ...]  # (a call's parameter, where it goes)


def execute_kept(
    conn: Connection, query: Select[Any], params: dict[str, Any] | None = None
) -> CursorResult[Any]:
    """``conn.execute(query, params)`` for a statement kept across calls (``kept_statement``), whose
    bound values other than ``params`` never change: on SQLite by its SQL and parameters prepared once
    (the same SQL and the same values SQLAlchemy would send); elsewhere, or where SQLAlchemy would
    convert a value or a result (a type's processor, a value computed at execution), by ``execute``."""
    given = params or {}
    key = (id(query), conn.dialect.name)
    with _STATEMENTS_LOCK:
        hit = _PREPARED.get(key)
        if hit is not None and hit[0] is query:
            _PREPARED.move_to_end(key)
    if hit is None or hit[0] is not query:
        hit = (query, _prepare(conn, query, given))
        with _STATEMENTS_LOCK:
            _PREPARED[key] = hit  # the statement is held, so its id cannot be reused meanwhile
            while len(_PREPARED) > PREPARED:
                _PREPARED.popitem(last=False)
    prepared = hit[1]
    if prepared is None or {name for name, _ in prepared.slots} != given.keys():
        return conn.execute(query, given)
    values = list(prepared.values)
    for name, at in prepared.slots:
        value = given[name]
        for i in at:
            values[i] = value
    return conn.exec_driver_sql(prepared.sql, tuple(values))


def _prepare(conn: Connection, query: Select[Any], params: dict[str, Any]) -> _Prepared | None:
    dialect = conn.dialect
    if dialect.name != "sqlite":
        return None
    compiled = query.compile(dialect=dialect)
    if not compiled.positional or any(b.callable is not None for b in compiled.binds.values()):
        return None
    if any(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in query.selected_columns):
        return None
    state = compiled.construct_expanded_state(params)
    order = state.positiontup
    if order is None or state.processors or any(name in compiled.binds and
                                                compiled.binds[name].expanding for name in params):  # fmt: skip
        return None
    slots = tuple((name, tuple(i for i, n in enumerate(order) if n == name)) for name in params)
    values = state.parameters
    return _Prepared(state.statement, tuple(values[name] for name in order), slots)
