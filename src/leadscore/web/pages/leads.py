"""Leads: the filterable, sortable list, the fit × engagement matrix, and the CSV export of a filter."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from leadscore.api.deps import KnownLeadFilter
from leadscore.api.state import state_of
from leadscore.lifecycle.lead_filter import BANDS, GRADES, LEVELS, LeadFilter
from leadscore.model.scoring_model import Bands
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.run import now_ms
from leadscore.spreadsheet import csv_safe
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.score_names import picker_names, resolve
from leadscore.web.data import leadlist
from leadscore.web.data.leadlist import Order, Sort
from leadscore.web.render import page
from leadscore.web.security import LeadsExporter, LeadsReader

router = APIRouter()
SOURCES_TTL_S = 60.0
_sources_cache: dict[int, tuple[float, list[str]]] = {}

Filter = KnownLeadFilter  # a score never published: 404, as on the API


def filter_sources(store: Store) -> list[str]:
    """Lead sources for the filter's choices; cached briefly (a GROUP BY over every lead)."""
    hit = _sources_cache.get(id(store))
    if hit and time.monotonic() - hit[0] < SOURCES_TTL_S:
        return hit[1]
    with store.connect() as conn:
        found = leadlist.sources(conn)
    _sources_cache[id(store)] = (time.monotonic(), found)
    return found


HEAT_STEPS = 5  # cells are shaded in this many steps of their count against the fullest cell


def heat(count: int, most: int) -> int:
    """The shade of a matrix cell, 0 (empty) to ``HEAT_STEPS - 1`` (the fullest cell): its share of the
    fullest cell's count, in equal steps above zero."""
    if count <= 0 or most <= 0:
        return 0
    return 1 + min(HEAT_STEPS - 2, (count * (HEAT_STEPS - 1) - 1) // most)


def _grid(counts: dict[tuple[str, int], int], f: LeadFilter) -> list[dict[str, Any]]:
    most = max(counts.values(), default=0)
    rows = []
    for grade in GRADES:
        cells = []
        for level in LEVELS:
            params = f.params(grade=grade, level=level)
            cells.append(
                {
                    "level": level,
                    "count": counts.get((grade, level), 0),
                    "heat": heat(counts.get((grade, level), 0), most),
                    "href": "/leads?" + urlencode(params),
                    "selected": f.grade == grade and f.level == level,
                }
            )
        rows.append({"grade": grade, "cells": cells})
    return rows


@router.get("/", include_in_schema=False)
def home(viewer: LeadsReader) -> RedirectResponse:
    return RedirectResponse("/leads", status_code=303)


@router.get("/leads", response_class=HTMLResponse, include_in_schema=False)
def leads_page(
    request: Request,
    viewer: LeadsReader,
    f: Filter,
    sort: Sort = "score",
    order: Order = "desc",
    page_no: Annotated[int, Query(alias="page", ge=1, le=1_000_000)] = 1,
) -> HTMLResponse:
    store = state_of(request).store
    with store.connect() as conn:
        result = leadlist.list_page(conn, f, sort, order, page_no)
        counts = leadlist.matrix(conn, f)
        stages, owners = leadlist.stages(conn), leadlist.owners(conn)
        score_names = picker_names(conn)
    base = f.params()
    context: dict[str, Any] = {
        "f": f,
        # the score picker: shown when the store keeps more than one named score (docs/named-scores.md)
        "score_names": score_names,
        "sort": sort,
        "order": order,
        "result": result,
        "grid": _grid(counts, f),
        "sources": filter_sources(store),
        "stages": stages,
        "owners": owners,
        "bands": BANDS,
        "grades": GRADES,
        "levels": LEVELS,
        "query": urlencode({**base, "sort": sort, "order": order}),
        "sort_links": {
            col: urlencode(
                {**base, "sort": col, "order": "asc" if sort == col and order == "desc" else "desc"}
            )
            for col in ("score", "fit", "engagement", "name", "company", "updated")
        },
        "page_link": lambda n: "/leads?" + urlencode({**base, "sort": sort, "order": order, "page": n}),
    }
    if request.headers.get("hx-request") != "true":
        return page(request, viewer, "leads.html", **context)
    response = page(request, viewer, "leads_results.html", **context)
    # the address bar shows the filter without its empty fields, so it can be bookmarked and shared
    response.headers["HX-Push-Url"] = f"/leads?{context['query']}"
    return response


@router.get("/leads/matrix", response_class=HTMLResponse, include_in_schema=False)
def matrix_page(request: Request, viewer: LeadsReader, f: Filter) -> HTMLResponse:
    with state_of(request).store.connect() as conn:
        counts = leadlist.matrix(conn, f)
        bins = leadlist.distribution(conn, f)
        active = active_model(conn, resolve(conn, f.score_name))  # the bands of the score shown
        score_names = picker_names(conn)
    total = sum(counts.values())
    return page(
        request,
        viewer,
        "matrix.html",
        f=f,
        grid=_grid(counts, f),
        levels=LEVELS,
        total=total,
        by_grade={g: sum(n for (gg, _), n in counts.items() if gg == g) for g in GRADES},
        by_level={lv: sum(n for (_, ll), n in counts.items() if ll == lv) for lv in LEVELS},
        histogram=histogram(bins, active.model.scale.bands if active is not None else None),
        score=f.score,
        score_names=score_names,
        keep={k: v for k, v in f.params().items() if k != "score"},
    )


def histogram(bins: list[int], bands: Bands | None) -> dict[str, Any]:
    """The score distribution as a bar chart, the band thresholds marked where they fall on the axis."""
    width = 100 / len(bins)
    marks = []
    if bands is not None:
        for name, at in (("warm", bands.warm), ("hot", bands.hot)):
            # a bar spans [i·width, (i+1)·width): a threshold t sits at t / width − ½ in bar units
            marks.append({"x": at / width - 0.5, "label": f"{name} ≥ {at:g}"})
    return {
        "type": "bar",
        "x": [f"{i * width:g}–{(i + 1) * width:g}" for i in range(len(bins))],
        "series": [{"label": "Scored leads", "values": bins}],
        "xTitle": "score",
        "yTitle": "leads",
        "marks": marks,
    }


@router.get("/leads/export.csv", include_in_schema=False)
def export_csv(
    request: Request, viewer: LeadsExporter, f: Filter, sort: Sort = "score", order: Order = "desc"
) -> StreamingResponse:
    """Every lead matching the filter as CSV (formulas neutralised); the export is audited."""
    store = state_of(request).store
    stamp = now_ms()
    with store.begin() as conn:
        audit(conn, stamp, viewer.email, "leads.export", "leads", filter=f.params(), sort=sort, order=order)

    def chunks() -> Iterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(leadlist.EXPORT_COLUMNS)
        with store.connect() as conn:
            for n, row in enumerate(leadlist.export_rows(conn, f, sort, order), 1):
                writer.writerow([csv_safe(row[c]) for c in leadlist.EXPORT_COLUMNS])
                if n % 1000 == 0:
                    yield out.getvalue().encode()
                    out.seek(0)
                    out.truncate()
        yield out.getvalue().encode()

    headers = {"Content-Disposition": 'attachment; filename="leads.csv"'}
    return StreamingResponse(chunks(), media_type="text/csv; charset=utf-8", headers=headers)
