"""A lead's top reasons: the largest lines of its stored ledger (by points, either sign), largest first.

The one definition behind every place that says why a lead scores what it does in a few lines: the
seller's desk, the lifecycle's templates and webhooks, the notifications to users, and ``leadscore score``
and ``leadscore demo`` (``top_lines``, over a ledger computed and not stored). The lead page explains every
line in full (``compile.contributions``); these are the same lines, the largest three.

A reason's points are shown to one decimal, as parts of the score as shown (``scoring.shown``: every line
of the ledger apportioned to the score cut to one decimal): a lead of 59.996 points from one rule has the
reason "+59.9" beside a score of 59.9, never "+60.0".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection

from leadscore.compile import LedgerLine
from leadscore.model import ScoringModel
from leadscore.scoring.shown import apportion
from leadscore.store.ledger_lines import read_lines

REASONS = 3
PLACES = 1  # the decimals a reason's points are shown with


def shown_points(points: Sequence[float]) -> list[float]:
    """Every line's points of one ledger as the reasons show them: to ``PLACES`` decimals, adding up to the
    score (their sum) as shown."""
    return apportion(points, math.fsum(points), PLACES)


def rule_names(model: ScoringModel) -> dict[str, str]:
    """Ledger line id → the name a person reads (rules, and group caps, whose lines are ``group:<id>``)."""
    out = {r.id: r.name for r in (*model.fit, *model.engagement)}
    out.update({f"group:{g.id}": f"Group cap: {g.name}" for g in model.groups})
    return out


def reason_order(points: float, rule_id: str) -> tuple[float, str]:
    """Where a line stands among a lead's reasons: the most points (absolute) first, ties by rule id."""
    return (-abs(points), rule_id)


def top_lines(lines: Iterable[LedgerLine], limit: int = REASONS) -> list[tuple[LedgerLine, float]]:
    """The top reasons of a ledger as computed (``top_reasons`` reads the stored one): the ``limit`` lines
    with the most points, in ``reason_order``, each with its points as shown (``shown_points``); lines
    giving none are not reasons."""
    given = [line for line in lines if line.score_points != 0]
    shown = shown_points([line.score_points for line in given])
    ranked = sorted(
        zip(given, shown, strict=True), key=lambda p: reason_order(p[0].score_points, p[0].rule_id)
    )
    return ranked[:limit]


def top_reasons(
    conn: Connection,
    names: dict[str, str],
    lead_id: int,
    limit: int = REASONS,
    score_name: str | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` ledger lines with the most points (absolute), ties by rule id: rule_id, name,
    points (as shown: ``shown_points``), matched; of the score ``score_name`` (the primary when None; ``names``: its model's)."""
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
        shown = shown_points([float(ln["score_points"]) for ln in found])
        ranked = sorted(
            zip(found, shown, strict=True),
            key=lambda p: reason_order(float(p[0]["score_points"]), str(p[0]["rule_id"])),
        )
        out[lead_id] = [
            {
                "rule_id": ln["rule_id"],
                "name": names.get(ln["rule_id"], ln["rule_id"]),
                "points": points,
                "matched": ln["matched"],
            }
            for ln, points in ranked[:limit]
        ]
    return out
