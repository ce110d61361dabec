"""Scoring results: current scores, the per-rule ledger, and the append-only score history, per lead and
named score (store/score_names.py)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import (
    BigInteger,
    BindParameter,
    Connection,
    Float,
    Row,
    Select,
    Text,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from leadscore.compile import Ledger
from leadscore.store.bulk import insert_rows, insert_tuples, sqlite_insert
from leadscore.store.id_lists import in_list
from leadscore.store.ledger_lines import pack_lines, read_lines
from leadscore.store.lifecycle_tables import rescored
from leadscore.store.newest import newest_rows
from leadscore.store.pipelined import Pipeline, pipelined
from leadscore.store.schema import leads, ledger, score_events, score_history, scores
from leadscore.store.score_names import named

CHUNK = 500

# Built once, executed with the lead ids bound as one list (store/id_lists.py): the real-time processor
# runs these for every batch, and building an IN (...) statement costs more than running it.
_SCORE: BindParameter[str] = bindparam("score_name")
_DELETE_LEDGER = delete(ledger).where(in_list(ledger.c.lead_id, "ids"), ledger.c.score_name == _SCORE)
_NAMES = in_list(scores.c.score_name, "names", Text)
_DELETE_NAMED_LEDGER = delete(ledger).where(
    in_list(ledger.c.lead_id, "ids"), in_list(ledger.c.score_name, "names", Text)
)
_NEWEST_ID = (
    select(score_history.c.id)
    .where(score_history.c.lead_id == leads.c.id, score_history.c.score_name == _SCORE)
    .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
    .limit(1)
    .correlate(leads)
    .scalar_subquery()
)
_NEWEST_HISTORY = select(_NEWEST_ID).select_from(leads).where(in_list(leads.c.id, "ids"))
# transaction-scoped advisory locks, one per lead id, taken in id order: held in memory only, where
# ``FOR UPDATE`` marks every lead's row (a page write and a WAL record each) on every batch
_LOCK_LEADS = text(
    "SELECT count(pg_advisory_xact_lock(id)) "
    "FROM (SELECT unnest(CAST(:ids AS BIGINT[])) AS id ORDER BY 1) AS locked"
)


def _newest_rows(dialect: str, several: bool) -> Select[Any]:
    """The newest history row of each lead of ``ids`` (by effective time, then insertion) of the score
    ``score_name``, or (``several``) of each score of ``names`` (a JSON array on SQLite, an array on
    PostgreSQL).

    PostgreSQL reads each row in one index probe, a lateral join from the ids (measured: 0.35 against 0.8
    ms for 49 leads with 7 rows each, and a fifth of the planning); SQLite has no lateral join, and finds
    each row's id by a correlated subquery per lead, then the rows by id."""
    if dialect == "postgresql":
        ids = func.unnest(bindparam("ids", type_=ARRAY(BigInteger))).table_valued("id").render_derived()
        froms: Any = ids
        where = [score_history.c.lead_id == ids.c.id]
        if several:
            names = func.unnest(bindparam("names", type_=ARRAY(Text))).table_valued("name").render_derived()
            froms = ids.join(names, true())
            where.append(score_history.c.score_name == names.c.name)
        else:
            where.append(score_history.c.score_name == _SCORE)
        newest = (
            select(score_history)
            .where(*where)
            .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
            .limit(1)
            .lateral()
        )
        return select(newest).select_from(froms.join(newest, true()))
    if not several:
        return select(score_history).where(score_history.c.id.in_(_NEWEST_HISTORY))
    values = func.json_each(bindparam("names")).table_valued("value")
    newest_id = (
        select(score_history.c.id)
        .where(score_history.c.lead_id == leads.c.id, score_history.c.score_name == values.c.value)
        .order_by(score_history.c.at_ms.desc(), score_history.c.id.desc())
        .limit(1)
        .correlate(leads, values)
        .scalar_subquery()
    )
    found = select(newest_id).select_from(leads.join(values, true())).where(in_list(leads.c.id, "ids"))
    return select(score_history).where(score_history.c.id.in_(found))


# by dialect: of one score, of several scores
_LAST_HISTORY = {dialect: _newest_rows(dialect, False) for dialect in ("sqlite", "postgresql")}
_LAST_HISTORIES = {dialect: _newest_rows(dialect, True) for dialect in ("sqlite", "postgresql")}


def score_values(r: Ledger, version_id: int, scored_ms: int) -> dict[str, Any]:
    """A ledger's score columns as a scores (or shadow_scores) row holds them (a scores row adds its
    ``score_name``)."""
    return dict(zip(VALUE_COLUMNS, score_tuple(r, version_id, scored_ms), strict=True))


