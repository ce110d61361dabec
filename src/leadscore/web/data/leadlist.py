"""The leads list as queries: one filter, applied alike to the page, the fit × engagement matrix and the
CSV export, so what a user exports is exactly what they were looking at."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from sqlalchemy import Connection, Select, String, cast, func, or_, select, true
from sqlalchemy.sql.elements import ColumnElement

from leadscore.api.leads import CONSENT_TRACKING
from leadscore.store.schema import accounts, assignments, lead_stages, leads, scores

PAGE_SIZE = 50
GRADES = ("A", "B", "C", "D")
LEVELS = (1, 2, 3, 4)
BANDS = ("hot", "warm", "cold")
Sort = Literal["score", "fit", "engagement", "name", "company", "updated"]
Order = Literal["desc", "asc"]

company = func.coalesce(accounts.c.name, leads.c.company)
# the lifecycle stage and the current owner (the seller of the lead's latest assignment)
stage = select(lead_stages.c.stage).where(lead_stages.c.lead_id == leads.c.id).scalar_subquery()
owner = (
    select(assignments.c.seller)
    .where(assignments.c.lead_id == leads.c.id)
    .order_by(assignments.c.id.desc())
    .limit(1)
    .scalar_subquery()
)
source = leads.c.attributes["lead_source"].as_string()
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


@dataclass(frozen=True)
class LeadFilter:
    """What the user asked to see; empty fields do not filter."""

    q: str = ""
    band: str = ""
    grade: str = ""
    level: int | None = None
    min_score: float | None = None
    max_score: float | None = None
    source: str = ""
    company: str = ""
    stage: str = ""
    owner: str = ""

    def params(self, **changes: Any) -> dict[str, Any]:
        """The filter as query parameters (empty ones left out), with ``changes`` applied."""
        values = asdict(replace(self, **changes))
        return {k: v for k, v in values.items() if v not in ("", None)}

    @property
    def active(self) -> bool:
        return bool(self.params())


def _like(text: str) -> str:
    return "%" + text.lower().replace("%", "").replace("_", "") + "%"


def _apply(query: Select[Any], f: LeadFilter, *, cells: bool = True) -> Select[Any]:
    if f.band:
        query = query.where(scores.c.band == f.band)
    if cells and f.grade:
        query = query.where(scores.c.grade == f.grade)
    if cells and f.level is not None:
        query = query.where(scores.c.level == f.level)
    if f.min_score is not None:
        query = query.where(scores.c.score >= f.min_score)
    if f.max_score is not None:
        query = query.where(scores.c.score <= f.max_score)
    if f.source:
        query = query.where(func.lower(source) == f.source.lower())
    if f.company:
        query = query.where(func.lower(company).like(_like(f.company)))
    if f.stage:
        query = query.where(
            leads.c.id.in_(select(lead_stages.c.lead_id).where(lead_stages.c.stage == f.stage))
        )
    if f.owner:
        query = query.where(owner == f.owner)
    if f.q:
        like = _like(f.q)
        query = query.where(
            or_(
                func.lower(leads.c.email).like(like),
                func.lower(leads.c.first_name + " " + leads.c.last_name).like(like),
                func.lower(leads.c.last_name).like(like),
                func.lower(company).like(like),
                cast(leads.c.id, String) == f.q.strip(),
            )
        )
    return query


def _needs_scores(f: LeadFilter) -> bool:
    return any((f.band, f.grade, f.level is not None, f.min_score is not None, f.max_score is not None))


def _base(*cols: Any) -> Select[Any]:
    joined = leads.outerjoin(scores, scores.c.lead_id == leads.c.id).outerjoin(
        accounts, accounts.c.id == leads.c.account_id
    )
    return select(*cols).select_from(joined)


@dataclass(frozen=True)
class LeadPage:
    rows: list[dict[str, Any]]
    total: int
    page: int
    pages: int


SCORE_SORTS = {"score": scores.c.score, "fit": scores.c.fit_score, "engagement": scores.c.engagement_score}


def _ordered(query: Select[Any], key: ColumnElement[Any], tie: Any, order: str) -> Select[Any]:
    return query.order_by(key.desc(), tie.desc()) if order == "desc" else query.order_by(key.asc(), tie.asc())


def list_page(conn: Connection, f: LeadFilter, sort: str, order: str, page: int) -> LeadPage:
    total = count(conn, f)
    pages = max(1, -(-total // PAGE_SIZE))
    page = min(max(1, page), pages)
    offset = (page - 1) * PAGE_SIZE
    if sort not in SCORE_SORTS:
        query = _ordered(_apply(_base(*COLUMNS), f), SORTS[sort], leads.c.id, order)
        rows = conn.execute(query.limit(PAGE_SIZE).offset(offset)).mappings()
        return LeadPage([dict(r) for r in rows], total, page, pages)
    # Scored leads come from the score index (an outer join from leads could not use it); leads without
    # a score (no model was active when they arrived) follow them.
    joined = scores.join(leads, leads.c.id == scores.c.lead_id).outerjoin(
        accounts, accounts.c.id == leads.c.account_id
    )
    scored = _ordered(
        _apply(select(*COLUMNS).select_from(joined), f), SCORE_SORTS[sort], scores.c.lead_id, order
    )
    out = [dict(r) for r in conn.execute(scored.limit(PAGE_SIZE).offset(offset)).mappings()]
    if len(out) < PAGE_SIZE and not _needs_scores(f):
        n_scored = _count_scored(conn, f)
        unscored = _apply(_base(*COLUMNS), f).where(scores.c.lead_id.is_(None)).order_by(leads.c.id.desc())
        skip = max(0, offset - n_scored)
        more = conn.execute(unscored.limit(PAGE_SIZE - len(out)).offset(skip)).mappings()
        out.extend(dict(r) for r in more)
    return LeadPage(out, total, page, pages)


def _count_scored(conn: Connection, f: LeadFilter) -> int:
    if f.q or f.company or f.source:
        joined = scores.join(leads, leads.c.id == scores.c.lead_id).outerjoin(
            accounts, accounts.c.id == leads.c.account_id
        )
        return int(conn.execute(_apply(select(func.count()).select_from(joined), f)).scalar_one())
    return int(conn.execute(_apply(select(func.count()).select_from(scores), f)).scalar_one())


def count(conn: Connection, f: LeadFilter) -> int:
    if not f.active:  # the unfiltered count needs no join
        return int(conn.execute(select(func.count()).select_from(leads)).scalar_one())
    if not (f.q or f.company or f.source) and _needs_scores(f):
        query = _apply(select(func.count()).select_from(scores), f)
        return int(conn.execute(query).scalar_one())
    return int(conn.execute(_apply(_base(func.count()), f)).scalar_one())


def matrix(conn: Connection, f: LeadFilter) -> dict[tuple[str, int], int]:
    """Leads per (fit grade, engagement level) under the filter, ignoring its own grade/level choice."""
    if f.q or f.company or f.source:
        query = _apply(_base(scores.c.grade, scores.c.level, func.count()), f, cells=False)
    else:
        query = _apply(
            select(scores.c.grade, scores.c.level, func.count()).select_from(scores), f, cells=False
        )
    query = query.where(scores.c.grade.is_not(None)).group_by(scores.c.grade, scores.c.level)
    return {(str(g), int(lv)): int(n) for g, lv, n in conn.execute(query)}


def export_rows(conn: Connection, f: LeadFilter, sort: str, order: str) -> Iterator[dict[str, Any]]:
    """The filtered leads for CSV export, less anyone who withdrew tracking consent (as the API's export)."""
    query = _ordered(_apply(_base(*COLUMNS), f), SORTS[sort], leads.c.id, order)
    query = query.where(func.coalesce(CONSENT_TRACKING, true()))
    result = conn.execution_options(stream_results=True, yield_per=1000).execute(query)
    for row in result.mappings():
        yield dict(row)


def sources(conn: Connection, limit: int = 50) -> list[str]:
    """The lead sources in use, most common first (the filter's choices)."""
    query = (
        select(source, func.count())
        .where(source.is_not(None))
        .group_by(source)
        .order_by(func.count().desc())
        .limit(limit)
    )
    return [str(value) for value, _ in conn.execute(query) if value]


def stages(conn: Connection) -> list[str]:
    """Stages leads are in now, for the filter's choices."""
    return list(conn.execute(select(lead_stages.c.stage).distinct().order_by(lead_stages.c.stage)).scalars())


def owners(conn: Connection) -> list[str]:
    """Sellers that own leads, for the filter's choices."""
    return list(
        conn.execute(select(assignments.c.seller).distinct().order_by(assignments.c.seller)).scalars()
    )
