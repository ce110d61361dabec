"""Erase a person from every table, then prove it by scanning every text and JSON column.

Rows are found three ways, so tables added later are covered without changes here: through the
person's identity keys (events, and events still waiting in the inbox), through any ``lead_id`` column, and by a scan
of every text/JSON column for the person's e-mail, ids and name (outbox payloads, segment exports,
anything else). The audit log keeps its entries (who did what, when) with the personal parts redacted.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    String,
    Table,
    Text,
    cast,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.sql.elements import ColumnElement

from leadscore.privacy.person import Person
from leadscore.store.event_log import drop_from_inbox
from leadscore.store.schema import audit_log, events, identities, leads, metadata

REDACTED = "[erased]"


@dataclass
class EraseReport:
    deleted: dict[str, int] = field(default_factory=dict)
    redacted: dict[str, int] = field(default_factory=dict)
    traces: list[tuple[str, str]] = field(default_factory=list)  # (table, column) still holding a needle

    @property
    def clean(self) -> bool:
        return not self.traces


def _text_columns(table: Table) -> list[Column[Any]]:
    return [c for c in table.columns if isinstance(c.type, String | Text | JSON)]


def _matches(column: Column[Any], needles: tuple[str, ...]) -> ColumnElement[bool]:
    as_text = func.lower(cast(column, Text))
    return or_(*(as_text.like(f"%{n.lower()}%") for n in needles))


def scan(conn: Connection, needles: tuple[str, ...], skip: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """Every (table, column) whose text holds one of ``needles`` (case-insensitive)."""
    hits = []
    present = set(inspect(conn).get_table_names())
    for table in metadata.sorted_tables:
        if table.name in skip or table.name not in present:
            continue
        for column in _text_columns(table):
            found = conn.execute(
                select(func.count()).select_from(table).where(_matches(column, needles))
            ).scalar()
            if found:
                hits.append((table.name, column.name))
    return hits


def erase_person(conn: Connection, person: Person) -> EraseReport:
    """Remove the person everywhere, in one transaction; ``report.traces`` must come back empty."""
    report = EraseReport()

    def count(table: str, n: int) -> None:
        if n:
            report.deleted[table] = report.deleted.get(table, 0) + n

    count("inbox", drop_from_inbox(conn, _theirs(person)))
    # tables that point at the lead, children before parents
    present = set(inspect(conn).get_table_names())
    for table in reversed(metadata.sorted_tables):
        if "lead_id" in table.c and table.name != "identities" and table.name in present:
            count(table.name, conn.execute(delete(table).where(table.c.lead_id == person.lead_id)).rowcount)
    count("events", conn.execute(delete(events).where(events.c.person_key.in_(person.keys))).rowcount)
    count(
        "identities", conn.execute(delete(identities).where(identities.c.lead_id == person.lead_id)).rowcount
    )
    count("leads", conn.execute(delete(leads).where(leads.c.id == person.lead_id)).rowcount)
    needles = person.needles
    if needles:
        # an inbox row holds other people's events too: theirs were taken out above, event by event
        for table_name, column_name in scan(conn, needles, skip=("audit_log", "inbox")):
            table = metadata.tables[table_name]
            count(
                table_name,
                conn.execute(delete(table).where(_matches(table.c[column_name], needles))).rowcount,
            )
        redact = conn.execute(
            update(audit_log)
            .where(or_(_matches(audit_log.c.target, needles), _matches(audit_log.c.details, needles)))
            .values(target=REDACTED, details={"redacted": True})
        ).rowcount
        if redact:
            report.redacted["audit_log"] = redact
        report.traces = scan(conn, needles)
    return report


def _theirs(person: Person) -> Callable[[dict[str, Any]], bool]:
    """Whether a waiting event is the person's: by identity key, or naming them anywhere."""
    keys, needles = set(person.keys), [n.lower() for n in person.needles]

    def theirs(row: dict[str, Any]) -> bool:
        if row["person_key"] in keys:
            return True
        text = json.dumps(row, ensure_ascii=False, default=str).lower()
        return any(n in text for n in needles)

    return theirs


def pseudonym(person: Person) -> str:
    """How the audit log names an erased person: a hash of the lead id, not the person."""
    return "person:" + hashlib.sha256(f"lead:{person.lead_id}".encode()).hexdigest()[:12]
