"""Explanations: a ledger with the counted events behind each line, from the one compiled query.

The dashboard's lead page, ``leadscore explain`` and ``GET /v1/leads/{ref}/explanation`` all read a lead's
explanation through these functions, so they show the same lines and the same per-event numbers
(``compile.contributions`` says how an event's share of a line is computed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select

from leadscore.compile import Sources
from leadscore.compile.contributions import (
    EVENTS_PER_LINE,
    PAGE_RULE,
    PAGE_SKIP,
    PAGE_TAKE,
    Explanation,
    compile_contributions,
    event_dict,
    read_explanations,
)
from leadscore.model import ScoringModel
from leadscore.scoring.as_known import read_as_known
from leadscore.scoring.run import (
    BOUND_DIALECTS,
    _session_settings,
    all_leads,
    bound_statement,
    model_of,
    target_params,
)
from leadscore.store.model_versions import ModelVersion, get_version
from leadscore.store.results import read_current


def explain(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    targets: Select[Any],
    events_per_line: int = EVENTS_PER_LINE,
) -> list[Explanation]:
    """The explanation of every (lead_id, as_of) row of ``targets``, read in one statement, listing the
    newest ``events_per_line`` counted events of each rule."""
    query = compile_contributions(model, sources, targets, conn.dialect.name, events_per_line)
    _session_settings(conn)
    return read_explanations(model, (dict(row) for row in conn.execute(query).mappings()))


def _contributions(model: ScoringModel, sources: Sources, targets: Select[Any], dialect: str) -> Select[Any]:
    return compile_contributions(model, sources, targets, engine=dialect)


def _page(model: ScoringModel, sources: Sources, targets: Select[Any], dialect: str) -> Select[Any]:
    return compile_contributions(model, sources, targets, engine=dialect, page=True)


@dataclass(frozen=True)
class EventPage:
    """Which of one rule's counted events to list, newest first: ``offset`` skipped, then ``limit``."""

    rule_id: str
    offset: int = 0
    limit: int = EVENTS_PER_LINE


@dataclass(frozen=True)
class LineEvents:
    """A page of the counted events behind one rule's line (``explanation.events``, newest first, each
    with its shares as the full explanation computes them) and how many the rule counted in all."""

    explanation: Explanation
    page: EventPage
    total: int

    @property
    def next_offset(self) -> int | None:
        """Where the next page starts (None after the last)."""
        end = self.page.offset + len(self.explanation.events)
        return end if end < self.total else None

    def as_dict(self) -> dict[str, Any]:
        """The page as the API answers it; ``line`` None when no event matched the rule (the ledger has
        no line of it)."""
        lines = self.explanation.ledger.as_dict()["lines"]
        line = next((ln for ln in lines if ln["rule_id"] == self.page.rule_id), None)
        return {
            "line": line,
            "events": [event_dict(e) for e in self.explanation.events],
            "offset": self.page.offset,
            "limit": self.page.limit,
            "total": self.total,
            "next_offset": self.next_offset,
        }


def explain_lead(
    conn: Connection, model: ScoringModel, sources: Sources, lead_id: int, as_of: int, *, past: bool = False
) -> Explanation | None:
    """One lead's explanation as of a time (None when there is no such lead), with her attributes as they
    are, as her current score reads them; ``past``: as known at ``as_of`` (``scoring.as_known``), as her
    history row of that time reads them. On SQLite and PostgreSQL the statement is built once per model
    and the lead bound per call (``run.bound_statement``)."""
    dialect = conn.dialect.name
    if dialect not in BOUND_DIALECTS:
        found = explain(conn, model, sources, all_leads(as_of, [lead_id]))
        return found[0] if found else None

    def read(known: Sources) -> Explanation | None:
        query = bound_statement(model, known, dialect, compiler=_contributions)
        _session_settings(conn)
        rows = conn.execute(query, target_params(dialect, [(lead_id, as_of)])).mappings()
        found = read_explanations(model, (dict(row) for row in rows))
        return found[0] if found else None

    return read_as_known(conn, model, sources, lead_id, as_of, read) if past else read(sources)


def explain_line_events(
    conn: Connection,
    model: ScoringModel,
    sources: Sources,
    lead_id: int,
    as_of: int,
    page: EventPage,
    *,
    past: bool = False,
) -> LineEvents | None:
    """A page of the counted events behind the line of the engagement rule ``page.rule_id``, read as
    ``explain_lead`` reads the whole explanation (the same statement, listing one rule's events from
    ``page.offset``): the way past the newest ``EVENTS_PER_LINE`` an explanation lists. None when there is
    no such lead; ``KeyError`` when the model has no such engagement rule."""
    index = next((i for i, r in enumerate(model.engagement) if r.id == page.rule_id), None)
    if index is None:
        raise KeyError(page.rule_id)
    dialect = conn.dialect.name
    # the newest event (rank 1) comes with every page, for the rule's count of events when the page is
    # past the last one; it is dropped below where it is not on the page
    paging = {PAGE_RULE: index, PAGE_SKIP: page.offset, PAGE_TAKE: page.limit}

    def read(known: Sources) -> LineEvents | None:
        if dialect in BOUND_DIALECTS:
            query = bound_statement(model, known, dialect, compiler=_page)
            params = target_params(dialect, [(lead_id, as_of)])
        else:
            query, params = _page(model, known, all_leads(as_of, [lead_id]), dialect), {}
        _session_settings(conn)
        rows = conn.execute(query, {**params, **paging}).mappings()
        found = read_explanations(model, (dict(row) for row in rows))
        if not found:
            return None
        whole = found[0]
        listed = whole.events[1:] if page.offset > 0 else whole.events
        total = len(whole.events) + whole.omitted.get(page.rule_id, 0)
        return LineEvents(Explanation(whole.ledger, listed), page, total)

    return read_as_known(conn, model, sources, lead_id, as_of, read) if past else read(sources)


def explain_current(
    conn: Connection, sources: Sources, lead_id: int, score_name: str | None = None
) -> tuple[ModelVersion, Explanation] | None:
    """The lead's stored score ``score_name`` (the primary when None) explained: by the model version that
    scored it, as of the time it was scored (None while the lead has no such score)."""
    scored = _scored_by(conn, lead_id, score_name)
    if scored is None:
        return None
    version, model, as_of = scored
    found = explain_lead(conn, model, sources, lead_id, as_of)
    return (version, found) if found is not None else None


def current_line_events(
    conn: Connection, sources: Sources, lead_id: int, page: EventPage, score_name: str | None = None
) -> tuple[ModelVersion, LineEvents] | None:
    """A page of the events behind one line of the lead's stored score, as ``explain_current`` explains it
    (None while the lead has no such score; ``KeyError`` when its model has no such engagement rule)."""
    scored = _scored_by(conn, lead_id, score_name)
    if scored is None:
        return None
    version, model, as_of = scored
    found = explain_line_events(conn, model, sources, lead_id, as_of, page)
    return (version, found) if found is not None else None


def _scored_by(
    conn: Connection, lead_id: int, score_name: str | None
) -> tuple[ModelVersion, ScoringModel, int] | None:
    """The model version that scored the lead's stored score, its model and the time it was scored."""
    score, _ = read_current(conn, lead_id, score_name)
    if score is None:
        return None
    version = get_version(conn, score["model_version_id"])
    return version, model_of(version.yaml, version.label), int(score["as_of_ms"])
