"""``run_demo``: a fresh database, the B2B SaaS model published, demo data streamed in, the hottest leads.

The model is published before the data arrives, so every batch of events is scored as it lands and
``leadscore history`` shows each demo lead's score moving over the months, as it would in production.
The lifecycle runner runs after each (weekly) batch as of that batch's last event, so stage moves are
stamped at the times they happened: the funnel spreads over the months and time in stage is real.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from leadscore.compile import LedgerLine
from leadscore.compile.sources import lead_company
from leadscore.demo.generator import GenerateReport, demo_model, generate
from leadscore.lifecycle.runner import run_round
from leadscore.scoring import pipeline
from leadscore.scoring.run import score_leads
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.engine import normalise_url
from leadscore.store.lead_names import full_name
from leadscore.store.schema import accounts, leads, metadata, scores
from leadscore.store.score_names import named, scores_of

DAY_MS = 86_400_000


@dataclass(frozen=True)
class HotLead:
    """One of the hottest leads, with every ledger line, largest contribution first."""

    lead_id: int
    email: str | None
    name: str
    company: str | None
    job_title: str | None
    score: float
    fit_score: float
    engagement_score: float
    grade: str
    level: int
    band: str
    lines: tuple[LedgerLine, ...]


@dataclass(frozen=True)
class DemoResult:
    """What ``leadscore demo`` prints: where the data went, how much, and who is hottest and why."""

    db_url: str
    model: str  # name@version
    as_of_ms: int
    generated: GenerateReport
    bands: dict[str, int]  # hot / warm / cold → number of leads
    hottest: tuple[HotLead, ...]
    seconds: float


def start_of_day_ms(now_s: float | None = None) -> int:
    """Midnight UTC of today: the demo's history ends there, so a rerun the same day is identical."""
    seconds = time.time() if now_s is None else now_s
    return int(seconds // 86_400 * 86_400 * 1000)


def reset_database(db_url: str) -> Store:
    """An empty, migrated store at ``db_url``; an existing SQLite file is deleted, PostgreSQL tables emptied."""
    url = make_url(normalise_url(db_url))
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(url.database + suffix).unlink(missing_ok=True)
        return Store.from_url(db_url)
    store = Store.from_url(db_url)
    names = ", ".join(f'"{t.name}"' for t in reversed(metadata.sorted_tables))
    with store.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    return store


def run_demo(
    db_url: str, leads: int = 500, seed: int = 42, *, now_ms: int | None = None, top: int = 10
) -> DemoResult:
    """Build the demo database at ``db_url`` (overwriting it) and return its ``top`` hottest leads."""
    started = time.perf_counter()
    as_of = start_of_day_ms() if now_ms is None else now_ms // 1000 * 1000
    store = reset_database(db_url)
    try:
        model = demo_model()
        version, _ = pipeline.publish(store, model, note="leadscore demo", as_of=as_of)
        settings = Settings()

        def lifecycle_at(at_ms: int) -> None:
            # nothing is delivered: the demo's webhooks and mail wait in the outbox for a real server
            run_round(store, settings, now_ms=at_ms, deliver=False)

        report = generate(store, leads=leads, seed=seed, now_ms=as_of, after_batch=lifecycle_at)
        # leads untouched by the last batches were scored as of their last event: bring all to as_of
        pipeline.rescore_all(store, as_of=as_of)
        lifecycle_at(as_of)
        bands, hottest = _summary(store, top, as_of)
        return DemoResult(
            store.url, version.label, as_of, report, bands, hottest, time.perf_counter() - started
        )
    finally:
        store.dispose()


def _summary(store: Store, top: int, as_of: int) -> tuple[dict[str, int], tuple[HotLead, ...]]:
    model = demo_model()
    with store.connect() as conn:
        counts = dict(
            conn.execute(
                select(scores.c.band, text("count(*)"))
                .where(named(scores.c.score_name, None))
                .group_by(scores.c.band)
            ).all()
        )
        bands = {band: int(counts.get(band, 0)) for band in ("hot", "warm", "cold")}
        top_rows = conn.execute(
            select(
                leads.c.id,
                leads.c.email,
                leads.c.first_name,
                leads.c.last_name,
                lead_company(leads, accounts).label("company"),
                leads.c.attributes,
            )
            .select_from(
                leads.join(scores, scores_of(leads.c.id)).outerjoin(
                    accounts, accounts.c.id == leads.c.account_id
                )
            )
            .order_by(scores.c.score.desc(), leads.c.id)
            .limit(top)
        ).all()
        ids = [row.id for row in top_rows]
        ledgers = (
            {lg.lead_id: lg for lg in score_leads(conn, model, store.sources(), ids, as_of)} if ids else {}
        )
    hottest = []
    for row in top_rows:
        lg = ledgers[row.id]
        name = full_name(row.first_name, row.last_name)
        hottest.append(
            HotLead(
                lead_id=row.id,
                email=row.email,
                name=name,
                company=row.company,
                job_title=(row.attributes or {}).get("job_title"),
                score=lg.score,
                fit_score=lg.fit_score,
                engagement_score=lg.engagement_score,
                grade=lg.grade,
                level=lg.level,
                band=lg.band,
                lines=tuple(sorted(lg.lines, key=lambda line: (-line.score_points, line.rule_id))),
            )
        )
    return bands, tuple(hottest)
