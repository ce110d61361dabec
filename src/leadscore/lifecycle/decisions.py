"""Sales decisions on MQLs: the one reading of the feedback log that acceptance rates, rejection reasons
and the feedback evidence of a model review count. A decision is one on an MQL when it was given while
the lead waited where sales decide (``stages.decision_stages`` of the primary score's lifecycle, the
stages an ``accepted`` transition leaves): a rejection after an acceptance (an SQL sales later turned
down) is a later disqualification, not a second decision on the same MQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from leadscore.lifecycle.stages import decision_stages
from leadscore.scoring.pipeline import active_model
from leadscore.store.lifecycle_tables import mql_decisions as decisions_in


def mql_decisions(
    conn: Connection, since_ms: int | None = None, until_ms: int | None = None
) -> list[dict[str, Any]]:
    """The feedback rows that decide an MQL, oldest first, given in [``since_ms``, ``until_ms``)."""
    active = active_model(conn)
    lifecycle = active.model.lifecycle if active is not None else None
    return decisions_in(conn, decision_stages(lifecycle), since_ms, until_ms)
