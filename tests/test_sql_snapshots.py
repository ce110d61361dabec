"""The SQL each engine runs for a few models, snapshotted (tests/snapshots/<model>.<dialect>.sql).

A compiler change shows up as a reviewable diff of these files. After a deliberate change, rewrite them
with ``LEADSCORE_UPDATE_SNAPSHOTS=1 pytest tests/test_sql_snapshots.py`` and review ``git diff
tests/snapshots``. The SQL is ``compile.render_sql`` of ``compile_model`` over the store's tables, every
lead as of one fixed time, constants inline. The per-event form that explanations read
(``compile_contributions``) is snapshotted too, as ``<model>.explain.<dialect>.sql``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from leadscore.compile import compile_model, render_sql
from leadscore.compile.contributions import compile_contributions
from leadscore.compile.engines import ENGINES
from leadscore.model import ScoringModel, load_model
from leadscore.scoring.run import all_leads
from leadscore.store import Store

ROOT = Path(__file__).resolve().parent.parent
SNAPSHOTS = ROOT / "tests" / "snapshots"
AS_OF = 1_750_000_000_000
UPDATE = os.environ.get("LEADSCORE_UPDATE_SNAPSHOTS") == "1"

MODELS: dict[str, ScoringModel] = {
    "bench": load_model(ROOT / "bench" / "model.yaml"),
    "json-fields": ScoringModel.model_validate(
        {
            "model": "json-fields",
            "fit": [
                {
                    "id": "size",
                    "name": "Size",
                    "when": {"attribute": "account.employees", "gte": 50},
                    "points": 10,
                },
                {
                    "id": "customer",
                    "name": "Customer",
                    "when": {"attribute": "customer", "equals": True},
                    "points": 5,
                },
                {
                    "id": "tier",
                    "name": "Tier",
                    "when": {"attribute": "plan.tier", "in": ["gold", 2]},
                    "points": 3,
                },
                {
                    "id": "quote",
                    "name": "Quote",
                    "when": {"attribute": "motto", "contains": "it's 100%\\_"},
                    "points": 1,
                },
            ],
            "engagement": [
                {
                    "id": "long_watch",
                    "name": "Watched",
                    "event": {"type": "track", "name": "Video Watched"},
                    "where": {"property": "percent-done", "between": [75, 100]},
                    "points": 2,
                    "cap": 6,
                }
            ],
            "privacy": {"tracking_consent": "required"},
        }
    ),
    # distinct counts, account scope, recency, ratio and exclusions (docs/model-language.md, Engagement rules)
    "count-rules": ScoringModel.model_validate(
        {
            "model": "count-rules",
            "engagement": [
                {
                    "id": "pricing_days",
                    "name": "Pricing on 2+ days",
                    "kind": "threshold",
                    "event": {"type": "page"},
                    "where": {"property": "path", "prefix": "/pricing"},
                    "count": {"distinct": "day"},
                    "at_least": 2,
                    "within": "14d",
                    "points": 20,
                },
                {
                    "id": "committee",
                    "name": "Buying committee",
                    "kind": "threshold",
                    "scope": "account",
                    "event": {"type": "page"},
                    "count": {"distinct": "person"},
                    "at_least": 3,
                    "within": "21d",
                    "points": 40,
                },
                {
                    "id": "features",
                    "name": "Account usage growing",
                    "kind": "ratio",
                    "scope": "account",
                    "event": {"type": "track", "name": "Feature Used"},
                    "count": {"distinct": {"property": "feature"}},
                    "within": "7d",
                    "at_least": 1.5,
                    "points": 10,
                },
                {
                    "id": "last_login",
                    "name": "Logged in lately",
                    "kind": "recency",
                    "event": {"type": "track", "name": "Logged In"},
                    "steps": [{"within": "2d", "points": 10}, {"within": "7d", "points": 5}],
                },
                {
                    "id": "opens",
                    "name": "Opened (people only)",
                    "event": {"type": "track", "name": "Email Opened"},
                    "exclude": {"machine": {"after": "Email Delivered", "same": "email_id", "within": "10s"}},
                    "points": 2,
                },
                {
                    "id": "pages",
                    "name": "Pages (no bursts)",
                    "event": {"type": "page"},
                    "window": "30d",
                    "exclude": {"burst": {"more_than": 10, "within": "60s"}},
                    "points": 1,
                },
            ],
        }
    ),
}
EXPLAINED = ("json-fields", "count-rules")


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_generated_sql_matches_the_snapshot(name: str, engine: str) -> None:
    sources = Store.from_url("sqlite://", migrate_schema=False).sources()
    sql = render_sql(compile_model(MODELS[name], sources, all_leads(AS_OF), engine), engine) + "\n"
    path = SNAPSHOTS / f"{name}.{engine}.sql"
    if UPDATE:
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run LEADSCORE_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert sql == path.read_text(encoding="utf-8"), (
        f"{path.name} changed: review, then update (module docstring)"
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("name", EXPLAINED)
def test_per_event_sql_matches_the_snapshot(name: str, engine: str) -> None:
    sources = Store.from_url("sqlite://", migrate_schema=False).sources()
    query = compile_contributions(MODELS[name], sources, all_leads(AS_OF), engine)
    sql = render_sql(query, engine) + "\n"
    path = SNAPSHOTS / f"{name}.explain.{engine}.sql"
    if UPDATE:
        path.write_text(sql, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run LEADSCORE_UPDATE_SNAPSHOTS=1 pytest {__file__}"
    assert sql == path.read_text(encoding="utf-8"), (
        f"{path.name} changed: review, then update (module docstring)"
    )
