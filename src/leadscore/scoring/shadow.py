"""Shadow models: a candidate version scored beside the active one on the same live events, by the same
compiled query, into ``shadow_scores`` only. A shadow score records no history and no crossings, so the
lifecycle never acts on it (no stage moves, no outbox rows); ``leadscore model compare`` reads it beside
the active scores, and ``leadscore model promote`` makes the candidate the active version.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, select

from leadscore.compile import Sources
from leadscore.errors import StoreError
from leadscore.model import ScoringModel
from leadscore.model.source import version_text
from leadscore.scoring.publication import Pass, Scored, run_pass
from leadscore.scoring.run import Active, all_leads, now_ms, score, score_leads
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.model_versions import ModelVersion, active_version, add_version, get_version, take_models
from leadscore.store.schema import model_versions, shadow_models
from leadscore.store.shadows import add_shadow, remove_shadow, save_shadow_scores

_SHADOWS = (
    select(model_versions)
    .join(shadow_models, shadow_models.c.model_version_id == model_versions.c.id)
    .where(model_versions.c.active.is_(False))
)


def shadows(conn: Connection) -> list[Active]:
    """The versions scored in shadow (never the active one), parsed."""
    return [Active.of(ModelVersion(**dict(r._mapping))) for r in conn.execute(_SHADOWS)]


def score_shadows(conn: Connection, sources: Sources, lead_ids: Sequence[int], as_of: int, stamp: int) -> int:
    """Score ``lead_ids`` with every shadow version (the processor's hook, after the active model, in its
    transaction); returns the shadow scores written."""
    written = 0
    for shadow in shadows(conn) if lead_ids else ():
        assert shadow.version is not None
        ledgers = score_leads(conn, shadow.model, sources, list(lead_ids), as_of)
        save_shadow_scores(conn, shadow.version.id, ledgers, stamp)
        written += len(ledgers)
    return written


def publish_shadow(
    store: Store,
    model: ScoringModel,
    *,
    text: str | None = None,
    note: str = "",
    as_of: int | None = None,
    actor: str = "cli",
    score_name: str | None = None,
) -> tuple[ModelVersion, int]:
    """Store the model as a version of the score ``score_name`` (the primary when None) that is not
    active, score every lead with it in shadow, and keep scoring it on live events; returns (version,
    leads scored). Every lead is scored outside the write lock, and the version stored, made a shadow and
    its scores saved in one short transaction (``scoring/publication.py``)."""
    stamp = now_ms()
    stored = version_text(model, text)
    with store.connect() as conn:  # refused before the work: a score never published, or retired
        active_version(conn, score_name)
    work = _Shadowing(model, stored, store.sources(), as_of or stamp, stamp, note, actor, score_name)
    return run_pass(store, work)


@dataclass
class _Shadowing(Pass[tuple[ModelVersion, int]]):
    """A new version scored for every lead in shadow (``publish_shadow``); saves (version, leads
    scored)."""

    model: ScoringModel
    text: str
    sources: Sources
    at: int
    stamp: int
    note: str
    actor: str
    score_name: str | None
    version: ModelVersion | None = None

    def score(self, conn: Connection, lead_ids: Collection[int] | None) -> Scored:
        if lead_ids is None:
            ledgers = score(conn, self.model, self.sources, all_leads(self.at))
        else:
            ledgers = score_leads(conn, self.model, self.sources, lead_ids, self.at)
        return Scored([ledgers], [{}], [])

    def begin_save(self, conn: Connection) -> bool:
        # the models lock alone (PostgreSQL), as an activation's save: the processor's batches under way
        # (they read the shadows before this one was registered) end first, and their leads' changes are
        # read by the catch-up here; a lead whose event such a batch committed during the save kept a shadow
        # score without it. Later batches read this shadow and score it.
        take_models(conn)
        # beside its score's active version: a score never published, or retired, has none to compare with
        active_version(conn, self.score_name)
        version, _ = add_version(conn, self.model.model, self.text, self.stamp, self.note, self.score_name)
        if version.active:
            raise StoreError(f"{version.label} is the active version: a shadow is a candidate beside it")
        add_shadow(conn, version.id, self.stamp)
        audit(
            conn, self.stamp, self.actor, "model.shadow", version.label, sha256=version.sha256, note=self.note
        )
        self.version = version
        return True

    def save(self, conn: Connection, scored: Scored) -> tuple[ModelVersion, int]:
        assert self.version is not None
        (ledgers,) = scored.ledgers
        save_shadow_scores(conn, self.version.id, ledgers, self.stamp)
        return self.version, len(ledgers)


def stop_shadow(store: Store, version_id: int, *, actor: str = "cli") -> ModelVersion:
    with store.begin() as conn:
        version = get_version(conn, version_id)
        remove_shadow(conn, version_id)
        audit(conn, now_ms(), actor, "model.shadow_stop", version.label)
    return version