VALUE_COLUMNS = ("lead_id", "model_version_id", "as_of_ms", "score", "fit_score", "engagement_score", "grade",
                 "level", "band", "scored_ms")  # fmt: skip


def score_tuple(r: Ledger, version_id: int, scored_ms: int) -> tuple[Any, ...]:
    """``score_values`` as a tuple in the order of ``VALUE_COLUMNS``."""
    return (r.lead_id, version_id, r.as_of, r.score, r.fit_score, r.engagement_score, r.grade, r.level, r.band,
            scored_ms)  # fmt: skip


# a scores row as ``save_current_scores`` writes it: ``score_values``' columns, then the name and due time
SCORE_COLUMNS = (*VALUE_COLUMNS, "score_name", "due_ms")
# a ledger row: a lead's score's ledger lines, packed (store/ledger_lines.py)
LEDGER_COLUMNS = ("lead_id", "score_name", "lines")


@dataclass(frozen=True)
class NamedResults:
    """One score's new current results: the ledgers of ``score_name`` by version ``version_id`` and
    ``due``: lead → when time alone may next change that score (scoring/due.py; a lead left out is never
    due)."""

    score_name: str
    version_id: int
    results: Sequence[Ledger]
    due: Mapping[int, int | None] | None = None


def save_current(
    conn: Connection,
    results: Sequence[Ledger],
    version_id: int,
    scored_ms: int,
    due: Mapping[int, int | None] | None = None,
    *,
    score_name: str,
) -> dict[int, dict[str, Any]]:
    """Replace the current score ``score_name`` and its ledger of every lead in ``results``; ``due``: lead
    → when time alone may next change that score (scoring/due.py; a lead left out is never due). Returns
    the replaced scores' band, grade, level and score by lead (a lead scored for the first time: none)."""
    replaced = save_current_scores(conn, [NamedResults(score_name, version_id, results, due)], scored_ms)
    return {lead_id: state for (lead_id, _), state in replaced.items()}


def save_current_scores(
    conn: Connection, parts: Sequence[NamedResults], scored_ms: int
) -> dict[tuple[int, str], dict[str, Any]]:
    """``save_current`` for several scores of the same leads, a few statements each for all of them: the
    states before (the stored rows: what crossings compare with), the delete of the old ledgers and their
    insert, and the scores rows: on SQLite written in place (``_write_scores``: a scores row lives in
    eight B-trees, and an update rewrites only the indexes of the columns it sets), on PostgreSQL deleted
    (returning the states before) and inserted, in one round trip (an update in place needs the states
    first, a round trip more, and any change to an indexed column writes every index anyway); in the
    same round trip, a lead's stage row that saw a scoring time not before ``scored_ms`` forgets it
    (``lifecycle_tables.rescored``: else the lifecycle runner would not tell this save from the one it
    saw). Returns the replaced states by (lead, score name)."""
    replaced: dict[tuple[int, str], dict[str, Any]] = {}
    if not parts:
        return replaced
    by_lead = [{r.lead_id: r for r in part.results} for part in parts]
    order = [r.lead_id for r in parts[0].results]
    if any(found.keys() != by_lead[0].keys() for found in by_lead[1:]):
        raise ValueError("save_current_scores: the scores' results name different leads")
    names = [part.score_name for part in parts]
    one = len(parts) == 1  # ``score_name = ?``: the statements of one score, as before several existed
    in_place = conn.dialect.name == "sqlite"
    read_scores, drop_scores, drop_ledger = (
        (_STORED_SCORES, _DELETE_SCORES, _DELETE_LEDGER)
        if one
        else (_STORED_NAMED_SCORES, _DELETE_NAMED_SCORES, _DELETE_NAMED_LEDGER)
    )
    for start in range(0, len(order), CHUNK):
        ids = order[start : start + CHUNK]
        params: dict[str, Any] = {"ids": ids, "score_name": names[0]} if one else {"ids": ids, "names": names}
        rows = [
            (*score_tuple(r, part.version_id, scored_ms), part.score_name,
             None if part.due is None else part.due.get(r.lead_id))
            for part, found in zip(parts, by_lead, strict=True)
            for r in (found[lid] for lid in ids)
        ]  # fmt: skip
        stored = (
            {(row[0], row[1]): row for row in conn.execute(read_scores, params).fetchall()}
            if in_place
            else {}
        )
        # PostgreSQL: four statements, one round trip (the replaced states are read after the writes)
        packed = [
            (lid, part.score_name, text)
            for part, found in zip(parts, by_lead, strict=True)
            for lid, text in zip(
                ids, pack_lines([found[lid] for lid in ids], signed_zero=not in_place), strict=True
            )  # SQLite (in place) writes no -0.0: its float columns gave one back as 0.0
        ]
        with pipelined(conn) as pipeline:
            old = iter(()) if in_place else pipeline.returning(drop_scores, params)
            if in_place:
                _write_scores(conn, stored, rows, scored_ms)
                _write_ledgers(conn, packed)
            else:
                conn.execute(drop_ledger, params)
                insert_tuples(conn, scores, SCORE_COLUMNS, rows)
                # a score without lines has no row, as it had none before
                insert_tuples(conn, ledger, LEDGER_COLUMNS, [row for row in packed if row[2] != _NO_LINES])
            # a stage row that saw this scoring time already is evaluated again (in the same round trip)
            rescored(pipeline, ids, scored_ms)
            for state in old:
                replaced[(state["lead_id"], state["score_name"])] = state
        for key, row in stored.items():
            replaced[key] = dict(zip(_STATE_COLUMNS, row, strict=True))
    return replaced


