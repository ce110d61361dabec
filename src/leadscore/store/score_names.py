"""Named scores: a lead has one score per name (``core``, ``analytics``: one per product line or persona),
each scored by the active version of its own model; one name is the primary score, the one every surface
reads when no score is named. A store of one model has one score, named ``primary``.

A score with no active version is **retired** (``leadscore model retire``: lifecycle/retire.py): nothing
scores it, no picker or list of a lead's scores offers it, and its rows, history and versions stay, read
when it is named; activating a version of it again brings it back."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, String, and_, exists, func, literal, select, update

from leadscore.errors import InputError, NotFoundError, Problem
from leadscore.model.lifecycle import SCORE_NAME
from leadscore.store.schema import model_versions, score_names, scores

DEFAULT = "primary"
_NAME = re.compile(SCORE_NAME)  # the one spelling of a score name, as the model language checks it
# the primary score's name as SQL (one uncorrelated subquery, read once per statement), so a query that
# reads the primary score needs no round trip to learn its name; a store without scores reads DEFAULT
PRIMARY_NAME = func.coalesce(
    select(score_names.c.name).where(score_names.c.is_primary.is_(True)).limit(1).scalar_subquery(),
    literal(DEFAULT, String),
)


@dataclass(frozen=True)
class ScoreName:
    name: str
    is_primary: bool
    created_ms: int
    retired: bool = False


def is_live(name: ColumnElement[str]) -> ColumnElement[bool]:
    """The score ``name`` is live: a version of it is active (a retirement changes nothing else, so it
    needs no column of its own)."""
    return exists().where(model_versions.c.score_name == name, model_versions.c.active.is_(True))


def check_name(name: str) -> str:
    """A score name as given, or an InputError saying what a name may hold."""
    if not _NAME.fullmatch(name):
        raise InputError(
            Problem(
                f"bad score name {name!r}: a lowercase letter, then up to 62 lowercase letters, digits or _",
                field="score",
            )
        )
    return name


def named(column: ColumnElement[str], name: str | None) -> ColumnElement[bool]:
    """``column`` holds the score ``name`` (the primary score when None)."""
    return column == (PRIMARY_NAME if name is None else check_name(name))


def primary_score(conn: Connection) -> str:
    return str(conn.execute(select(PRIMARY_NAME)).scalar_one())


def list_scores(conn: Connection) -> list[ScoreName]:
    """Every named score, retired ones included (``retired``), the primary first."""
    query = select(score_names, (~is_live(score_names.c.name)).label("retired")).order_by(
        score_names.c.is_primary.desc(), score_names.c.name
    )
    return [ScoreName(**dict(r._mapping)) for r in conn.execute(query)]


def live_scores(conn: Connection) -> list[ScoreName]:
    """The scores that are scored (not retired), the primary first: what lists of a lead's scores show."""
    return [s for s in list_scores(conn) if not s.retired]


def picker_names(conn: Connection) -> list[str]:
    """The names a score picker offers (the live scores), the primary first: none when one is live."""
    names = [s.name for s in live_scores(conn)]
    return names if len(names) > 1 else []


def resolve(conn: Connection, name: str | None) -> str:
    """The score a caller names (the primary when None); a name never published is NotFoundError."""
    if name is None:
        return primary_score(conn)
    check_name(name)
    if conn.execute(select(score_names.c.name).where(score_names.c.name == name)).first() is None:
        known = ", ".join(s.name for s in list_scores(conn)) or "none yet"
        raise NotFoundError(f"no score named {name!r} (scores: {known})")
    return name


def ensure_score(conn: Connection, name: str, now_ms: int) -> None:
    """Record a score name; the first one recorded is the primary."""
    check_name(name)
    if conn.execute(select(score_names.c.name).where(score_names.c.name == name)).first() is not None:
        return
    first = conn.execute(select(func.count()).select_from(score_names)).scalar_one() == 0
    conn.execute(score_names.insert().values(name=name, is_primary=first, created_ms=now_ms))


def set_primary(conn: Connection, name: str) -> None:
    resolve(conn, name)
    conn.execute(update(score_names).values(is_primary=score_names.c.name == name))


def scores_of(lead_id: ColumnElement[Any], name: str | None = None) -> ColumnElement[bool]:
    """A join condition: the ``scores`` row of the lead ``lead_id`` for the score ``name`` (the primary
    when None), so a join from leads meets one score row per lead."""
    return and_(scores.c.lead_id == lead_id, named(scores.c.score_name, name))
