"""Outcomes from CRM exports (CSV), with HubSpot/Salesforce-style headers accepted: one row per outcome,
or one row per lead (its furthest outcome, with the dates of each step).

Columns (case and spacing ignored): the lead as ``lead_id``, ``email`` or ``user_id``/``external_id``;
``kind`` (or ``outcome``, ``stage``, ``deal stage``: sql, opportunity, won, lost, disqualified;
"Closed Won"/"Closed Lost" read as won/lost; ``none`` or blank: no outcome yet, the row is skipped);
``date`` (or ``at``: ISO date or date-time, UTC unless an offset is given; a date is midnight UTC);
``opportunity date`` and ``close date`` (a row per lead: a won or lost row with an opportunity date is
also an opportunity then; the close date is when it was won or lost); ``amount``; ``reason``. Each bad
row is reported with its row number and field; good rows are recorded.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from leadscore.errors import Problem
from leadscore.ingest.csv_encoding import Encoding, detect, undecodable
from leadscore.ingest.csv_import import cell_named, csv_records, read_as_one, read_as_one_message
from leadscore.ingest.csv_numbers import ColumnFormat, ColumnProfile, Mark, NumberProblem
from leadscore.ingest.limits import EARLIEST_MS, LATEST_MS, MAX_ROW_CHARS
from leadscore.ingest.segment import MAX_FUTURE_MS

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
    "close_date": "close_date",
    "closed_at": "close_date",
    "opportunity_date": "opportunity_date",
    "opportunity_created": "opportunity_date",
    "opportunity_created_date": "opportunity_date",
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
NO_OUTCOME = frozenset({"", "none", "-", "n/a", "open"})  # a lead without an outcome yet (one row per lead)
CLOSING = frozenset({"won", "lost", "disqualified"})


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


def unstorable(at_ms: int, amount: float | None, reason: str | None) -> tuple[str, str] | None:
    """(field, why: to follow the value) when an outcome holds what no store keeps as meant: a time outside 1970 to 9999 (as
    events), an amount that is not a finite number (SQLite keeps NaN as NULL, PostgreSQL as NaN), a NUL
    character (PostgreSQL refuses it in any text); None when it can be stored."""
    if not EARLIEST_MS <= at_ms <= LATEST_MS:
        return "at", "is not a time between 1970-01-01 and 9999-12-31 (UTC)"
    if amount is not None and not math.isfinite(amount):
        return "amount", "is not a finite number"
    if reason is not None and "\x00" in reason:
        return "reason", "has a NUL character (\\u0000)"
    return None


def too_late(at_ms: int, now_ms: int) -> str | None:
    """Why an outcome's or a decision's time cannot be taken (None when it can): more than a day after now,
    as an event's (``ingest.segment.MAX_FUTURE_MS``: a broken clock or a typed year, not a real future).
    Taken, it would move the lead's stage at a time still to come, so its stage "now" and its history
    would disagree until then."""
    if at_ms > now_ms + MAX_FUTURE_MS:
        hours = MAX_FUTURE_MS // 3_600_000
        return f"is more than {hours} h after now: an outcome or decision cannot be dated in the future"
    return None


def _header(name: str) -> str:
    return ALIASES.get(re.sub(r"[\s-]+", "_", name.strip().lower()), "")


CHUNK_ROWS = 1_000  # rows of a file read, checked and handed on at a time (``outcome_chunks``)


def read_outcomes(
    path: Path, decimal: Mark | None = None, limit: int = MAX_ROW_CHARS
) -> tuple[list[OutcomeRow], list[Problem]]:
    """The file's outcomes and its bad rows, all of them at once (``outcome_chunks`` gathered: for a
    small file; ``leadscore outcomes import`` reads a chunk at a time)."""
    rows: list[OutcomeRow] = []
    problems: list[Problem] = []
    for found, bad in outcome_chunks(path, decimal, limit):
        rows.extend(found)
        problems.extend(bad)
    return rows, problems


def outcome_chunks(
    path: Path, decimal: Mark | None = None, limit: int = MAX_ROW_CHARS, size: int = CHUNK_ROWS
) -> Iterator[tuple[list[OutcomeRow], list[Problem]]]:
    """The file's outcomes and its bad rows (each with its row number), ``size`` rows of the file at a
    time, in file order: the memory held does not grow with the file. ``decimal``: the amount column's
    decimal mark (None: decided from the whole column, as lead imports decide it: a first pass over the
    file, which keeps only counts); ``limit``: the most characters a row holds. A file that cannot be
    read as outcomes at all (its header) is one chunk of one problem."""
    encoding = detect(path)  # as lead imports read it; undecodable bytes stay in their cells
    amounts = ColumnProfile()  # the amount column's decimal mark is decided from all of it, as imports do
    with csv_records(path, encoding, blank=True, limit=limit) as (_, records):
        names = _columns(path, next(records, None))
        if isinstance(names, Problem):
            yield [], [names]
            return
        for number, record in records:
            read = _cells(record, names, encoding) if isinstance(record, list) else None
            if isinstance(read, dict) and read.get("amount"):
                amounts.add(number, read["amount"])
    amount = ColumnFormat.decide(amounts, decimal)
    if not amount.numeric:  # mostly not numbers: each is reported as not one
        amount = ColumnFormat(
            True, decimal, "no value in the column settles whether '.' or ',' is the decimal mark"
        )
    with csv_records(path, encoding, blank=True, limit=limit) as (_, records):
        next(records, None)  # the header, read above
        rows: list[OutcomeRow] = []
        problems: list[Problem] = []
        for count, (number, found) in enumerate(records, 1):
            if isinstance(found, Problem):
                problems.append(cell_named(found, names))
            elif isinstance(data := _cells(found, names, encoding), tuple):
                problems.append(Problem(data[1], str(path), number, field=data[0]))
            else:
                rows.extend(_row(number, data, str(path), problems, amount))
            if count % size == 0:
                yield rows, problems
                rows, problems = [], []
        if rows or problems:
            yield rows, problems


def _columns(path: Path, first: tuple[int, list[str] | Problem] | None) -> list[str] | Problem:
    """Each column's name (empty: not read) from the header record, or the problem that stops the file."""
    if first is not None and isinstance(first[1], Problem):
        return replace(first[1], message=f"the header row: {first[1].message}")
    headers = first[1] if first is not None and isinstance(first[1], list) else []
    names = [_header(h) for h in headers]
    twice = _read_twice(headers)
    if twice is not None:
        return Problem(twice, str(path), 1)
    if not any(v in ("lead_id", "email", "user_id") for v in names) or "kind" not in names:
        return Problem(
            "the CSV needs a lead column (lead_id, email or user_id) and a kind column", str(path), 1
        )
    return names


