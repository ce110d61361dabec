"""A lead's top reasons: the largest lines of its stored ledger (by points, either sign), largest first.

The one definition behind every place that says why a lead scores what it does in a few lines: the
seller's desk, the lifecycle's templates and webhooks, the notifications to users, and ``leadscore score``
and ``leadscore demo`` (``top_lines``, over a ledger computed and not stored). The lead page explains every
line in full (``compile.contributions``); these are the same lines, the largest three.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from leadscore.compile import LedgerLine
from leadscore.model import ScoringModel
from leadscore.store.ledger_lines import read_lines

REASONS = 3


def rule_names(model: ScoringModel) -> dict[str, str]:
    """Ledger line id → the name a person reads (rules, and group caps, whose lines are ``group:<id>``)."""
    out = {r.id: r.name for r in (*model.fit, *model.engagement)}
    out.update({f"group:{g.id}": f"Group cap: {g.name}" for g in model.groups})
    return out


def reason_order(points: float, rule_id: str) -> tuple[float, str]:
    """Where a line stands among a lead's reasons: the most points (absolute) first, ties by rule id."""
    return (-abs(points), rule_id)


def top_lines(lines: Iterable[LedgerLine], limit: int = REASONS) -> list[LedgerLine]:
    """The top reasons of a ledger as computed (``top_reasons`` reads the stored one): the ``limit`` lines
    with the most points, in ``reason_order``; lines giving none are not reasons."""
    given = (line for line in lines if line.score_points != 0)
    return sorted(given, key=lambda line: reason_order(line.score_points, line.rule_id))[:limit]


def top_reasons(
    conn: Connection,
    names: dict[str, str],
    lead_id: int,
    limit: int = REASONS,
    score_name: str | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` ledger lines with the most points (absolute), ties by rule id: rule_id, name,
    points, matched; of the score ``score_name`` (the primary when None; ``names``: its model's)."""
    return top_reasons_of(conn, names, [lead_id], limit, score_name)[lead_id]


def top_reasons_of(
    conn: Connection,
    names: dict[str, str],
    lead_ids: Sequence[int],
    limit: int = REASONS,
    score_name: str | None = None,
) -> dict[int, list[dict[str, Any]]]:
    """``top_reasons`` of many leads, read in a few statements (the seller's desk lists hundreds), from the
    ledger of the score ``score_name`` (the primary when None; ``names``: its model's rule names)."""
    lines: dict[int, list[Any]] = {int(i): [] for i in lead_ids}
    for line in read_lines(conn, list(lines), score_name, nonzero=True):
        lines[int(line["lead_id"])].append(line)
    out = {}
    for lead_id, found in lines.items():
        found.sort(key=lambda ln: reason_order(float(ln["score_points"]), str(ln["rule_id"])))
        out[lead_id] = [
            {
                "rule_id": ln["rule_id"],
                "name": names.get(ln["rule_id"], ln["rule_id"]),
                "points": float(ln["score_points"]),
                "matched": ln["matched"],
            }
            for ln in found[:limit]
        ]
    return out
