"""The rescoring benchmark at a tiny size: the compiled model and the hand-written query agree (no timing)."""

from __future__ import annotations

import os
import random
import re
import shutil
import sys
from pathlib import Path

import orjson
import pytest

from leadscore.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import datagen
import rescore

PG_URL = os.environ.get("LEADSCORE_TEST_POSTGRES_URL")
TINY = datagen.Spec(leads=200, events=5_000, seed=3)


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_compiled_and_hand_written_scores_agree(engine: str) -> None:
    if engine == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    result = rescore.run(engine, TINY, repeat=3, pg_url=PG_URL or rescore.PG_URL)
    assert result.max_diff <= rescore.TOLERANCE
    assert result.loaded.leads == TINY.leads
    assert result.loaded.events == TINY.events
    assert result.compiled_s > 0 and result.handwritten_s > 0 and result.score_s > 0
    assert "ratio compiled / hand-written" in rescore.report(result)


def test_generated_data_is_deterministic_and_heavy_tailed() -> None:
    first = [row for chunk in datagen.event_chunks(TINY) for row in chunk]
    again = [row for chunk in datagen.event_chunks(TINY) for row in chunk]
    assert first == again
    assert len(first) == TINY.events
    per_person: dict[str, int] = {}
    for row in first:
        per_person[row[3]] = per_person.get(row[3], 0) + 1
    counts = sorted(per_person.values())
    assert counts[-1] > 5 * counts[len(counts) // 2], "a few people should be far more active than the median"
    assert any(row[10] > TINY.as_of for row in first), "some events lie after as_of and must not count"


def test_disagreement_is_detected() -> None:
    scores = {1: (10.0, 20.0, 15.0), 2: (0.0, 0.0, 0.0)}
    assert rescore.max_difference(scores, dict(scores)) == 0.0
    assert rescore.max_difference(scores, {**scores, 2: (0.0, 1e-6, 0.0)}) == pytest.approx(1e-6)
    assert rescore.max_difference(scores, {1: scores[1]}) == float("inf")


def test_time_rescore_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import time_rescore

    assert time_rescore.main(["--leads", "200", "--events-per-lead", "10", "--ticks", "2"]) == 0
    out = capsys.readouterr().out
    assert "sqlite: 200 leads, 2,000 events" in out
    assert out.count("\n  tick ") == 2 and "full rescoring 200 leads" in out
    assert "catch-up tick one day later" in out


def test_posthog_bench_bodies_are_what_posthog_python_sends(store: Store) -> None:
    """The ingest bench's PostHog mode (``bench/ingest.py --only p``) sends gzipped ``/batch/`` bodies
    made by ``posthog_bodies``: a live leadscore stores every one of their events, once."""
    import gzip

    import httpx
    import ingest

    from leadscore.api import create_app
    from leadscore.settings import Settings
    from leadscore.store.event_log import stored_message_ids
    from leadscore.store.keys import create_key
    from live_server import serving

    with store.begin() as conn:
        _, key = create_key(conn, "write", "bench", 0)
    bodies = ingest.posthog_bodies(key, 2, "smoke")
    first = orjson.loads(gzip.decompress(bodies[0]))
    assert first["api_key"] == key and len(first["batch"]) == ingest.BATCH
    assert (
        first["batch"][0]["uuid"] == "smoke-0" and first["batch"][0]["properties"]["$lib"] == "posthog-python"
    )
    with serving(create_app(Settings(database_url="unused", run_processor=False), store=store)) as url:
        for body in [*bodies, bodies[0]]:  # the first again: all duplicates
            r = httpx.post(f"{url}/batch/", content=body, headers={"Content-Encoding": "gzip"})
            assert r.status_code == 200, r.text
        assert (r.json()["accepted"], r.json()["duplicates"]) == (100, 100)
    with store.connect() as conn:
        # no processor: acknowledged and waiting in the inbox
        assert stored_message_ids(conn) == {f"smoke-{i}" for i in range(200)}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_posthog_bench_mode_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import ingest

    ingest.main(["--engine", "sqlite", "--only", "p", "--seconds", "1"])
    out = capsys.readouterr().out
    assert "(p) PostHog format beside Segment" in out
    for label in ("Segment /v1/batch:", "PostHog /batch/:", "PostHog /batch/ gzip:"):
        assert re.search(re.escape(label) + r"\s+[\d,]+ events/s = \d+% of bare, \d+% of Segment", out), label


def test_dashboard_bench_asks_for_every_page(capsys: pytest.CaptureFixture[str]) -> None:
    import dashboard

    from web_pages import page_routes

    assert (
        dashboard.main(
            [
                "--leads",
                "300",
                "--events",
                "4000",
                "--requests",
                "2",
                "--page-budget",
                "5",
                "--wait-reports",
                "120",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "300 leads, 4,000 events" in out and "load average before" in out
    every = dashboard.pages(dashboard.Ids(300, [1], 1, (1, 2)), random.Random(1))
    assert {p.route for p in every.values()} >= page_routes()
    table = out[out.index("p95 / empty") :]
    for name in every:
        row = next(line for line in table.splitlines() if line.startswith(name + " "))
        assert row.split()[len(name.split())] in ("1", "2"), row  # n: asked, and within its budget
    assert "pages over 300 ms (p95 or the cold request):" in out
    # --wait-reports: the pages computed in the background were asked until they had their figures
    assert "  evaluation: computed, " in out and "  review proposals: computed, " in out
    assert "being computed" not in table


def test_learn_speed_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The issue-18 speed bench end to end at a tiny size (the backtest and scoring parts, with the example
    model standing in for a learned one: 120 leads have too few outcomes to learn from)."""
    import learn_speed

    assert learn_speed.main(["--leads", "120", "--parts", "backtest,score"]) == 0
    out = capsys.readouterr().out
    assert "120 leads" in out and "stands in for the learned model" in out
    assert "backtest [load " in out and "peak RSS" in out
    assert "score every lead [load " in out and "(120 leads)" in out


def test_score_reports_bench_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import dashboard
    import score_reports

    db = str(tmp_path / "dash.db")
    assert dashboard.main(["--leads", "300", "--events", "4000", "--db", db, "--build-only"]) == 0
    assert score_reports.main(["--db", db, "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    for report in ("being nurtured (count)", "hand-off queue (rows)", "funnel (all time)", "time in stage"):
        assert re.search(rf"^{re.escape(report)} +[\d.]+ +[\d.]+ +[\d.]+×$", out, re.M), out


def test_multi_score_bench_models_scored_together_give_what_each_gives_alone() -> None:
    """bench/multi_models (core, analytics, partners) on the tiny data set: scored in one statement, each
    model's ledgers as it gives them alone (decayed sums included: a shared aggregate is the same sum);
    and the statement computes 13 + 5 + 1 lead-scope aggregates, not 13 + 10 + 11 (analytics' own
    default half-life makes its decayed e-mail and product-page sums its own)."""
    import multi_scores

    from leadscore.compile.composite import namespace, namespaced, shared_aggregates
    from leadscore.scoring.run import all_leads, score, score_models

    models = [model for _, model in multi_scores.score_models("realistic")]
    spaced = [namespaced(model, namespace(i)) for i, model in enumerate(models)]
    assert [len(rules) for rules in shared_aggregates(models, spaced, "lead").computed] == [13, 5, 1]
    with rescore.bench_store("sqlite") as store:
        datagen.load(store, TINY)
        with store.connect() as conn:
            together = score_models(conn, models, store.sources(), all_leads(TINY.as_of))
            for model, got in zip(models, together, strict=True):
                alone = score(conn, model, store.sources(), all_leads(TINY.as_of))
                assert sorted(got, key=lambda lg: lg.lead_id) == sorted(alone, key=lambda lg: lg.lead_id)
                assert len(got) == TINY.leads
                assert any(lg.engagement_points > 0 for lg in got), model.model
