"""Scores of a CSV's rows by the compiled query, keyed by the row's id: what a learned model's YAML
gives each lead once the file is imported, to set beside the estimator's own scores."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from leadscore.ingest.csv_import import ImportOptions, import_leads
from leadscore.model import ScoringModel
from leadscore.scoring.run import all_leads, score
from leadscore.store import Store
from leadscore.store.schema import leads


def compiled_scores(
    store: Store,
    model: ScoringModel,
    at_ms: int,
    path: Path | None = None,
    options: ImportOptions | None = None,
) -> dict[str, float]:
    """Every lead's score by ``model`` as of ``at_ms``, by its external id; ``path`` (with ``options``) is
    imported as leads first."""
    if path is not None:
        import_leads(store, path, options or ImportOptions())
    with store.connect() as conn:
        external = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        return {
            str(external[ledger.lead_id]): ledger.score
            for ledger in score(conn, model, store.sources(), all_leads(at_ms))
        }
