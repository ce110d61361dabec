"""CSV files for the learning tests, and their rows' scores by the compiled query, keyed by the row's
id: what a learned model's YAML gives each lead once the file is imported, to set beside the
estimator's own scores."""

from __future__ import annotations

import csv
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


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    """``path`` written as UTF-8 CSV with ``header`` and ``rows``."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path
