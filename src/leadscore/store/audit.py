"""The audit log: who published a model, exported or erased data, changed users or keys."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from leadscore.store.schema import audit_log


def audit(conn: Connection, now_ms: int, actor: str, action: str, target: str, **details: Any) -> None:
    conn.execute(
        audit_log.insert().values(at_ms=now_ms, actor=actor, action=action, target=target, details=details)
    )


def read_audit(conn: Connection, limit: int = 200) -> list[dict[str, Any]]:
    rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)).mappings()
    return [dict(r) for r in rows]
