"""Segments: named sets of leads by stage, band, grade, score and attributes, kept current as leads are
evaluated, exportable as CSV, and announced by webhook when a lead enters or leaves one. A segment tests
the score it names (``score: analytics``; the primary when it names none), and its export and webhooks
tell that score."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, Select, and_, select, true
from sqlalchemy.sql.elements import ColumnElement

from leadscore.compile.conditions import compile_condition
from leadscore.compile.query import lead_resolver
from leadscore.compile.sources import lead_company
from leadscore.lifecycle.actions import iso
from leadscore.lifecycle.context import lead_context
from leadscore.lifecycle.lead_filter import exportable
from leadscore.model import ScoringModel, Segment
from leadscore.settings import Settings
from leadscore.spreadsheet import csv_safe
from leadscore.store import Store
from leadscore.store.lifecycle_tables import change_membership, segment_member_ids
from leadscore.store.outbox import enqueue
from leadscore.store.schema import accounts, lead_stages, leads, scores, segment_members
from leadscore.store.score_names import scores_of

CHUNK = 500
EXPORT_COLUMNS = (
    "lead_id",
    "external_id",
    "email",
    "first_name",
    "last_name",
    "company",
    "stage",
    "score",
    "grade",
    "band",
    "entered",
)


def _members(
    conn: Connection, model: ScoringModel, segment: Segment, lead_ids: Sequence[int] | None
) -> set[int]:
    tests: list[ColumnElement[bool]] = []
    if segment.stages:
        tests.append(lead_stages.c.stage.in_(list(segment.stages)))
    if segment.bands:
        tests.append(scores.c.band.in_(list(segment.bands)))
    if segment.grades:
        tests.append(scores.c.grade.in_(list(segment.grades)))
    if segment.score_at_least is not None:
        tests.append(scores.c.score >= segment.score_at_least)
    if segment.attributes is not None:
        tests.append(compile_condition(segment.attributes, lead_resolver(leads, accounts), model, segment.id))
    query = (
        select(leads.c.id)
        .select_from(
            leads.join(scores, scores_of(leads.c.id, segment.score))
            .join(lead_stages, lead_stages.c.lead_id == leads.c.id)
            .outerjoin(accounts, accounts.c.id == leads.c.account_id)
        )
        .where(and_(*tests) if tests else true())
    )
    if lead_ids is not None:
        query = query.where(leads.c.id.in_(list(lead_ids)))
    return set(conn.execute(query).scalars())


def refresh(
    conn: Connection,
    model: ScoringModel,
    lead_ids: Sequence[int] | None,
    settings: Settings,
    now_ms: int,
) -> int:
    """Bring membership up to date for ``lead_ids`` (None: every lead); returns the changes made."""
    lifecycle = model.lifecycle
    if lifecycle is None:
        return 0
    changes = 0
    chunks = (
        [lead_ids[i : i + CHUNK] for i in range(0, len(lead_ids), CHUNK)] if lead_ids is not None else [None]
    )
    for segment in lifecycle.segments:
        for chunk in chunks:
            now_in = _members(conn, model, segment, chunk)
            before = segment_member_ids(conn, segment.id, chunk)
            rows = change_membership(
                conn, segment.id, sorted(now_in - before), sorted(before - now_in), now_ms
            )
            changes += len(rows)
            if segment.webhook is not None:
                _announce(conn, model, segment, rows, settings, now_ms)
    return changes


def _announce(
    conn: Connection,
    model: ScoringModel,
    segment: Segment,
    rows: list[dict[str, Any]],
    settings: Settings,
    now_ms: int,
) -> None:
    hook = segment.webhook
    assert hook is not None
    out = []
    for change in rows:
        kind = "segment.entered" if change["change"] == "enter" else "segment.left"
        lead = lead_context(conn, model, change["lead_id"], settings, segment.score)["lead"]
        key = f"segment:{segment.id}:{change['id']}"
        body: dict[str, Any] = (
            {"text": f"{lead['name']} {'entered' if change['change'] == 'enter' else 'left'} {segment.name}"}
            if hook.format == "slack"
            else {
                "id": key,
                "type": kind,
                "occurred_at": iso(now_ms),
                "segment": {"id": segment.id, "name": segment.name},
                "lead": lead,
            }
        )
        out.append(
            {
                "key": key,
                "channel": "webhook",
                "action": f"segment_{segment.id}"[:63],
                "lead_id": change["lead_id"],
                "target": hook.url or f"env:{hook.url_env}",
                "payload": {"body": body, "event": kind},
            }
        )
    enqueue(conn, out, now_ms)


def members_query(segment: Segment) -> Select[Any]:
    """The members of ``segment``, the highest of the score it tests first, with that score's values."""
    return (
        select(
            leads.c.id.label("lead_id"),
            leads.c.external_id,
            leads.c.email,
            leads.c.first_name,
            leads.c.last_name,
            lead_company(leads, accounts).label("company"),
            lead_stages.c.stage,
            scores.c.score,
            scores.c.grade,
            scores.c.band,
            segment_members.c.entered_ms,
        )
        .select_from(
            segment_members.join(leads, leads.c.id == segment_members.c.lead_id)
            .outerjoin(accounts, accounts.c.id == leads.c.account_id)
            .outerjoin(scores, scores_of(leads.c.id, segment.score))
            .outerjoin(lead_stages, lead_stages.c.lead_id == leads.c.id)
        )
        .where(segment_members.c.segment == segment.id)
        .order_by(scores.c.score.desc(), leads.c.id)
    )


def member(row: Mapping[Any, Any]) -> dict[str, Any]:
    """One row of ``members_query`` as a segment's member is shown (``entered`` as an ISO time)."""
    return {**{str(k): v for k, v in row.items()}, "entered": iso(int(row["entered_ms"]))}


def members(conn: Connection, segment: Segment) -> list[dict[str, Any]]:
    """The members of ``segment`` (``members_query``), each as ``member`` shows it."""
    return [member(r) for r in conn.execute(members_query(segment)).mappings()]


def stream_members(store: Store, segment: Segment, fmt: str) -> Iterator[bytes]:
    """The members of ``segment`` as CSV (``EXPORT_COLUMNS``) or as the JSON of ``GET
    /v1/segments/{id}/members``, read and written ``CHUNK`` rows at a time: a segment of every lead is never
    held whole (100,000 members were a list of dictionaries, then one JSON document, in memory). A member
    who withdrew tracking consent is left out, as from every export (``lead_filter.exportable``)."""
    query = members_query(segment).where(exportable(leads.c.attributes))
    with store.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=CHUNK).execute(query)
        chunks = (list(map(member, rows)) for rows in result.mappings().partitions(CHUNK))
        if fmt == "csv":
            yield from (text.encode() for text in export_csv(chunks))
            return
        yield b'{"ok":true,"segment":' + orjson.dumps(segment.id) + b',"members":['
        first = True
        for rows in chunks:
            body = b",".join(map(orjson.dumps, rows))
            yield body if first else b"," + body
            first = False
        yield b"]}"


def export_csv(chunks: Iterable[Sequence[Mapping[str, Any]]]) -> Iterator[str]:
    """``EXPORT_COLUMNS`` of the members, a chunk of rows at a time (formulas neutralised: ``csv_safe``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for rows in chunks:
        for row in rows:
            writer.writerow([csv_safe(row.get(c)) for c in EXPORT_COLUMNS])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    yield buffer.getvalue()
