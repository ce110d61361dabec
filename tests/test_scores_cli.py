"""The CLI commands that list or review scores take ``--score NAME`` (issue #20), on the two-score store of
``tests/test_named_scores.py``: ann is 50 on core (the primary) and 90 on analytics, bob 20 and 10 (worked
out there by hand)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leadscore.cli.main import app as cli
from leadscore.store import Store
from test_named_scores import two_scores


def _listed(store: Store, *args: str) -> list[tuple[str, float]]:
    out = CliRunner().invoke(cli, ["score", "--format", "json", "--db", str(store.url), *args])
    assert out.exit_code == 0, out.output
    return [(row["lead_id"], row["score"]) for row in json.loads(out.output)]


def test_score_lists_the_score_named(store: Store) -> None:
    two_scores(store)
    core, analytics = _listed(store), _listed(store, "--score", "analytics")
    at = ["--as-of", "2024-05-01T03:00:00Z"]
    assert [s for _, s in core] == [50.0, 20.0] == [s for _, s in _listed(store, *at)]
    assert (
        [s for _, s in analytics]
        == [90.0, 10.0]
        == [s for _, s in _listed(store, "--score", "analytics", *at)]
    )
    assert [lead for lead, _ in core] == [lead for lead, _ in analytics]  # ann first on both
    unknown = CliRunner().invoke(cli, ["score", "--score", "partners", "--db", str(store.url)])
    assert unknown.exit_code != 0 and "no score named 'partners'" in str(unknown.exception or unknown.output)
