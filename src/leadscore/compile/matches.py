"""Which events each engagement rule counted for one lead, with each occurrence's decayed points.

Built from the same match expressions as ``query.compile_model`` (``_event_match``), so the events an
explanation lists are exactly the events the score counted (before rule and group caps).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, Select, and_, case, literal, or_, select

from leadscore.compile.dialects import HalfLifeDecay, double
from leadscore.compile.query import MS, _event_match, half_life_ms
from leadscore.compile.sources import Sources
from leadscore.model import ScoringModel, ThresholdRule, duration_seconds


def match_column(rule_id: str) -> str:
    return f"m__{rule_id}"


def points_column(rule_id: str) -> str:
    return f"p__{rule_id}"


def compile_matches(model: ScoringModel, sources: Sources, lead_id: int, as_of: int) -> Select[Any]:
    """One row per event of the lead (ts <= as_of) that some engagement rule matches."""
    e, ids = sources.events, sources.identities
    ev = (
        select(
            literal(lead_id, Integer).label("lead_id"),
            literal(as_of, BigInteger).label("as_of"),
            e.c.message_id,
            e.c.ts,
            e.c.type,
            e.c.name,
            e.c.path,
            e.c.url,
            e.c.properties,
        )
        .select_from(e.join(ids, ids.c.key == e.c.person_key))
        .where(ids.c.lead_id == lead_id, e.c.ts <= as_of)
        .subquery("ev")
    )
    cols: list[Any] = [ev.c.message_id, ev.c.ts, ev.c.type, ev.c.name, ev.c.path]
    flags = []
    for rule in model.engagement:
        match = _event_match(model, rule, ev)
        if isinstance(rule, ThresholdRule):
            match = and_(match, ev.c.ts > ev.c.as_of - duration_seconds(rule.within) * MS)
        flags.append(match)
        cols.append(case((match, 1), else_=0).label(match_column(rule.id)))
        hl = half_life_ms(model, rule)
        weight = HalfLifeDecay(ev.c.as_of - ev.c.ts, double(hl)) if hl else double(1.0)
        cols.append(case((match, double(rule.points) * weight), else_=0.0).label(points_column(rule.id)))
    query = select(*cols).order_by(ev.c.ts, ev.c.message_id)
    return query.where(or_(*flags)) if flags else query.where(literal(False))