# what ``save_current_scores`` reads of the stored rows: the key, then the columns it compares (in the
# order of ``_COMPARED``); the crossings read band, grade, level and score of it
_COMPARED = tuple(c for c in SCORE_COLUMNS if c not in ("lead_id", "score_name", "scored_ms"))
_STATE_COLUMNS = ("lead_id", "score_name", *_COMPARED)
_AT = tuple(SCORE_COLUMNS.index(c) for c in _COMPARED)  # where a new row holds them
_FLOATS = tuple(i for i, c in enumerate(_COMPARED) if isinstance(scores.c[c].type, Float))
_compared_of = itemgetter(*_AT)  # a new row's ``_COMPARED`` values, as a tuple
_DELETE_SCORES = (
    delete(scores)
    .where(in_list(scores.c.lead_id, "ids"), scores.c.score_name == _SCORE)
    .returning(*(scores.c[c] for c in _STATE_COLUMNS))
)
_DELETE_NAMED_SCORES = (
    delete(scores)
    .where(in_list(scores.c.lead_id, "ids"), _NAMES)
    .returning(*(scores.c[c] for c in _STATE_COLUMNS))
)
_STORED_SCORES = select(*(scores.c[c] for c in _STATE_COLUMNS)).where(
    in_list(scores.c.lead_id, "ids"), scores.c.score_name == _SCORE
)
_STORED_NAMED_SCORES = select(*(scores.c[c] for c in _STATE_COLUMNS)).where(
    in_list(scores.c.lead_id, "ids"), _NAMES
)
_LEAD, _NAME = SCORE_COLUMNS.index("lead_id"), SCORE_COLUMNS.index("score_name")


def stored_versions(conn: Connection, lead_ids: Sequence[int], score_name: str) -> dict[int, tuple[Any, ...]]:
    """Each lead's stored score ``score_name`` as a writer that read it earlier compares it before saving
    over it: every column a save writes (its time, due time, version and values). Its time and due time
    alone are no version: a save in between stamped the millisecond of the one read (two saves in one
    millisecond, a clock that stands still) may leave both as they were while adding an event."""
    rows = conn.execute(_VERSIONS, {"ids": list(lead_ids), "score_name": score_name})
    return {int(row[0]): tuple(row[1:]) for row in rows}


_VERSIONS = select(scores.c.lead_id, scores.c.scored_ms, *(scores.c[c] for c in _COMPARED)).where(
    in_list(scores.c.lead_id, "ids"), scores.c.score_name == _SCORE
)


def _write_scores(
    conn: Connection,
    stored: Mapping[tuple[int, str], Row[Any]],
    rows: Sequence[tuple[Any, ...]],
    scored_ms: int,
) -> None:
    """The new scores rows (``SCORE_COLUMNS`` tuples) over the ``stored`` ones (``_STATE_COLUMNS``, by
    lead and score name): a lead's first row inserted, a stored row updated in place, only the columns
    whose values changed with ``scored_ms``, so that SQLite rewrites only the indexes of those columns
    (a scores row lives in eight B-trees); rows where only ``scored_ms`` moves, one statement per score."""
    fresh: list[tuple[Any, ...]] = []
    stamped: dict[str, list[int]] = {}
    changed: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
    for row in rows:
        old = stored.get((row[_LEAD], row[_NAME]))
        if old is None:
            fresh.append(row)
            continue
        new = _compared_of(row)
        differ = _differ(old[2:], new)
        if not differ:
            stamped.setdefault(row[_NAME], []).append(row[_LEAD])
            continue
        columns = tuple(_COMPARED[i] for i in differ)
        changed.setdefault(columns, []).append((*(new[i] for i in differ), scored_ms, row[_LEAD], row[_NAME]))
    for name, ids in stamped.items():
        conn.execute(_STAMP, {"ids": ids, "key_name": name, "stamp_ms": scored_ms})
    for columns, params in changed.items():
        conn.exec_driver_sql(_update_of(columns), params)
    insert_tuples(conn, scores, SCORE_COLUMNS, fresh)


