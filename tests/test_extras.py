"""The product without its extras (``pip install -e .``): ``learn`` falls back to scikit-learn's
HistGradientBoosting for its challenger where LightGBM cannot be loaded, and the Spark engine says which
extra to install. A package that cannot be loaded is simulated the way Python itself marks one
(``sys.modules[name] = None`` makes ``import name`` raise ImportError)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.errors import LeadscoreError
from leadscore.extras import require

DATA = Path(__file__).resolve().parent / "data" / "learn" / "x_education_400.csv"


def test_learn_without_lightgbm_uses_hist_gradient_boosting(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    argv = ["learn", "--csv", str(DATA), "--outcome", "Converted", "--id", "Prospect ID", "--exclude", "Tags",
            "--min-outcomes", "20", "--c", "1", "--output", str(tmp_path / "x.yaml"), "--json"]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="leadscore.learn"):
        result = CliRunner().invoke(app, argv)  # --challenger lightgbm is the default
    assert result.exit_code == 0, result.output
    challenger = json.loads(result.output)["challenger"]
    assert challenger["name"] == "hist challenger"
    assert 0.5 < challenger["roc_auc"] <= 1
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "leadscore.learn"]
    assert "pip install 'leadscore[lightgbm]'" in warning and "HistGradientBoosting" in warning


def test_a_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("pyspark", "pyspark.sql"):  # the Spark tests may have imported it already
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(LeadscoreError) as info:
        require("pyspark.sql", "spark", "the Spark engine (--engine spark)")
    message = str(info.value)
    assert message.startswith("the Spark engine (--engine spark) needs pyspark, which cannot be loaded (")
    assert message.endswith("): pip install 'leadscore[spark]'")
    assert require("json", "none", "anything").dumps([1]) == "[1]"  # an installed module is returned
