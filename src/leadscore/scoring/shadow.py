"""Shadow models: a candidate version scored beside the active one on the same live events, by the same
compiled query, into ``shadow_scores`` only. A shadow score records no history and no crossings, so the
lifecycle never acts on it (no stage moves, no outbox rows); ``leadscore model compare`` reads it beside
the active scores, and ``leadscore model promote`` makes the candidate the active version.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, select

from leadscore.compile import Sources
from leadscore.errors import StoreError
from leadscore.model import ScoringModel
from leadscore.model.source import version_text
from leadscore.scoring.run import Active, all_leads, now_ms, score, score_leads
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.model_versions import ModelVersion, active_version, add_version, get_version
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
    leads scored)."""
    stamp = now_ms()
    with store.begin() as conn:
        # beside its score's active version: a score never published, or retired, has none to compare with
        active_version(conn, score_name)
        version, _ = add_version(conn, model.model, version_text(model, text), stamp, note, score_name)
        if version.active:
            raise StoreError(f"{version.label} is the active version: a shadow is a candidate beside it")
        add_shadow(conn, version.id, stamp)
        audit(conn, stamp, actor, "model.shadow", version.label, sha256=version.sha256, note=note)
        ledgers = score(conn, model, store.sources(), all_leads(as_of or stamp))
        save_shadow_scores(conn, version.id, ledgers, stamp)
    return version, len(ledgers)


def stop_shadow(store: Store, version_id: int, *, actor: str = "cli") -> ModelVersion:
    with store.begin() as conn:
        version = get_version(conn, version_id)
        remove_shadow(conn, version_id)
        audit(conn, now_ms(), actor, "model.shadow_stop", version.label)
    return version
