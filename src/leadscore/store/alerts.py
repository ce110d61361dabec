"""Health alerts: one open row per failing check until the check passes again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select, update

from leadscore.store.schema import alerts
from leadscore.store.score_names import primary_score


def check_name(check: str, score: str, primary: str) -> str:
    """The name a health check's alert is raised under: the primary score's bare (``volume``), another
    score's after it (``volume:analytics``), so each score's alert is raised and cleared alone."""
    return check if score == primary else f"{check}:{score}"


def check_score(check: str, primary: str) -> str:
    """The score an alert's check is about (the inverse of ``check_name``); a check of no score
    (``acceptance``) is the primary's."""
    return check.partition(":")[2] or primary


def open_alerts(conn: Connection) -> dict[str, dict[str, Any]]:
    """The open alert of each check that has one."""
    rows = conn.execute(select(alerts).where(alerts.c.cleared_ms.is_(None)).order_by(alerts.c.id))
    return {str(r["check"]): dict(r) for r in rows.mappings()}


def raise_alert(
    conn: Connection, check: str, value: float, threshold: float, message: str, now_ms: int
) -> int:
    row = {"check": check, "raised_ms": now_ms, "value": value, "threshold": threshold, "message": message}
    return int(conn.execute(alerts.insert().values(**row).returning(alerts.c.id)).scalar_one())


def clear_alert(conn: Connection, alert_id: int, now_ms: int) -> None:
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(cleared_ms=now_ms))


def list_alerts(conn: Connection, limit: int = 100, score: str | None = None) -> list[dict[str, Any]]:
    """The newest alerts, open or cleared; with ``score``, only that score's (``check_score``)."""
    query = select(alerts).order_by(alerts.c.id.desc())
    if score is None:
        return [dict(r) for r in conn.execute(query.limit(limit)).mappings()]
    primary = primary_score(conn)
    rows = (dict(r) for r in conn.execute(query).mappings())
    return [r for r in rows if check_score(str(r["check"]), primary) == score][:limit]
