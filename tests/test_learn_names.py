"""The names of a learned model's rules, as a marketer reads them: a number in a name is the number the
rule compares with (never rounded, never in scientific notation); a name shortened to the model
language's 200 characters says so ("…") instead of ending mid-word; a category's control characters
(a newline, ESC, BEL from a hostile file) are spelt out in the name while the rule still matches the
value itself (hand-made CSVs written by each test)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from compiled_scores import compiled_scores, write_csv
from leadscore.ingest.csv_import import ImportOptions
from leadscore.learn.dataset import csv_data
from leadscore.learn.scorecard import Scorecard
from leadscore.learn.to_model import to_model
from leadscore.model import dump_model, loads_model
from leadscore.store import Store

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z


def _names(model: Any) -> dict[str, str]:
    return {r["id"]: r["name"] for r in yaml.safe_load(dump_model(model))["fit"]}


def _conditions(model: Any) -> dict[str, Any]:
    return {r["id"]: r["when"] for r in yaml.safe_load(dump_model(model))["fit"]}


def test_numbers_in_rule_names_are_the_numbers_the_rules_compare_with(tmp_path: Path) -> None:
    # spend converts from 2,500,000 up; visits from 1,234,567 up (hand-made: every lead at or above
    # converts but every 10th, every lead below does not but every 10th)
    rows = []
    for i in range(300):
        spend = (1_000_000, 2_500_000, 4_000_000)[i % 3]
        visits = (7, 1_234_567)[(i // 3) % 2]
        converted = (spend >= 2_500_000) != (i % 10 == 0) if i % 2 else (visits >= 1_234_567) != (i % 10 == 1)
        rows.append([f"p{i}", spend, visits, int(converted)])
    path = write_csv(tmp_path / "spend.csv", ["Id", "Spend", "Visits", "Converted"], rows)
    data = csv_data(path, "Converted", id_column="Id")
    sc = Scorecard(data.features, min_class_count=20, max_bins=4, min_bin_share=0.05, interactions=0)
    model = to_model(sc.fit(data.X, data.y), "spend")
    # was {"2.5e+06 ≤ spend < 4e+06", "spend ≥ 4e+06", "visits ≥ 1.23457e+06"}: the last a number the
    # rule does not compare with
    assert set(_names(model).values()) == {"2500000 ≤ spend < 4000000", "spend ≥ 4000000", "visits ≥ 1234567"}


def test_a_decimal_edge_is_named_as_the_rule_compares_it(tmp_path: Path) -> None:
    # page values: 0 (never converts but every 7th) or 0.038034503 and above (converts but every 7th)
    values = ("0", "0.038034503", "5.25")
    rows = [[f"p{i}", values[i % 3], int((i % 3 != 0) != (i % 7 == 0))] for i in range(300)]
    path = write_csv(tmp_path / "pages.csv", ["Id", "PageValues", "Converted"], rows)
    data = csv_data(path, "Converted", id_column="Id")
    sc = Scorecard(data.features, min_class_count=20, max_bins=2, min_bin_share=0.05, interactions=0)
    model = to_model(sc.fit(data.X, data.y), "pages")
    ((rule_id, name),) = _names(model).items()
    assert _conditions(model)[rule_id] == {"attribute": "page_values", "gte": 0.038034503}
    assert name == "page_values ≥ 0.038034503"  # was "page_values ≥ 0.0380345"


def _hostile(tmp_path: Path) -> Path:
    """Industries a hostile export holds: a quoted newline, a CR LF, ESC, and a 300-character name that
    ends with BEL; each converts at its own rate (hand-made)."""
    long = "L" * 300 + "\x07"
    industries = ("saas\nsecond line", "bank\r\nx", long, "ctl\x1bz")
    rows = []
    for i in range(480):
        k = i % 4
        converted = (i % 10 < (2, 8, 5, 1)[k]) if i % 5 else (i % 2 == 0)
        rows.append([f"p{i}", industries[k], int(converted)])
    return write_csv(tmp_path / "hostile.csv", ["Id", "Industry", "Converted"], rows)


def test_control_characters_and_long_categories_are_spelt_out_in_names_not_in_conditions(
    store: Store, tmp_path: Path
) -> None:
    path = _hostile(tmp_path)
    data = csv_data(path, "Converted", id_column="Id")
    sc = Scorecard(data.features, min_class_count=20, max_bins=6, min_bin_share=0.03, interactions=0)
    sc.fit(data.X, data.y)
    model = loads_model(dump_model(to_model(sc, "hostile")))  # the YAML round trip
    names = set(_names(model).values())
    # every category has a rule of its own (the worst is the baseline, worth 0 and written as none)
    expected = {
        "industry: saas\\nsecond line",
        "industry: bank\\r\\nx",
        "industry: " + "l" * 59 + "…",  # 300 l's and BEL: shortened, said to be
        "industry: ctl\\x1bz",
        "industry: any other value",  # a value training never saw: neutral
    }
    assert len(names) == 4 and names < expected
    assert all(name.isprintable() and len(name) <= 200 for name in _names(model).values())
    # the conditions still name the values themselves (as the file holds them, lowercased)
    listed = {v for c in _conditions(model).values() for v in c.get("in", ())}
    assert listed <= {"saas\nsecond line", "bank\r\nx", "l" * 300 + "\x07", "ctl\x1bz"}
    assert len(listed) == 3
    # and the compiled model scores the imported file as the estimator does
    options = ImportOptions(mapping={"Id": "user_id"}, ignore=frozenset({"Converted"}))
    compiled = compiled_scores(store, model, T0, path, options)
    expected_scores = dict(zip(data.keys, sc.score_100(data.X).tolist(), strict=True))
    assert len(compiled) == 480
    assert [k for k, v in expected_scores.items() if abs(compiled[k] - v) > 1e-9] == []


def test_a_long_rule_name_is_shortened_at_a_word_with_an_ellipsis(tmp_path: Path) -> None:
    # twelve occupations, the five converting ones sharing a bin: a name listing four and "and 1 more"
    # is short; a pair of two such features names two bins per cell and is cut
    jobs = [f"occupation number {n:02d} of the survey" for n in range(12)]
    rows = [[f"p{i}", jobs[i % 12], int((i % 12 < 5) != (i % 7 == 0))] for i in range(600)]
    path = write_csv(tmp_path / "jobs.csv", ["Id", "Occupation", "Converted"], rows)
    data = csv_data(path, "Converted", id_column="Id")
    sc = Scorecard(data.features, min_class_count=20, max_bins=2, min_bin_share=0.05, interactions=0)
    model = to_model(sc.fit(data.X, data.y), "jobs")
    name = _names(model)["occupation_1"]
    full = (
        "occupation: occupation number 00 of the survey, occupation number 01 of the survey, "
        "occupation number 02 of the survey, occupation number 03 of the survey and 1 more"
    )
    assert len(full) <= 200 and name == full
    # a longer one: cut after a whole word, and said to be
    long_jobs = [f"occupation number {n:02d} of the survey held in spring" for n in range(12)]
    rows = [[f"p{i}", long_jobs[i % 12], int((i % 12 < 5) != (i % 7 == 0))] for i in range(600)]
    path = write_csv(tmp_path / "long.csv", ["Id", "Occupation", "Converted"], rows)
    data = csv_data(path, "Converted", id_column="Id")
    sc = Scorecard(data.features, min_class_count=20, max_bins=2, min_bin_share=0.05, interactions=0)
    name = _names(to_model(sc.fit(data.X, data.y), "long"))["occupation_1"]
    whole = (
        "occupation: occupation number 00 of the survey held in spring, occupation number 01 of the survey "
        "held in spring, occupation number 02 of the survey held in spring, occupation number 03 of the "
        "survey held in spring and 1 more"
    )
    assert len(whole) > 200
    assert name.endswith(" …") and len(name) <= 200
    assert whole.startswith(name[:-2]) and whole[len(name) - 2] == " "  # a whole word was the last kept
