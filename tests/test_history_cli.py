"""``leadscore history LEAD`` lists a page of the lead's score history, as the API and the lead page do
(a write key's events can give one person any number of rows): ``--limit`` rows (100 by default), the
newest first from ``--offset``, oldest first within the page, and says how many more there are ("N more:
--offset M", on stderr with --format csv or json, as ``leadscore reports handoff`` does).

The lead: 250 history rows, row k (1..250) at T0 + k hours with score k; she entered ``lead`` at T0 and
``mql`` at T0 + 150.5 hours, so rows 1..150 were in ``lead`` and 151..250 in ``mql``.
"""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.store import Store
from leadscore.store.model_versions import add_version
from leadscore.store.results import append_history
from leadscore.store.schema import leads, stage_history
from leadscore.store.score_names import primary_score

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
HOUR = 3_600_000
ROWS = 250


def _lead_with_long_history(store: Store) -> None:
    with store.begin() as conn:
        version, _ = add_version(conn, "m", "model: m\nfit: []\nengagement: []\n", 1)
        conn.execute(leads.insert().values(id=1, attributes={}, created_ms=T0, updated_ms=T0))
        name = primary_score(conn)
        append_history(
            conn,
            [
                {"lead_id": 1, "score_name": name, "model_version_id": version.id, "at_ms": T0 + k * HOUR,
                 "score": float(k), "fit_score": 0.0, "engagement_score": float(k), "grade": "D", "level": 4,
                 "band": "cold", "cause": "event", "cause_ref": f"e{k}", "recorded_ms": T0 + k * HOUR}
                for k in range(1, ROWS + 1)
            ],
        )  # fmt: skip
        for k, (before, after, at) in enumerate(
            ((None, "lead", T0), ("lead", "mql", T0 + 150 * HOUR + HOUR // 2))
        ):
            conn.execute(
                stage_history.insert().values(
                    lead_id=1, from_stage=before, to_stage=after, at_ms=at, transition=f"t{k}", cause="score",
                    cause_ref=f"s{k}", recorded_ms=at,
                )
            )  # fmt: skip


def _json(store: Store, *args: str) -> tuple[list[dict[str, object]], str]:
    got = CliRunner().invoke(app, ["history", "1", "-f", "json", "--db", store.url, *args])
    assert got.exit_code == 0, got.output
    return json.loads(got.stdout), got.stderr.strip()


def test_history_lists_a_page_newest_first_and_says_how_many_more(store: Store) -> None:
    _lead_with_long_history(store)
    first, more = _json(store)
    assert [r["score"] for r in first] == [float(k) for k in range(151, 251)]
    assert {r["stage"] for r in first} == {"mql"}
    assert more == "150 more: --offset 100"
    middle, more = _json(store, "--offset", "100")
    assert [r["score"] for r in middle] == [float(k) for k in range(51, 151)]
    assert {r["stage"] for r in middle} == {"lead"}
    assert more == "50 more: --offset 200"
    oldest, more = _json(store, "--offset", "200")
    assert [r["cause_ref"] for r in oldest] == [f"e{k}" for k in range(1, 51)]
    assert {r["stage"] for r in oldest} == {"lead"}  # the moves that put her there are older than the page
    assert more == ""
    small, more = _json(store, "--limit", "3", "--offset", "1")
    assert [r["score"] for r in small] == [247.0, 248.0, 249.0]
    assert more == "246 more: --offset 4"


def test_the_history_table_shows_the_pages_path_and_the_footer(store: Store) -> None:
    """The table's score path is the page's, with an ellipsis for the rows on other pages (older first,
    newer last), as the lead page's; the footer follows it, on stdout."""
    _lead_with_long_history(store)
    table = CliRunner().invoke(app, ["history", "1", "--db", store.url])
    assert table.exit_code == 0, table.output
    path = " → ".join(str(k) for k in range(151, 251))
    assert f"score path: … → {path}\n150 more: --offset 100\n" in table.stdout
    oldest = CliRunner().invoke(app, ["history", "1", "--offset", "200", "--db", store.url])
    assert oldest.exit_code == 0, oldest.output
    path = " → ".join(str(k) for k in range(1, 51))
    assert f"score path: {path} → …\n" in oldest.stdout
    assert "more: --offset" not in oldest.stdout
    # her two stage moves are the newest page's (paged as the history is): none on the page from 200
    assert "stage lead → mql" in table.stdout and "stage lead → mql" not in oldest.stdout