_NO_LINES = "[]"  # a score without lines, packed: it has no ledger row


def _write_ledgers(conn: Connection, rows: Sequence[tuple[int, str, str]]) -> None:
    """SQLite: the ledger rows (``LEDGER_COLUMNS`` tuples) of the leads' scores written in place: a stored
    row's lines set by an upsert on its key (a delete and an insert wrote the primary key's index twice
    and the table twice; the upsert writes the table's row only), a new one inserted, and the row of a
    score now without lines deleted (a score without lines has no row)."""
    empty: dict[str, list[int]] = {}
    lined: list[tuple[int, str, str]] = []
    for row in rows:
        if row[2] == _NO_LINES:
            empty.setdefault(row[1], []).append(row[0])
        else:
            lined.append(row)
    for name, ids in empty.items():
        conn.execute(_DELETE_LEDGER, {"ids": ids, "score_name": name})
    sqlite_insert(conn, ledger.name, LEDGER_COLUMNS, lined, update_on=("lead_id", "score_name"))


def _differ(old: Sequence[Any], new: Sequence[Any]) -> tuple[int, ...]:
    """Where ``new`` differs from ``old`` (the ``_COMPARED`` values): by ``!=``, and a zero by its sign too
    (``-0.0 == 0.0``, but they are different values to store)."""
    if tuple(old) == new:
        if 0.0 not in new:
            return ()
        return tuple(
            i for i in _FLOATS if new[i] == 0.0 and math.copysign(1.0, new[i]) != math.copysign(1.0, old[i])
        )
    return tuple(i for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b or (
        i in _FLOATS and a == 0.0 and math.copysign(1.0, a) != math.copysign(1.0, b)))  # fmt: skip


_STAMP = (
    update(scores)
    .where(in_list(scores.c.lead_id, "ids"), scores.c.score_name == bindparam("key_name"))
    .values(scored_ms=bindparam("stamp_ms"))
)


@lru_cache(maxsize=128)
def _update_of(columns: tuple[str, ...]) -> str:
    """SQLite's update of a scores row's ``columns`` and ``scored_ms`` by its key, for many rows (the
    parameters: the new values, ``scored_ms``, the lead and the score name; plain tuples, as the inserts
    take them: SQLAlchemy's processing of a parameter dict per row cost more than the update)."""
    sets = ", ".join(f"{scores.c[c].name} = ?" for c in (*columns, "scored_ms"))
    return f"UPDATE {scores.name} SET {sets} WHERE lead_id = ? AND score_name = ?"


def last_history(conn: Connection, lead_ids: Iterable[int], *, score_name: str) -> dict[int, dict[str, Any]]:
    """The most recent history row of each lead's score ``score_name`` (by effective time, then insertion)."""
    with pipelined(conn) as pipeline:
        return read_last_history(send_last_history(pipeline, lead_ids, score_name=score_name))


def send_last_history(
    pipeline: Pipeline, lead_ids: Iterable[int], *, score_name: str
) -> list[Iterator[dict[str, Any]]]:
    """``last_history``'s statements, sent in ``pipeline``; ``read_last_history`` reads their answers."""
    ids = list(lead_ids)
    return [
        pipeline.returning(
            _LAST_HISTORY[pipeline.conn.dialect.name],
            {"ids": ids[start : start + CHUNK], "score_name": score_name},
        )
        for start in range(0, len(ids), CHUNK)
    ]


