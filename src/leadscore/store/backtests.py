"""Backtest results stored with the model version they tested (``model_backtests``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from leadscore.store.schema import model_backtests, model_versions


@dataclass(frozen=True)
class StoredBacktest:
    id: int
    model_version_id: int
    baseline_version_id: int | None
    outcome: str
    start_ms: int
    end_ms: int
    threshold: float
    summary: dict[str, Any]
    created_ms: int


def save_backtest(
    conn: Connection,
    *,
    version_id: int,
    baseline_id: int | None,
    outcome: str,
    start_ms: int,
    end_ms: int,
    threshold: float,
    summary: dict[str, Any],
    now_ms: int,
) -> int:
    return int(
        conn.execute(
            model_backtests.insert()
            .values(model_version_id=version_id, baseline_version_id=baseline_id, outcome=outcome,
                    start_ms=start_ms, end_ms=end_ms, threshold=threshold, summary=summary, created_ms=now_ms)
            .returning(model_backtests.c.id)
        ).scalar_one()
    )  # fmt: skip


def backtests_of(conn: Connection, version_id: int) -> list[StoredBacktest]:
    rows = conn.execute(
        select(model_backtests)
        .where(model_backtests.c.model_version_id == version_id)
        .order_by(model_backtests.c.created_ms, model_backtests.c.id)
    ).mappings()
    return [StoredBacktest(**dict(r)) for r in rows]


def backtests_of_yaml(conn: Connection, name: str, yaml_text: str) -> list[StoredBacktest]:
    """Backtests of the stored version with exactly this YAML (none if it was never stored)."""
    digest = hashlib.sha256(yaml_text.encode()).hexdigest()
    version_id = conn.execute(
        select(model_versions.c.id).where(model_versions.c.name == name, model_versions.c.sha256 == digest)
    ).scalar()
    return [] if version_id is None else backtests_of(conn, int(version_id))
