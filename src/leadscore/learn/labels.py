"""Censoring-aware labels for (lead, as-of) rows from the ``outcomes`` table.

A row is labelled 1 when the outcome happened within ``horizon`` after its as-of time, 0 when the whole
horizon has passed without it (as-of + horizon ≤ the end of the data), and otherwise left out as
*censored*: the lead may still convert, so calling it a non-conversion would be a guess. Rows whose lead
had already converted, or was closed (won, lost, disqualified), by the as-of time are left out too.
Every exclusion is counted, so reports can say how many rows were not labelled and why.

With ``rejections`` (``rejected_by_sales``: when sales rejected each lead), a row whose lead sales
rejected within its horizon, without the outcome, is labelled 0 at once instead of waiting for the
horizon to pass: sales has judged it (``learn --rejected-negative``). ``--outcome sql`` is acceptance by
sales (an acceptance is recorded as an ``sql`` outcome).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from leadscore.store.schema import events, feedback, outcomes

OUTCOME_KINDS = ("sql", "opportunity", "won", "lost", "disqualified")
CLOSING_KINDS = ("won", "lost", "disqualified")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Labels:
    pairs: list[tuple[int, int]]  # the labelled (lead, as_of) rows
    y: list[int]
    censored: int
    already_converted: int
    closed: int
    rejected: int = 0  # rows labelled 0 because sales rejected the lead within the horizon

    @property
    def excluded(self) -> dict[str, int]:
        return {
            "censored (outcome window still open)": self.censored,
            "already converted before the as-of time": self.already_converted,
            "closed (won, lost or disqualified) before the as-of time": self.closed,
        }


def outcome_times(
    conn: Connection, lead_ids: Sequence[int] | None = None
) -> dict[int, list[tuple[str, int]]]:
    query = select(outcomes.c.lead_id, outcomes.c.kind, outcomes.c.at_ms)
    if lead_ids is not None:
        query = query.where(outcomes.c.lead_id.in_(list(lead_ids)))
    out: dict[int, list[tuple[str, int]]] = defaultdict(list)
    for lead_id, kind, at in conn.execute(query):
        out[int(lead_id)].append((str(kind), int(at)))
    return out


def first_conversions(history: dict[int, list[tuple[str, int]]], kind: str) -> dict[int, int]:
    """When each lead (of ``outcome_times``) first had the outcome ``kind``; leads without it left out."""
    first: dict[int, int] = {}
    for lead, rows in history.items():
        hits = [at for k, at in rows if k == kind]
        if hits:
            first[lead] = min(hits)
    return first


def mql_converted(first: int | None, at_ms: int, horizon_ms: int, end_ms: int) -> bool | None:
    """What became of an MQL at ``at_ms`` whose lead first converted at ``first`` (None: never), as the
    backtest's precision and the health check's calibration count it: True when it converted within the
    horizon after, False when the horizon passed (by ``end_ms``) without it; None, not counted, when the
    lead had converted by then (not the model's doing) or the horizon is still open."""
    if first is not None and first <= at_ms:
        return None
    if first is not None and first <= at_ms + horizon_ms:
        return True
    return False if at_ms + horizon_ms <= end_ms else None


def rejected_by_sales(conn: Connection) -> dict[int, list[int]]:
    """When sales rejected each lead (the hand-off's feedback), oldest first."""
    query = select(feedback.c.lead_id, feedback.c.at_ms).where(feedback.c.decision == "rejected")
    out: dict[int, list[int]] = defaultdict(list)
    for lead_id, at in conn.execute(query.order_by(feedback.c.at_ms)):
        out[int(lead_id)].append(int(at))
    return out


def data_end(conn: Connection) -> int:
    """The latest time the store has seen: the newest event or outcome."""
    # the newest event of each type, read from the end of the events' (type, ts, ...) index: no index
    # starts with the time, and max(ts) over the whole log read a million rows (100 ms and more at 100k
    # leads, on every evaluation and review request)
    last_event, kind = 0, conn.execute(select(func.min(events.c.type))).scalar()
    while kind is not None:
        newest = conn.execute(select(func.max(events.c.ts)).where(events.c.type == kind)).scalar()
        last_event = max(last_event, int(newest or 0))
        kind = conn.execute(select(func.min(events.c.type)).where(events.c.type > kind)).scalar()
    last_outcome = conn.execute(select(func.max(outcomes.c.at_ms))).scalar() or 0
    return int(max(last_event, last_outcome))


def label(
    pairs: Sequence[tuple[int, int]],
    history: dict[int, list[tuple[str, int]]],
    kind: str,
    horizon_ms: int,
    end_ms: int,
    rejections: dict[int, list[int]] | None = None,
) -> Labels:
    if kind not in OUTCOME_KINDS:
        raise ValueError(f"unknown outcome {kind!r}; one of {', '.join(OUTCOME_KINDS)}")
    kept: list[tuple[int, int]] = []
    y: list[int] = []
    censored = converted = closed = rejected = 0
    for lead_id, as_of in pairs:
        rows = history.get(lead_id, [])
        if any(k == kind and at <= as_of for k, at in rows):
            converted += 1
        elif any(k in CLOSING_KINDS and at <= as_of for k, at in rows):
            closed += 1
        elif any(k == kind and as_of < at <= as_of + horizon_ms for k, at in rows):
            kept.append((lead_id, as_of))
            y.append(1)
        elif rejections and any(as_of < at <= as_of + horizon_ms for at in rejections.get(lead_id, ())):
            kept.append((lead_id, as_of))
            y.append(0)
            rejected += 1
        elif as_of + horizon_ms > end_ms:
            censored += 1
        else:
            kept.append((lead_id, as_of))
            y.append(0)
    return Labels(kept, y, censored, converted, closed, rejected)