def read_last_history(sent: Iterable[Iterator[dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    return {row["lead_id"]: row for rows in sent for row in rows}


def last_histories(
    conn: Connection, lead_ids: Iterable[int], score_names: Sequence[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    """``last_history`` of several scores, one statement for all of them: by score name, by lead."""
    with pipelined(conn) as pipeline:
        return read_last_histories(send_last_histories(pipeline, lead_ids, score_names), score_names)


def send_last_histories(
    pipeline: Pipeline, lead_ids: Iterable[int], score_names: Sequence[str]
) -> list[Iterator[dict[str, Any]]]:
    """``last_histories``' statements, sent in ``pipeline``; ``read_last_histories`` reads their answers."""
    if len(score_names) == 1:
        return send_last_history(pipeline, lead_ids, score_name=score_names[0])
    ids = list(lead_ids)
    dialect = pipeline.conn.dialect.name
    names: Any = list(score_names) if dialect == "postgresql" else orjson.dumps(list(score_names)).decode()
    return [
        pipeline.returning(_LAST_HISTORIES[dialect], {"ids": ids[start : start + CHUNK], "names": names})
        for start in range(0, len(ids), CHUNK)
    ]


def read_last_histories(
    sent: Iterable[Iterator[dict[str, Any]]], score_names: Sequence[str]
) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = {name: {} for name in score_names}
    for rows in sent:
        for row in rows:
            out[row["score_name"]][row["lead_id"]] = row
    return out


def append_history(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    insert_rows(conn, score_history, rows)


def append_history_values(
    conn: Connection, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]]
) -> None:
    """``append_history`` of rows given as tuples in the order of ``columns`` (a replay's many rows)."""
    insert_tuples(conn, score_history, columns, rows)


def read_history(conn: Connection, lead_id: int, score_name: str | None = None) -> list[dict[str, Any]]:
    """A lead's history of one score (the primary when None)."""
    query = (
        select(score_history)
        .where(score_history.c.lead_id == lead_id, named(score_history.c.score_name, score_name))
        .order_by(score_history.c.at_ms, score_history.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def history_rows(
    conn: Connection, lead_id: int, limit: int, offset: int = 0, score_name: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` rows of a lead's history of one score (the primary when None), newest first from
    ``offset``, returned oldest first as ``read_history``'s; and the rows there are (each batch that moves
    a score writes one, so a write key can give one person any number)."""
    mine = [score_history.c.lead_id == lead_id, named(score_history.c.score_name, score_name)]
    return newest_rows(conn, score_history, mine, [score_history.c.at_ms, score_history.c.id], limit, offset)


def crossing_rows(
    conn: Connection, lead_id: int, limit: int, offset: int = 0, score_name: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` of a lead's recorded crossings of one score (the primary when None), newest first from
    ``offset``, returned in ``read_crossings``' order (oldest first); and the crossings there are."""
    mine = [score_events.c.lead_id == lead_id, named(score_events.c.score_name, score_name)]
    return newest_rows(conn, score_events, mine, [score_events.c.id], limit, offset)


def read_current(
    conn: Connection, lead_id: int, score_name: str | None = None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A lead's current score and ledger of one score (the primary when None)."""
    score = (
        conn.execute(
            select(scores).where(scores.c.lead_id == lead_id, named(scores.c.score_name, score_name))
        )
        .mappings()
        .first()
    )
    return (dict(score) if score else None), read_lines(conn, [lead_id], score_name)


CROSSING_KEY = ("lead_id", "model_version_id", "kind", "at_ms", "to_value")


def record_crossings(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Record threshold crossings; one already recorded (same lead, version, kind, time, value) is skipped."""
    return insert_rows(conn, score_events, rows, ignore=CROSSING_KEY)


def read_crossings(
    conn: Connection, lead_id: int | None = None, score_name: str | None = None
) -> list[dict[str, Any]]:
    """Recorded crossings (of one lead when given) of one score (the primary when None)."""
    query = (
        select(score_events).where(named(score_events.c.score_name, score_name)).order_by(score_events.c.id)
    )
    if lead_id is not None:
        query = query.where(score_events.c.lead_id == lead_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def due_at(conn: Connection, times: dict[int, int]) -> None:
    """Each lead's every stored score due at its time (``lead → ms``) unless it is due earlier already: the
    clock rescores it at its next tick (``scoring/clock.py``)."""
    if not times:
        return
    conn.execute(
        update(scores)
        .where(
            scores.c.lead_id == bindparam("lead"),
            or_(scores.c.due_ms.is_(None), scores.c.due_ms > bindparam("at")),
        )
        .values(due_ms=bindparam("at")),
        [{"lead": lead, "at": at} for lead, at in sorted(times.items())],
    )


def lock_leads(conn: Connection, lead_ids: Sequence[int]) -> None:
    """Serialise concurrent rescoring of the same leads until the transaction ends (PostgreSQL: an
    advisory lock per lead id, in id order, so two rescorers wait for each other and never deadlock;
    SQLite writers are serial). Every rescore goes through here (``scoring/pipeline.py``)."""
    if conn.dialect.name == "postgresql" and lead_ids:
        conn.execute(_LOCK_LEADS, {"ids": sorted(lead_ids)})
