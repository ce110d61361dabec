"""Threshold crossings: a lead's band, grade or level changed between its stored current score and the
one just computed. Recorded with the new scores, in the same transaction, for the lifecycle to act on.

Crossings compare current states (not history rows), so events arriving late or out of order cannot
produce a crossing that in-order arrival would not: the current score includes every event whatever
order they came in, and re-scoring the same history changes nothing, so it records nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from leadscore.compile import Ledger
from leadscore.store.results import NamedResults, record_crossings, save_current_scores

KINDS = ("band", "grade", "level")  # the order ``save_named_scores`` compares them in


def save_scores(
    conn: Connection,
    ledgers: Sequence[Ledger],
    version_id: int,
    stamp: int,
    cause: str | Mapping[int, str],
    due: Mapping[int, int | None] | None = None,
    *,
    score_name: str,
) -> int:
    """Save ledgers as the current scores ``score_name`` (with when each is next due:
    ``scoring.due.schedule``) and record the crossings they make; returns crossings recorded."""
    return save_named_scores(conn, [NamedResults(score_name, version_id, ledgers, due)], stamp, cause)


def save_named_scores(
    conn: Connection, parts: Sequence[NamedResults], stamp: int, cause: str | Mapping[int, str]
) -> int:
    """``save_scores`` for several scores of the same leads, one statement each for all of them (the
    saves, which return the states before, and the crossings); returns crossings recorded."""
    if not parts:
        return 0
    before = save_current_scores(conn, parts, stamp)
    rows: list[dict[str, Any]] = []
    first = (None,) * len(KINDS)
    for part in parts:
        for ledger in part.results:
            old = before.get((ledger.lead_id, part.score_name))
            now = (str(ledger.band), str(ledger.grade), str(ledger.level))  # in the order of KINDS
            was = first if old is None else (str(old["band"]), str(old["grade"]), str(old["level"]))
            if was == now:
                continue  # most leads: nothing crossed (one comparison, not one per kind)
            for kind, was_kind, now_kind in zip(KINDS, was, now, strict=True):
                if was_kind != now_kind and not (old is None and _initial(kind, now_kind)):
                    rows.append(
                        {
                            "lead_id": ledger.lead_id,
                            "score_name": part.score_name,
                            "model_version_id": part.version_id,
                            "kind": kind,
                            "from_value": was_kind,
                            "to_value": now_kind,
                            "at_ms": stamp,
                            "score": ledger.score,
                            "cause_ref": cause if isinstance(cause, str) else cause.get(ledger.lead_id, ""),
                            "recorded_ms": stamp,
                        }
                    )
    return record_crossings(conn, rows)


def _initial(kind: str, value: str) -> bool:
    """A first score in the lowest band/grade/level is where every lead starts, not a crossing."""
    return value == {"band": "cold", "grade": "D", "level": "4"}[kind]
