"""Model versions: stored YAML with its hash; each belongs to a named score (store/score_names.py), and each
score has at most one active version at a time."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from sqlalchemy import Connection, func, select, text, update

from leadscore.errors import NotFoundError, StoreError
from leadscore.store.schema import fits_id, model_versions
from leadscore.store.score_names import DEFAULT, PRIMARY_NAME, ensure_score, named, resolve

# PostgreSQL: an activation (a publication, promotion or rollback) and the transactions that read the active
# models to save scores with them take turns, so that no score of a version an activation replaced is saved
# after it (SQLite's writers are serial, and its processor's snapshot compares the active versions before it
# saves). The savers share an advisory lock for the rest of their transaction (``share_models``) and an
# activation takes it alone: a key of the schema's two-integer space, above the inbox partitions'
# (``store/event_log.py``: PART_LOCK + partition, 1000-1015) and the processors' slots below them.
MODELS_LOCK = 2000
# the shared lock as an expression, for a statement that must hold it before it does anything else (the
# event log's insert: ``store/event_log.py``)
SHARE_MODELS = f"pg_advisory_xact_lock_shared(hashtext(current_schema()), {MODELS_LOCK})"
_SHARE_MODELS = text(f"SELECT {SHARE_MODELS}")
_TAKE_MODELS = text(f"SELECT pg_advisory_xact_lock(hashtext(current_schema()), {MODELS_LOCK})")


def take_models(conn: Connection) -> None:
    """Until this transaction ends no scores are saved with the active models, and once those under way
    are (PostgreSQL): an activation or a retirement takes it before it reads or changes them."""
    if conn.dialect.name == "postgresql":
        conn.execute(_TAKE_MODELS)


def share_models(conn: Connection) -> None:
    """Until this transaction ends no version is activated (PostgreSQL; waits for one under way): call it
    before reading the active models whose scores the transaction saves."""
    if conn.dialect.name == "postgresql":
        conn.execute(_SHARE_MODELS)


@dataclass(frozen=True)
class ModelVersion:
    id: int
    name: str
    version: int
    yaml: str
    sha256: str
    created_ms: int
    published_ms: int | None
    active: bool
    note: str
    score_name: str = DEFAULT

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def _row(row: object) -> ModelVersion:
    return ModelVersion(**dict(row._mapping))  # type: ignore[attr-defined]


def add_version(
    conn: Connection,
    name: str,
    yaml_text: str,
    now_ms: int,
    note: str = "",
    score_name: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Store a model's YAML as the next version of ``name`` for the score ``score_name`` (the primary when
    None); an identical YAML for the same score returns the existing version."""
    digest = hashlib.sha256(yaml_text.encode()).hexdigest()
    score = score_name if score_name is not None else str(conn.execute(select(PRIMARY_NAME)).scalar_one())
    same = conn.execute(
        select(model_versions).where(
            model_versions.c.name == name,
            model_versions.c.sha256 == digest,
            named(model_versions.c.score_name, score),
        )
    ).first()
    if same is not None:
        return _row(same), False
    latest = conn.execute(
        select(func.max(model_versions.c.version)).where(model_versions.c.name == name)
    ).scalar()
    new_id = conn.execute(
        model_versions.insert()
        .values(
            name=name,
            version=(latest or 0) + 1,
            yaml=yaml_text,
            sha256=digest,
            created_ms=now_ms,
            active=False,
            note=note,
            score_name=score,
        )
        .returning(model_versions.c.id)
    ).scalar_one()
    return get_version(conn, int(new_id)), True


def activate(conn: Connection, version_id: int, now_ms: int) -> ModelVersion:
    """Make a version its score's active one (the score's other versions stop being active); on PostgreSQL
    once no transaction saving scores holds the models (``share_models``), and none starts until this one
    ends."""
    take_models(conn)
    version = get_version(conn, version_id)
    ensure_score(conn, version.score_name, now_ms)
    conn.execute(
        update(model_versions)
        .where(model_versions.c.active.is_(True), model_versions.c.score_name == version.score_name)
        .values(active=False)
    )
    conn.execute(
        update(model_versions)
        .where(model_versions.c.id == version_id)
        .values(active=True, published_ms=now_ms)
    )
    return get_version(conn, version_id)


def deactivate(conn: Connection, version_id: int) -> None:
    """Leave a version's score without an active version (a retirement: call ``take_models`` first)."""
    conn.execute(update(model_versions).where(model_versions.c.id == version_id).values(active=False))


def get_version(conn: Connection, version_id: int) -> ModelVersion:
    row = (
        conn.execute(select(model_versions).where(model_versions.c.id == version_id)).first()
        if fits_id(version_id)
        else None
    )
    if row is None:
        raise NotFoundError(f"no model version with id {version_id}")
    return _row(row)


def find_version(conn: Connection, ref: str) -> ModelVersion:
    """A version by ``name@N``, ``name`` (its newest) or numeric id."""
    name, _, number = ref.partition("@")
    query = select(model_versions)
    if ref.isascii() and ref.isdigit():
        if not fits_id(int(ref)):
            raise NotFoundError(f"no model version {ref!r}")
        query = query.where(model_versions.c.id == int(ref))
    elif number:
        if not (number.isascii() and number.isdigit()):
            raise NotFoundError(f"bad model reference {ref!r}: write name@version")
        if not fits_id(int(number)):
            raise NotFoundError(f"no model version {ref!r}")
        query = query.where(model_versions.c.name == name, model_versions.c.version == int(number))
    else:
        query = query.where(model_versions.c.name == name).order_by(model_versions.c.version.desc())
    row = conn.execute(query.limit(1)).first()
    if row is None:
        raise NotFoundError(f"no model version {ref!r}")
    return _row(row)


def active_version(conn: Connection, score_name: str | None = None) -> ModelVersion:
    """The active version of a score (the primary when None)."""
    row = conn.execute(
        select(model_versions).where(
            model_versions.c.active.is_(True), named(model_versions.c.score_name, score_name)
        )
    ).first()
    if row is None:
        if score_name is not None:
            resolve(conn, score_name)  # a name never published: "no score named ..." as everywhere
            raise StoreError(
                f"the score {score_name!r} is retired: nothing scores it; publish a model (or roll back to a "
                f"version) with --score {score_name} to score it again"
            )
        raise StoreError("no active model: publish one with `leadscore model publish MODEL.yaml`")
    return _row(row)


def active_versions(conn: Connection) -> list[ModelVersion]:
    """The active version of every score, the primary first, then by score name."""
    query = (
        select(model_versions)
        .where(model_versions.c.active.is_(True))
        .order_by((model_versions.c.score_name == PRIMARY_NAME).desc(), model_versions.c.score_name)
    )
    return [_row(r) for r in conn.execute(query)]


def list_versions(conn: Connection, score_name: str | None = None) -> list[ModelVersion]:
    """Every stored version (of one score when named)."""
    query = select(model_versions).order_by(model_versions.c.name, model_versions.c.version)
    if score_name is not None:
        query = query.where(model_versions.c.score_name == score_name)
    rows = conn.execute(query)
    return [_row(r) for r in rows]
