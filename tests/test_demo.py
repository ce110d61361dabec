"""The demo generator: deterministic by seed, realistic in shape, with outcomes that follow fit and behaviour."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from leadscore.demo import demo_model, generate, run_demo
from leadscore.demo.generator import DEFAULT_NOW_MS
from leadscore.lifecycle.reasons import top_lines
from leadscore.lifecycle.reports import time_in_stage
from leadscore.scoring import pipeline
from leadscore.store import Store
from leadscore.store.schema import accounts, events, identities, leads, outcomes, score_history, stage_history

DAY = 86_400_000
CONTENT = {
    accounts: ("domain", "name", "attributes", "created_ms"),
    leads: (
        "external_id",
        "email",
        "email_domain",
        "first_name",
        "last_name",
        "company",
        "attributes",
        "created_ms",
    ),
    identities: ("key", "created_ms"),
    events: (
        "message_id",
        "type",
        "name",
        "person_key",
        "user_id",
        "anonymous_id",
        "path",
        "url",
        "properties",
        "ts",
    ),
    outcomes: ("kind", "at_ms", "amount", "reason", "recorded_ms"),
}


def _content(store: Store) -> str:
    """Every generated row, without surrogate ids, as canonical JSON (same data → same text)."""
    out: dict[str, list[Any]] = {}
    with store.connect() as conn:
        email_of = dict(conn.execute(select(leads.c.id, leads.c.email)).all())
        for table, cols in CONTENT.items():
            rows = [dict(r) for r in conn.execute(select(table)).mappings()]
            picked = [
                {**{c: r[c] for c in cols}, **({"lead": email_of[r["lead_id"]]} if "lead_id" in r else {})}
                for r in rows
            ]
            out[table.name] = sorted(picked, key=lambda r: json.dumps(r, sort_keys=True))
    return json.dumps(out, sort_keys=True)


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """200 demo leads scored with the demo model: enough for outcome rates to mean something."""
    store = Store.from_url(str(tmp_path_factory.mktemp("demo") / "demo.db"))
    generate(store, leads=200, seed=3)
    pipeline.publish(store, demo_model(), as_of=DEFAULT_NOW_MS)
    yield store
    store.dispose()


def test_same_seed_same_data(tmp_path: Path) -> None:
    first, second, other = (Store.from_url(str(tmp_path / f"{name}.db")) for name in ("a", "b", "c"))
    try:
        report = generate(first, leads=60, seed=7)
        assert generate(second, leads=60, seed=7) == report
        generate(other, leads=60, seed=8)
        assert _content(first) == _content(second)
        assert _content(first) != _content(other)
        assert report.leads == 60 and report.events > 60 * 5
    finally:
        for store in (first, second, other):
            store.dispose()


def test_same_data_on_every_engine(store: Store, tmp_path: Path) -> None:
    reference = Store.from_url(str(tmp_path / "reference.db"))
    try:
        generate(reference, leads=40, seed=11)
        generate(store, leads=40, seed=11)
        assert _content(store) == _content(reference)
    finally:
        reference.dispose()


def test_run_demo(store: Store, tmp_path: Path) -> None:
    url = store.url if store.dialect == "postgresql" else str(tmp_path / "demo.db")
    run_demo(url, leads=5, seed=1, now_ms=DEFAULT_NOW_MS)
    result = run_demo(url, leads=40, seed=5, now_ms=DEFAULT_NOW_MS, top=5)  # overwrites the first
    assert result.model == "b2b_saas@1"
    assert result.generated.leads == 40
    assert sum(result.bands.values()) == 40
    assert len(result.hottest) == 5
    scores = [lead.score for lead in result.hottest]
    assert scores == sorted(scores, reverse=True)
    for lead in result.hottest:
        assert sum(line.score_points for line in lead.lines) == pytest.approx(lead.score)
        assert top_lines(lead.lines)  # the hottest leads have reasons to show
    check = Store.from_url(url)
    try:
        with check.connect() as conn:
            assert conn.execute(select(func.count()).select_from(leads)).scalar() == 40
            # published before the data arrived: each lead's score moved as its events landed
            assert conn.execute(select(func.count()).select_from(score_history)).scalar() > 2 * 40
    finally:
        check.dispose()


def test_run_demo_stamps_stage_moves_over_its_history(store: Store, tmp_path: Path) -> None:
    """The lifecycle ran after each weekly batch as of its time: moves spread over the months (not one
    spike on the last day) and a lead that left a stage stayed in it for a while."""
    url = store.url if store.dialect == "postgresql" else str(tmp_path / "demo.db")
    result = run_demo(url, leads=40, seed=5, now_ms=DEFAULT_NOW_MS)
    check = Store.from_url(url)
    try:
        with check.connect() as conn:
            stamps = [int(t) for (t,) in conn.execute(select(stage_history.c.at_ms))]
            lifecycle = demo_model().lifecycle
            assert lifecycle is not None
            times = time_in_stage(conn, lifecycle, result.as_of_ms)
    finally:
        check.dispose()
    assert stamps and result.generated.first_ms <= min(stamps) and max(stamps) <= result.as_of_ms
    assert max(stamps) - min(stamps) > 12 * 7 * DAY  # more than 12 of the 26 weeks
    # moves on at least 10 distinct weeks of the history
    assert len({(t - result.generated.first_ms) // (7 * DAY) for t in stamps}) >= 10
    completed = [t for t in times if t["completed"] and t["mean_hours"] is not None]
    assert any(t["mean_hours"] > 24 for t in completed)


def test_population_shape(demo_store: Store) -> None:
    model = demo_model()
    with demo_store.connect() as conn:
        domains = [d for (d,) in conn.execute(select(leads.c.email_domain))]
        per_lead = [
            n
            for (n,) in conn.execute(
                select(func.count())
                .select_from(events.join(identities, identities.c.key == events.c.person_key))
                .group_by(identities.c.lead_id)
            )
        ]
        stitched = conn.execute(
            select(func.count()).select_from(identities).where(identities.c.key.like("a:%"))
        ).scalar()
        names = {n for (n,) in conn.execute(select(events.c.name).where(events.c.type == "track").distinct())}
        paths = [p for (p,) in conn.execute(select(events.c.path).where(events.c.type == "page"))]
        unlinked = conn.execute(
            select(func.count())
            .select_from(events.outerjoin(identities, identities.c.key == events.c.person_key))
            .where(identities.c.lead_id.is_(None))
        ).scalar()
    assert any(d in model.lists["free_mail"].values for d in domains)
    assert any(d in model.lists["competitors"].values for d in domains)
    assert any(d in model.lists["target_accounts"].values for d in domains)
    assert any(d.endswith((".edu", ".ac.uk")) for d in domains)
    # heavy-tailed activity: the busiest lead does far more than the typical one
    assert max(per_lead) >= 8 * statistics.median(per_lead)
    assert stitched and stitched > 100  # anonymous browsing joined to leads by identify
    assert unlinked and unlinked > 0  # visitors who never identified
    assert {
        "Ebook Downloaded", "Email Opened", "Email Link Clicked", "Email Bounced", "Unsubscribed",
        "Webinar Registered", "Webinar Attended", "Demo Requested",
    } <= names  # fmt: skip
    sections = {p.split("/")[1] for p in paths}
    assert {"", "blog", "product", "pricing", "customers", "docs", "careers"} <= sections


def test_outcomes_are_consistent(demo_store: Store) -> None:
    with demo_store.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(outcomes)).mappings()]
    kinds = {r["kind"] for r in rows}
    assert kinds == {"opportunity", "won", "lost"}
    opened = {r["lead_id"]: r["at_ms"] for r in rows if r["kind"] == "opportunity"}
    for r in rows:
        assert r["at_ms"] <= DEFAULT_NOW_MS and r["amount"] > 0
        if r["kind"] in ("won", "lost"):
            assert r["at_ms"] > opened[r["lead_id"]]


def _rate(ids: list[int], hits: set[int]) -> float:
    return sum(i in hits for i in ids) / len(ids)


def test_leads_scored_hot_or_warm_win_more_often(demo_store: Store) -> None:
    """Scored as of 60 days ago, the leads sales would call then (hot or warm) win deals after that far more
    often than the cold ones: outcomes in the demo follow fit and behaviour, so learning has signal."""
    as_of = DEFAULT_NOW_MS - 60 * DAY
    ledgers = pipeline.rescore_all(demo_store, as_of=as_of, save=False)
    with demo_store.connect() as conn:
        won = {
            i
            for (i,) in conn.execute(
                select(outcomes.c.lead_id).where(outcomes.c.kind == "won", outcomes.c.at_ms > as_of)
            )
        }
        active = {
            i
            for (i,) in conn.execute(
                select(identities.c.lead_id)
                .join(events, events.c.person_key == identities.c.key)
                .where(events.c.ts <= as_of)
            )
        }
    called = [lg.lead_id for lg in ledgers if lg.lead_id in active and lg.band != "cold"]
    cold = [lg.lead_id for lg in ledgers if lg.lead_id in active and lg.band == "cold"]
    assert len(called) >= 10 and len(cold) >= 30
    assert _rate(called, won) >= 3 * _rate(cold, won)
    assert _rate(called, won) >= _rate(cold, won) + 0.04


def test_good_fit_wins_more_often(demo_store: Store) -> None:
    with demo_store.connect() as conn:
        won = {i for (i,) in conn.execute(select(outcomes.c.lead_id).where(outcomes.c.kind == "won"))}
    ledgers = pipeline.rescore_all(demo_store, as_of=DEFAULT_NOW_MS, save=False)
    good = [lg.lead_id for lg in ledgers if lg.grade in ("A", "B")]
    poor = [lg.lead_id for lg in ledgers if lg.grade in ("C", "D")]
    assert _rate(good, won) >= _rate(poor, won) + 0.02
