"""Explanations: a ledger with the counted events behind each line, from the one compiled query.

The dashboard's lead page, ``leadscore explain`` and ``GET /v1/leads/{ref}/explanation`` all read a lead's
explanation through these functions, so they show the same lines and the same per-event numbers
(``compile.contributions`` says how an event's share of a line is computed).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Select

from leadscore.compile import Sources
from leadscore.compile.contributions import (
    EVENTS_PER_LINE,
    Explanation,
    compile_contributions,
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


def explain_current(
    conn: Connection, sources: Sources, lead_id: int, score_name: str | None = None
) -> tuple[ModelVersion, Explanation] | None:
    """The lead's stored score ``score_name`` (the primary when None) explained: by the model version that
    scored it, as of the time it was scored (None while the lead has no such score)."""
    score, _ = read_current(conn, lead_id, score_name)
    if score is None:
        return None
    version = get_version(conn, score["model_version_id"])
    model = model_of(version.yaml, version.label)
    found = explain_lead(conn, model, sources, lead_id, int(score["as_of_ms"]))
    return (version, found) if found is not None else None
