"""Read API: ``GET /v1/leads`` (filter, sort, cursor pages, streamed CSV/NDJSON export) and
``GET /v1/leads/{id-or-email}`` (attributes, score, ledger, history, crossings) and
``GET /v1/leads/{id-or-email}/explanation`` (the current score's ledger with the events behind each line,
``scoring.explain``, as the dashboard and ``leadscore explain`` show it; each rule's newest
``EVENTS_PER_LINE``, and ``.../explanation/lines/{rule}/events`` pages through all of one rule's). Read
tokens only.

A lead has one score per named score (store/score_names.py): the score columns, the ledger, history and
explanation are the primary score's unless ``?score=NAME`` names another; a JSON page and a lead also
list every named score (``scores``: name → score, grade, level, band)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import Select, and_, select

from leadscore.api import lead_cursor
from leadscore.api.deps import KnownLeadFilter, ReaderState, ScorePicked, check_score_exists
from leadscore.api.errors import ApiError
from leadscore.api.lead_cursor import sort_key
from leadscore.api.openapi import refusals
from leadscore.api.paging import PAGE_ROWS, Limit, Offset, page_at
from leadscore.compile.contributions import EVENTS_PER_LINE
from leadscore.compile.sources import lead_company
from leadscore.lifecycle.lead_filter import LeadFilter
from leadscore.model.rules import RULE_ID
from leadscore.scoring.explain import EventPage, current_line_events, explain_current
from leadscore.scoring.run import now_ms
from leadscore.spreadsheet import csv_safe
from leadscore.store.people import resolve_lead_ref
from leadscore.store.results import crossing_rows, history_rows, read_current
from leadscore.store.schema import accounts, leads, scores
from leadscore.store.score_names import is_live, named

router = APIRouter(prefix="/v1", tags=["leads"])
COLUMNS = [
    leads.c.id.label("lead_id"),
    leads.c.external_id,
    leads.c.email,
    leads.c.first_name,
    leads.c.last_name,
    lead_company(leads, accounts).label("company"),
    scores.c.score,
    scores.c.fit_score,
    scores.c.engagement_score,
    scores.c.grade,
    scores.c.level,
    scores.c.band,
    leads.c.updated_ms,
]
EXPORT_CHUNK = 1000


def _query(f: LeadFilter) -> Select[Any]:
    joined = leads.outerjoin(
        scores, and_(scores.c.lead_id == leads.c.id, named(scores.c.score_name, f.score_name))
    ).outerjoin(accounts, accounts.c.id == leads.c.account_id)
    return select(*COLUMNS).select_from(joined).where(f.matches(leads.c.id))


EXPORTS = {
    "description": "A page of leads (JSON), or every matching lead (CSV, NDJSON)",
    "content": {
        "application/json": {},
        "text/csv": {"schema": {"type": "string"}},
        "application/x-ndjson": {"schema": {"type": "string"}},
    },
}


@router.get("/leads", summary="List leads with their scores", responses={200: EXPORTS, **refusals(400, 404)})
def list_leads(
    state: ReaderState,
    f: KnownLeadFilter,
    sort: Annotated[
        Literal["score", "fit", "engagement", "updated", "id"],
        Query(description="the order; `id` (ascending) is the walk a sync client follows: each lead once"),
    ] = "score",
    order: Annotated[Literal["desc", "asc"], Query()] = "desc",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=500,
            description="the `next_cursor` of the previous page of the same sort and order (opaque); "
            "a walk reads the leads changed since its first page after the others (docs/ingest.md)",
        ),
    ] = None,
    format: Annotated[Literal["json", "csv", "ndjson"], Query()] = "json",
) -> Any:
    key = sort_key(sort)
    query = _query(f).add_columns(key.label("sort_value"))
    if format != "json":
        ordering = (key.desc(), leads.c.id.desc()) if order == "desc" else (key.asc(), leads.c.id.asc())
        # as every list of people: less anyone who withdrew tracking consent (``LeadFilter.matches``)
        return _export(state.store, query.order_by(*ordering), format)
    at = lead_cursor.decode(cursor, sort, order) if cursor else None
    since = at.since if at is not None else now_ms()
    rows: list[dict[str, Any]] = []
    with state.store.connect() as conn:
        if at is None or at.stage == lead_cursor.SORTED:
            first = lead_cursor.sorted_pass(query, sort, order, since, at)
            rows = [dict(r) for r in conn.execute(first.limit(limit + 1)).mappings()]
        if len(rows) <= limit:
            second = lead_cursor.changed_pass(query, sort, since, at)
            if second is not None:
                more_rows = [dict(r) for r in conn.execute(second.limit(limit + 1 - len(rows))).mappings()]
                rows += [{**r, "pass": lead_cursor.CHANGED_PASS} for r in more_rows]
        named_scores = all_scores(conn, [row["lead_id"] for row in rows[:limit]])
        withdrawn = f.withdrawn(conn)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        stage = last.get("pass", lead_cursor.SORTED)
        value = None if stage == lead_cursor.CHANGED_PASS else last["sort_value"]
        next_cursor = lead_cursor.Cursor(sort, order, since, stage, value, last["lead_id"]).encode()
    for row in rows:
        row.pop("sort_value")
        row.pop("pass", None)
        row["scores"] = named_scores.get(row["lead_id"], {})
    return {"ok": True, "leads": rows, "next_cursor": next_cursor, "withdrawn": withdrawn}


def all_scores(conn: Any, lead_ids: list[int]) -> dict[int, dict[str, dict[str, Any]]]:
    """Every live named score of each lead (a retired one is read when named): lead → name → score, fit,
    engagement, grade, level, band."""
    query = select(
        scores.c.lead_id,
        scores.c.score_name,
        scores.c.score,
        scores.c.fit_score,
        scores.c.engagement_score,
        scores.c.grade,
        scores.c.level,
        scores.c.band,
    ).where(scores.c.lead_id.in_(lead_ids), is_live(scores.c.score_name))
    out: dict[int, dict[str, dict[str, Any]]] = {}
    for row in conn.execute(query.order_by(scores.c.lead_id, scores.c.score_name)).mappings():
        values = dict(row)
        out.setdefault(values.pop("lead_id"), {})[values.pop("score_name")] = values
    return out


def _export(store: Any, query: Select[Any], fmt: str) -> StreamingResponse:
    names = [str(c.name) for c in COLUMNS]

    def rows() -> Iterator[bytes]:
        with store.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=EXPORT_CHUNK).execute(query)
            if fmt == "csv":
                out = io.StringIO()
                writer = csv.writer(out)
                writer.writerow(names)
                for chunk in result.mappings().partitions(EXPORT_CHUNK):
                    for row in chunk:
                        writer.writerow([csv_safe(row[n]) for n in names])
                    yield out.getvalue().encode()
                    out.seek(0)
                    out.truncate()
                yield out.getvalue().encode()
            else:
                for chunk in result.mappings().partitions(EXPORT_CHUNK):
                    yield b"".join(orjson.dumps({n: row[n] for n in names}) + b"\n" for row in chunk)

    media = "text/csv; charset=utf-8" if fmt == "csv" else "application/x-ndjson"
    headers = {"Content-Disposition": f'attachment; filename="leads.{fmt}"'}
    return StreamingResponse(rows(), media_type=media, headers=headers)


@router.get(
    "/leads/{ref}",
    summary="One lead: attributes, score, ledger, history, crossings",
    responses=refusals(404),
)
def get_lead(
    state: ReaderState,
    ref: str,
    score: ScorePicked,
    history_limit: Limit = PAGE_ROWS,
    history_offset: Offset = 0,
    crossings_limit: Limit = PAGE_ROWS,
    crossings_offset: Offset = 0,
) -> dict[str, Any]:
    """The lead's score history and crossings a page each (``api.paging``, as a lead's stage moves: the
    newest first from the offset, each page oldest first; ``history_paging``, ``crossings_paging``)."""
    name = _score_param(state, score)
    with state.store.connect() as conn:
        lead_id = resolve_lead_ref(conn, ref)
        lead = dict(conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one())
        account = None
        if lead["account_id"] is not None:
            row = conn.execute(select(accounts).where(accounts.c.id == lead["account_id"])).mappings().one()
            account = {k: row[k] for k in ("id", "domain", "name", "attributes")}
        current, ledger = read_current(conn, lead_id, name)
        history, history_total = history_rows(conn, lead_id, history_limit, history_offset, name)
        crossings, crossings_total = crossing_rows(conn, lead_id, crossings_limit, crossings_offset, name)
        named_scores = all_scores(conn, [lead_id]).get(lead_id, {})
    lead.pop("attribute_ts", None)
    return {
        "ok": True,
        "lead": lead,
        "account": account,
        "score": current,
        "scores": named_scores,
        "ledger": ledger,
        "history": history,
        "history_paging": page_at(len(history), history_total, history_limit, history_offset),
        "crossings": crossings,
        "crossings_paging": page_at(len(crossings), crossings_total, crossings_limit, crossings_offset),
    }


@router.get(
    "/leads/{ref}/explanation",
    summary="The lead's current score explained: ledger lines and each counted event's share of them",
    responses=refusals(404),
)
def get_explanation(
    state: ReaderState,
    ref: str,
    score: ScorePicked,
) -> dict[str, Any]:
    name = _score_param(state, score)
    with state.store.connect() as conn:
        lead_id = resolve_lead_ref(conn, ref)
        explained = explain_current(conn, state.store.sources(), lead_id, name)
    if explained is None:
        which = "" if name is None else f" {name!r}"
        raise ApiError(404, f"lead {ref} has no score{which} yet")
    version, explanation = explained
    return {
        "ok": True,
        "model": version.label,
        "score_name": version.score_name,
        "explanation": explanation.as_dict(),
    }


@router.get(
    "/leads/{ref}/explanation/lines/{rule_id}/events",
    summary="A page of the counted events behind one rule's line of the current score, newest first",
    responses=refusals(404),
)
def get_line_events(
    state: ReaderState,
    ref: str,
    rule_id: Annotated[str, Path(pattern=RULE_ID, max_length=100, description="an engagement rule's id")],
    score: ScorePicked,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1, description="events skipped, newest first")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = EVENTS_PER_LINE,
) -> dict[str, Any]:
    """Each event with its share of every line, as the explanation computes them over all the rule's
    events (so the shares of every page add up to the line); ``total`` events, ``next_offset`` (null
    after the last page)."""
    name = _score_param(state, score)
    page = EventPage(rule_id, offset, limit)
    with state.store.connect() as conn:
        lead_id = resolve_lead_ref(conn, ref)
        try:
            found = current_line_events(conn, state.store.sources(), lead_id, page, name)
        except KeyError:
            raise ApiError(
                404, f"the model of lead {ref}'s score has no engagement rule {rule_id!r}"
            ) from None
    if found is None:
        which = "" if name is None else f" {name!r}"
        raise ApiError(404, f"lead {ref} has no score{which} yet")
    version, line = found
    return {"ok": True, "model": version.label, "score_name": version.score_name, **line.as_dict()}


def _score_param(state: Any, score: str | None) -> str | None:
    """``?score=NAME`` (its form checked by the route: 422), a score that exists (else 404); None: the
    primary."""
    if score is None:
        return None
    check_score_exists(state.store, score)
    return score
