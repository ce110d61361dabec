"""Shadow models: candidate versions scored beside the active one, and their current scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, select

from leadscore.compile import Ledger
from leadscore.store.bulk import insert_rows
from leadscore.store.results import score_values
from leadscore.store.schema import shadow_models, shadow_scores
from leadscore.store.upsert import insert_ignore

CHUNK = 500


def add_shadow(conn: Connection, version_id: int, now_ms: int) -> bool:
    """Start scoring ``version_id`` in shadow; False when it already is."""
    return bool(insert_ignore(conn, shadow_models, [{"model_version_id": version_id, "started_ms": now_ms}],
                              ["model_version_id"]))  # fmt: skip


def remove_shadow(conn: Connection, version_id: int) -> None:
    """Stop scoring ``version_id`` in shadow and drop its scores."""
    conn.execute(delete(shadow_scores).where(shadow_scores.c.model_version_id == version_id))
    conn.execute(delete(shadow_models).where(shadow_models.c.model_version_id == version_id))


def shadow_versions(conn: Connection) -> dict[int, int]:
    """Version id → when its shadow scoring started."""
    rows = conn.execute(select(shadow_models.c.model_version_id, shadow_models.c.started_ms))
    return {int(v): int(t) for v, t in rows}


def save_shadow_scores(conn: Connection, version_id: int, results: Sequence[Ledger], scored_ms: int) -> None:
    """Replace the shadow scores of ``version_id`` for every lead in ``results``."""
    for start in range(0, len(results), CHUNK):
        chunk = results[start : start + CHUNK]
        conn.execute(
            delete(shadow_scores).where(
                shadow_scores.c.model_version_id == version_id,
                shadow_scores.c.lead_id.in_([r.lead_id for r in chunk]),
            )
        )
        insert_rows(
            conn,
            shadow_scores,
            [score_values(r, version_id, scored_ms) for r in chunk],
        )


def read_shadow_scores(conn: Connection, version_id: int) -> dict[int, dict[str, Any]]:
    rows = conn.execute(select(shadow_scores).where(shadow_scores.c.model_version_id == version_id))
    return {int(r["lead_id"]): dict(r) for r in rows.mappings()}
