"""The leads list as queries over the one lead filter (``lifecycle.lead_filter``), applied alike to the page,
its count, the fit × engagement matrix and the CSV export, so what a user exports is exactly what they
were looking at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Select, and_, case, func, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from leadscore.compile.sources import lead_company
from leadscore.lifecycle.lead_filter import LeadFilter, current_owner, lead_source, withdrawn_ids
from leadscore.store.schema import accounts, assignments, lead_stages, leads, scores
from leadscore.store.score_names import named
from leadscore.web.data.paging import paging

PAGE_SIZE = 50
Sort = Literal["score", "fit", "engagement", "name", "company", "updated"]
Order = Literal["desc", "asc"]

company = lead_company(leads, accounts)
# the lifecycle stage and the current owner (``lead_filter.current_owner``)
stage = select(lead_stages.c.stage).where(lead_stages.c.lead_id == leads.c.id).scalar_subquery()
owner = current_owner(leads.c.id)
source = lead_source(leads.c.attributes)
SORTS: dict[str, ColumnElement[Any]] = {
    "score": func.coalesce(scores.c.score, -1.0),
    "fit": func.coalesce(scores.c.fit_score, -1.0),
    "engagement": func.coalesce(scores.c.engagement_score, -1.0),
    "name": func.lower(func.coalesce(leads.c.last_name, "") + " " + func.coalesce(leads.c.first_name, "")),
    "company": func.lower(func.coalesce(company, "")),
    "updated": leads.c.updated_ms,
}
COLUMNS = (
    leads.c.id.label("lead_id"),
    leads.c.email,
    leads.c.first_name,
    leads.c.last_name,
    company.label("company"),
    source.label("source"),
    stage.label("stage"),
    owner.label("owner"),
    scores.c.score,
    scores.c.fit_score,
    scores.c.engagement_score,
    scores.c.grade,
    scores.c.level,
    scores.c.band,
    leads.c.updated_ms,
)
EXPORT_COLUMNS = tuple(str(c.name) for c in COLUMNS)


def _base(f: LeadFilter, *cols: Any) -> Select[Any]:
    """Leads with their score of the filter's name (the primary score unless it names one)."""
    joined = leads.outerjoin(
        scores, and_(scores.c.lead_id == leads.c.id, named(scores.c.score_name, f.score_name))
    ).outerjoin(accounts, accounts.c.id == leads.c.account_id)
    return select(*cols).select_from(joined)


@dataclass(frozen=True)
class LeadPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int
    withdrawn: int = 0  # matched, but left out: withdrew consent (``LeadFilter.withdrawn``)


SCORE_SORTS = {"score": scores.c.score, "fit": scores.c.fit_score, "engagement": scores.c.engagement_score}


def _ordered(query: Select[Any], key: ColumnElement[Any], tie: Any, order: str) -> Select[Any]:
    return query.order_by(key.desc(), tie.desc()) if order == "desc" else query.order_by(key.asc(), tie.asc())


def list_page(conn: Connection, f: LeadFilter, sort: str, order: str, page: int) -> LeadPage:
    withdrawn = f.withdrawn(conn)
    total = count(conn, f, withdrawn)
    at = paging(total, page, PAGE_SIZE)
    page, pages, offset = at.page, at.pages, at.offset
    if sort not in SCORE_SORTS:
        query = _ordered(_base(f, *COLUMNS).where(f.matches(leads.c.id)), SORTS[sort], leads.c.id, order)
        rows = conn.execute(query.limit(PAGE_SIZE).offset(offset)).mappings()
        return LeadPage([dict(r) for r in rows], total, page, pages, withdrawn)
    # Scored leads come from the score index (an outer join from leads could not use it). A lead without a
    # score (no model was active when it arrived) sorts as -1 (``SORTS``, as the export and the API): after
    # every scored lead going down, before them going up, by lead id in the list's direction.
    joined = scores.join(leads, leads.c.id == scores.c.lead_id).outerjoin(
        accounts, accounts.c.id == leads.c.account_id
    )
    scored_where = (named(scores.c.score_name, f.score_name), f.matches_score(scores))
    scored = _ordered(
        select(*COLUMNS).select_from(joined).where(*scored_where), SCORE_SORTS[sort], scores.c.lead_id, order
    )
    if f.needs_score:
        parts = [(scored, total)]
    else:
        # the scored ones, counted as ``count``: every match less the few who withdrew
        every_scored = (
            select(func.count())
            .select_from(scores)
            .where(named(scores.c.score_name, f.score_name), f.matches_score(scores, listed=False))
        )
        n_scored = _count(conn, every_scored) - _count(
            conn, every_scored.where(scores.c.lead_id.in_(withdrawn_ids()))
        )
        unscored_query = _base(f, *COLUMNS).where(f.matches(leads.c.id), scores.c.lead_id.is_(None))
        unscored = _ordered(unscored_query, leads.c.id, leads.c.id, order)
        n_unscored = total - n_scored
        parts = [(scored, n_scored), (unscored, n_unscored)]
        if order == "asc":
            parts.reverse()
    out: list[dict[str, Any]] = []
    skip = offset
    for query, size in parts:
        if len(out) < PAGE_SIZE and skip < size:
            found = conn.execute(query.limit(PAGE_SIZE - len(out)).offset(skip)).mappings()
            out.extend(dict(r) for r in found)
        skip = max(0, skip - size)
    return LeadPage(out, total, page, pages, withdrawn)