def _cells(cells: list[str], names: list[str], encoding: Encoding) -> dict[str, str] | tuple[str, str]:
    """A record's cells by column name, stripped (a missing cell is blank and one past the header's
    columns is not read), or (column, why) for a cell whose bytes the file's encoding cannot read."""
    data = {name: cell.strip() for name, cell in zip(names, cells, strict=False) if name}
    damaged = next(((k, why) for k, v in data.items() if (why := undecodable(v, encoding))), None)
    return damaged if damaged is not None else data


def _not_finite(text: str) -> float | None:
    """``text`` as Python reads an infinite or NaN float (inf, nan, 1e999), else None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isfinite(value) else value


def _read_twice(headers: list[str]) -> str | None:
    """Two headers read as one column (``Outcome`` and ``Deal Stage``, or a header twice): the reader would
    keep the last one's cell, blank or not (``ingest.csv_import.read_as_one``)."""
    twice = read_as_one(headers, [_header(h) for h in headers])
    return None if twice is None else read_as_one_message(headers, twice) + ": remove one"


def _time(data: dict[str, str], names: tuple[str, ...], file: str, number: int) -> int | Problem | None:
    """The first of the date columns ``names`` the row fills (None: none), or the problem with it."""
    for name in names:
        if data.get(name):
            try:
                at = parse_time(data[name])
            except ValueError:
                return Problem(f"{data[name]!r} is not an ISO date or date-time", file, number, field=name)
            refused = unstorable(at, None, None)
            return (
                at if refused is None else Problem(f"{data[name]!r} {refused[1]}", file, number, field=name)
            )
    return None


def _row(
    number: int, data: dict[str, str], file: str, problems: list[Problem], amount_format: ColumnFormat
) -> list[OutcomeRow]:
    lead = data.get("lead_id") or data.get("email") or data.get("user_id")
    if not lead:
        problems.append(Problem("no lead (lead_id, email or user_id)", file, number, field="lead"))
        return []
    text = data.get("kind", "").lower()
    if text in NO_OUTCOME:
        return []
    kind = KINDS.get(text)
    if kind is None:
        problems.append(Problem(f"unknown outcome {data.get('kind')!r}", file, number, field="kind"))
        return []
    own = ("close_date", "date") if kind in CLOSING else ("opportunity_date", "date", "close_date")
    at = _time(data, own, file, number)
    # a closed deal's opportunity step, when the row dates it (one row per lead)
    opened = _time(data, ("opportunity_date",), file, number) if kind in ("won", "lost") else None
    if isinstance(at, Problem) or isinstance(opened, Problem):
        problems.append(at if isinstance(at, Problem) else opened)  # type: ignore[arg-type]
        return []
    if at is None:
        problems.append(Problem(f"no date for {kind}", file, number, field=own[0]))
        return []
    if opened is not None and opened > at:
        problems.append(Problem("the opportunity date is after the close date", file, number,
                                field="opportunity_date"))  # fmt: skip
        return []
    amount = None
    if data.get("amount"):
        try:
            amount = float(amount_format.convert(data["amount"]))
        except NumberProblem as exc:  # 12,5 is 12.5 where the column's decimal mark is ',', never 125
            amount = _not_finite(data["amount"])
            if amount is None:  # inf, nan and 1e999 are said to be "not a finite number" below
                problems.append(Problem(str(exc), file, number, field="amount"))
                return []
    reason = data.get("reason") or None
    refused = unstorable(at, amount, reason)
    if refused is not None:
        field, why = refused
        shown = f"{data[field]!r} " if field == "amount" else ""
        problems.append(Problem(shown + why, file, number, field=field))
        return []
    out = [OutcomeRow(number, lead, kind, at, amount, reason)]
    if opened is not None:
        out.insert(0, OutcomeRow(number, lead, "opportunity", opened, amount, None))
    return out
