"""Outcomes from CRM exports (CSV): one row per outcome, with HubSpot/Salesforce-style headers accepted.

Columns (case and spacing ignored): the lead as ``lead_id``, ``email`` or ``user_id``/``external_id``;
``kind`` (or ``outcome``, ``stage``, ``deal stage``: sql, opportunity, won, lost, disqualified;
"Closed Won"/"Closed Lost" read as won/lost); ``date`` (or ``at``, ``close date``: ISO date or date-time,
UTC unless an offset is given; a date is midnight UTC); ``amount``; ``reason``. Each bad row is reported
with its row number and field; good rows are recorded.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from leadscore.errors import Problem

ALIASES = {
    "lead_id": "lead_id",
    "email": "email",
    "user_id": "user_id",
    "userid": "user_id",
    "external_id": "user_id",
    "kind": "kind",
    "outcome": "kind",
    "stage": "kind",
    "deal_stage": "kind",
    "date": "date",
    "at": "date",
    "close_date": "date",
    "closed_at": "date",
    "created_at": "date",
    "amount": "amount",
    "reason": "reason",
    "closed_lost_reason": "reason",
}
KINDS = {
    "sql": "sql",
    "sales qualified lead": "sql",
    "opportunity": "opportunity",
    "won": "won",
    "closed won": "won",
    "closedwon": "won",
    "lost": "lost",
    "closed lost": "lost",
    "closedlost": "lost",
    "disqualified": "disqualified",
}


@dataclass(frozen=True)
class OutcomeRow:
    row: int
    lead: str
    kind: str
    at_ms: int
    amount: float | None
    reason: str | None


def parse_time(text: str) -> int:
    text = text.strip()
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _header(name: str) -> str:
    return ALIASES.get(re.sub(r"[\s-]+", "_", name.strip().lower()), "")


def read_outcomes(path: Path) -> tuple[list[OutcomeRow], list[Problem]]:
    rows: list[OutcomeRow] = []
    problems: list[Problem] = []
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = {f: _header(f) for f in reader.fieldnames or []}
        if (
            not any(v in ("lead_id", "email", "user_id") for v in fields.values())
            or "kind" not in fields.values()
        ):
            return [], [
                Problem(
                    "the CSV needs a lead column (lead_id, email or user_id) and a kind column", str(path), 1
                )
            ]
        for number, raw in enumerate(reader, start=2):
            data = {fields[k]: (v or "").strip() for k, v in raw.items() if fields.get(k)}
            parsed = _row(number, data, str(path), problems)
            if parsed is not None:
                rows.append(parsed)
    return rows, problems


def _row(number: int, data: dict[str, str], file: str, problems: list[Problem]) -> OutcomeRow | None:
    lead = data.get("lead_id") or data.get("email") or data.get("user_id")
    if not lead:
        problems.append(Problem("no lead (lead_id, email or user_id)", file, number, field="lead"))
        return None
    kind = KINDS.get(data.get("kind", "").lower())
    if kind is None:
        problems.append(Problem(f"unknown outcome {data.get('kind')!r}", file, number, field="kind"))
        return None
    try:
        at = parse_time(data["date"]) if data.get("date") else None
    except ValueError:
        problems.append(
            Problem(f"{data['date']!r} is not an ISO date or date-time", file, number, field="date")
        )
        return None
    if at is None:
        problems.append(Problem("no date", file, number, field="date"))
        return None
    amount = None
    if data.get("amount"):
        try:
            amount = float(data["amount"].replace(",", ""))
        except ValueError:
            problems.append(Problem(f"{data['amount']!r} is not a number", file, number, field="amount"))
            return None
    return OutcomeRow(number, lead, kind, at, amount, data.get("reason") or None)