def _count(conn: Connection, query: Select[Any]) -> int:
    return int(conn.execute(query).scalar_one())


def count(conn: Connection, f: LeadFilter, withdrawn: int | None = None) -> int:
    """How many leads the filter lists: those it matches less the few who withdrew consent (counted apart,
    ``withdrawn`` when known: a count over every lead skips no index for them)."""
    left_out = f.withdrawn(conn) if withdrawn is None else withdrawn
    return _count(conn, select(func.count()).select_from(f.lead_ids("all").subquery())) - left_out


def matrix(conn: Connection, f: LeadFilter) -> dict[tuple[str, int], int]:
    """Scored leads per (fit grade, engagement level) under the filter, less its own grade/level choice."""
    rest = f.without_cell()
    query = (
        select(scores.c.grade, scores.c.level, func.count())
        .where(named(scores.c.score_name, f.score_name), rest.matches(scores.c.lead_id, listed=False))
        .group_by(scores.c.grade, scores.c.level)
    )
    cells = {(str(g), int(lv)): int(n) for g, lv, n in conn.execute(query)}
    # less the few who withdrew consent, counted from them (the cells' index holds no lead's consent)
    for g, lv, n in conn.execute(query.where(scores.c.lead_id.in_(withdrawn_ids()))):
        cells[(str(g), int(lv))] -= int(n)
    return {cell: n for cell, n in cells.items() if n}


SCORE_BINS = 10  # the distribution's bins: 0–10, 10–20, … 90–100


def distribution(conn: Connection, f: LeadFilter) -> list[int]:
    """Scored leads under the filter per score bin of width 100 / ``SCORE_BINS`` (a score of exactly 100
    falls in the last bin)."""
    return score_bins(
        conn, scores.c.score, named(scores.c.score_name, f.score_name), f.matches(scores.c.lead_id)
    )


def score_bins(conn: Connection, score: Any, *where: Any) -> list[int]:
    """Rows per score bin of ``score`` (a column of the stored scores, or of a draft's compiled score rows:
    the rule builder's before and after)."""
    width = 100 / SCORE_BINS
    binned = case(
        *[(score >= width * i, i) for i in range(SCORE_BINS - 1, 0, -1)],
        else_=0,
    )
    # grouped by the output column's name: the CASE's bound parameters would make PostgreSQL see the
    # GROUP BY expression as a different one
    query = (
        select(binned.label("score_bin"), func.count()).where(*where).group_by(literal_column("score_bin"))
    )
    counts: dict[int, int] = {int(b): int(n) for b, n in conn.execute(query).all()}
    return [int(counts.get(i, 0)) for i in range(SCORE_BINS)]


def export_rows(conn: Connection, f: LeadFilter, sort: str, order: str) -> Iterator[dict[str, Any]]:
    """The filtered leads for CSV export: the list's (less anyone who withdrew tracking consent)."""
    query = _base(f, *COLUMNS).where(f.matches(leads.c.id))
    query = _ordered(query, SORTS[sort], leads.c.id, order)
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
    for row in result.mappings():
        yield dict(row)


def sources(conn: Connection, limit: int = 50) -> list[str]:
    """The lead sources in use, most common first (the filter's choices)."""
    found = select(source.label("source")).subquery()
    query = (
        select(found.c.source, func.count())
        .where(found.c.source.is_not(None))
        .group_by(found.c.source)
        .order_by(func.count().desc(), found.c.source)
        .limit(limit)
    )
    return [str(value) for value, _ in conn.execute(query) if value]


def stages(conn: Connection) -> list[str]:
    """Stages leads are in now, for the filter's choices: each the next one up the stage index
    (``ix_lead_stages_stage``), a probe per stage instead of a read of every lead's row."""
    found = select(func.min(lead_stages.c.stage).label("stage")).cte("found", recursive=True)
    after = select(func.min(lead_stages.c.stage)).where(lead_stages.c.stage > found.c.stage).scalar_subquery()
    found = found.union_all(select(after).where(found.c.stage.is_not(None)))
    return list(conn.execute(select(found.c.stage).where(found.c.stage.is_not(None))).scalars())


def owners(conn: Connection) -> list[str]:
    """Sellers that own leads, for the filter's choices."""
    return list(
        conn.execute(select(assignments.c.seller).distinct().order_by(assignments.c.seller)).scalars()
    )
