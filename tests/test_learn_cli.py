"""learn → read the YAML → backtest against the active model → publish, on a small demo database."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.demo import run_demo
from leadscore.errors import InputError
from leadscore.learn.labels import DAY_MS
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.store_data import cutoffs, known_at_cutoffs, store_data
from leadscore.learn.to_model import to_model
from leadscore.model import load_model
from leadscore.scoring.as_known import score_as_known
from leadscore.store import Store

NOW = 1_751_328_000_000  # 2025-07-01, the demo's history ends here
runner = CliRunner()


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = str(tmp_path_factory.mktemp("learn") / "demo.db")
    run_demo(db, leads=200, seed=11, now_ms=NOW)
    yield db


def test_learned_engagement_rules_score_like_the_scorecard(demo_db: str) -> None:
    store = Store.from_url(demo_db)
    try:
        with store.connect() as conn:
            at = cutoffs(NOW - 150 * DAY_MS, NOW, 30 * DAY_MS)
            data, labels = store_data(
                conn, store.sources(), outcome="opportunity", horizon_ms=30 * DAY_MS, at=at
            )
            sc = Scorecard(data.features, min_class_count=5, max_bins=4, min_bin_share=0.05).fit(
                data.X, data.y
            )
            model = to_model(sc, "learned")
            assert any(r.kind == "threshold" for r in model.engagement) and any(
                r.kind == "once" for r in model.engagement
            )
            pairs = [(int(a), int(t)) for a, t in zip(data.lead_ids, data.as_of, strict=True)]  # type: ignore[arg-type]
            # each cutoff scored with the lead as known then (identities and attributes), as the features
            # were read and as ``evaluate`` scores it
            compiled = {
                point: lg.score
                for known, group in known_at_cutoffs(conn, store.sources(), pairs)
                for point, lg in score_as_known(conn, model, known, group).items()
            }
    finally:
        store.dispose()
    assert labels.censored > 0 and len(data) == len(labels.y)
    expected = sc.score_100(data.X)
    assert max(abs(compiled[p] - e) for p, e in zip(pairs, expected, strict=True)) < 1e-9


def test_learn_backtest_publish(demo_db: str, tmp_path: Path) -> None:
    out = tmp_path / "learned.yaml"
    html = tmp_path / "learn.html"
    result = runner.invoke(app, ["learn", "--db", demo_db, "--output", str(out), "--since", "2025-02-01",
                                 "--min-outcomes", "5", "--max-bins", "4", "--c", "0.1", "--html", str(html)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "points model" in result.output and "lightgbm challenger" in result.output
    model = load_model(out)
    assert model.model == "learned" and (model.fit or model.engagement)
    assert html.read_text().startswith("<!doctype html>") and "<svg" not in html.read_text()[:10]

    refused = runner.invoke(app, ["model", "publish", str(out), "--db", demo_db, "--require-backtest"])
    assert refused.exit_code == 1 and "no backtest stored" in refused.output

    report = tmp_path / "backtest.html"
    bt = runner.invoke(app, ["backtest", str(out), "--db", demo_db, "--since", "2025-05-01", "--save", "--json",
                             "--mqls-per-week", "5", "--html", str(report)])  # fmt: skip
    assert bt.exit_code == 0, bt.output
    summary = json.loads(bt.output[: bt.output.rindex("}") + 1])
    assert summary["candidate"]["model"] == str(out) and summary["baseline"]["model"] == "b2b_saas@1"
    assert (
        len(summary["candidate"]["weekly"]) == 9
        and sum(summary["candidate"]["weekly"]) == summary["candidate"]["mqls"]
    )
    assert "<svg" in report.read_text() and "http" not in report.read_text().replace(
        "http://www.w3.org/2000/svg", ""
    )

    published = runner.invoke(app, ["model", "publish", str(out), "--db", demo_db, "--require-backtest"])
    assert published.exit_code == 0, published.output
    assert "published learned@1" in published.output


def test_evaluate_json_and_tables(demo_db: str, tmp_path: Path) -> None:
    # without --until the last cutoff is one horizon (30 days) before the newest data: nothing censored
    result = runner.invoke(app, ["evaluate", "--db", demo_db, "--json", "--since", "2025-02-01"])
    assert result.exit_code == 0, result.output
    assert not any("censored" in k for k in json.loads(result.output)["excluded"])
    result = runner.invoke(
        app, ["evaluate", "--db", demo_db, "--json", "--since", "2025-02-01", "--until", "2025-06-30"]
    )
    assert result.exit_code == 0, result.output
    ev = json.loads(result.output)
    assert ev["model"].startswith("b2b_saas@1") or ev["model"].startswith("learned@")
    assert ev["rows"] > 0 and 0 <= ev["roc_auc"] <= 1 and len(ev["deciles"]) == 10
    assert sum(d["leads"] for d in ev["deciles"]) == ev["rows"]
    assert any("censored" in k for k in ev["excluded"])
    html = tmp_path / "eval.html"
    table = runner.invoke(
        app,
        ["evaluate", "--db", demo_db, "--since", "2025-02-01", "--until", "2025-06-30", "--html", str(html)],
    )
    assert table.exit_code == 0 and "Lift and gains by decile" in table.output and "excluded:" in table.output
    assert html.read_text().count("<svg") == 3


def test_evaluate_a_model_file_against_a_csv(tmp_path: Path) -> None:
    fixture = Path(__file__).resolve().parent / "data" / "learn" / "x_education_400.csv"
    out = tmp_path / "x.yaml"
    learned = runner.invoke(app, ["learn", "--csv", str(fixture), "--outcome", "Converted", "--id", "Prospect ID",
                                  "--exclude", "Tags", "--min-outcomes", "20", "--challenger", "hist", "--c", "1",
                                  "--output", str(out), "--json"])  # fmt: skip
    assert learned.exit_code == 0, learned.output
    assert json.loads(learned.output)["dropped"][-1] == ["tags", "excluded (outcome or sales-entered)"]
    ev = runner.invoke(
        app,
        [
            "evaluate",
            str(out),
            "--csv",
            str(fixture),
            "--outcome",
            "Converted",
            "--id",
            "Prospect ID",
            "--json",
        ],
    )
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.output)["rows"] == 400


def test_learn_from_the_store_refuses_an_exclude_naming_no_attribute(demo_db: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["learn", "--db", demo_db, "--exclude", "lead_qualty", "--min-outcomes", "5",
                                 "--output", str(tmp_path / "x.yaml")])  # fmt: skip
    assert isinstance(result.exception, InputError)
    assert "--exclude 'lead_qualty' names no attribute" in str(result.exception)


@pytest.mark.slow  # the default 500-lead demo, learned with the candidate chosen by cross-validation
def test_learning_on_the_demo_data_works_as_the_docs_show(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the commands of docs/learning.md's demo block, as written (the docs cannot drift from what works)
    docs = (Path(__file__).resolve().parents[1] / "docs" / "learning.md").read_text(encoding="utf-8")
    block = docs[docs.index("On the demo data") :]
    block = block[
        block.index("```console") + len("```console") : block.index("```", block.index("```console") + 3)
    ]
    commands = [shlex.split(line.removeprefix("$ ")) for line in block.strip().splitlines()]
    assert [c[1] for c in commands] == ["demo", "learn", "backtest", "model", "evaluate"]
    monkeypatch.chdir(tmp_path)
    outputs = []
    for command in commands:
        result = runner.invoke(app, command[1:])
        assert result.exit_code == 0, (command, result.output)
        outputs.append(result.output)
    assert "points model" in outputs[1] and "published learned@1" in outputs[3]
    # both outcomes present, so a defined ranking, and no warning (such as "every labelled row converted")
    found = re.search(r"(\d+) labelled rows, (\d+) converted", outputs[4])
    assert found is not None and 0 < int(found[2]) < int(found[1])
    assert "warning" not in outputs[4] and "the top 20 % of leads hold" in outputs[4]
