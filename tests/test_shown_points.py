"""Shown points add up: the dashboard's lead page and ``leadscore explain`` round a ledger's lines (and the
events behind each line) to two decimals by largest remainder (``scoring.shown.apportion``), so what a
reader adds up on the screen is the score on the screen. Each rounded on its own, three lines of 1/3
point showed as 0.33 + 0.33 + 0.33 under a score of 1.00."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.shown import apportion
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

# engagement only, 300 raw points = 100: one raw point is 1/3 score point. Three page views of "read"
# (1 point each) make a line of 1.00, each view 1/3; "a", "b" and "c" (1 point each) make three lines of
# 1/3. Score 2.00.
MODEL = """
model: thirds
engagement:
  - {id: read, name: Read, event: {type: page}, points: 1}
  - {id: a, name: A, event: {type: track, name: A}, points: 1}
  - {id: b, name: B, event: {type: track, name: B}, points: 1}
  - {id: c, name: C, event: {type: track, name: C}, points: 1}
scale: {fit_max: 100, engagement_max: 300, weights: {fit: 0, engagement: 1}}
"""
AS_OF = "2024-06-01T00:00:00Z"


def _messages() -> list[dict[str, object]]:
    pages = [
        {"type": "page", "userId": "ann", "messageId": f"p{day}", "timestamp": f"2024-05-0{day}T00:00:00Z",
         "properties": {"path": "/docs"}}
        for day in (1, 2, 3)
    ]  # fmt: skip
    tracks = [
        {"type": "track", "userId": "ann", "messageId": name, "event": name.upper(),
         "timestamp": "2024-05-04T00:00:00Z"}
        for name in ("a", "b", "c")
    ]  # fmt: skip
    return [*pages, *tracks]


def test_apportion_by_hand() -> None:
    # 33.33… units each: cut to 33, one unit missing, to the first of the tied remainders
    assert apportion([1 / 3] * 3, 1.0) == [0.34, 0.33, 0.33]
    # exact parts never move; −0.333… cuts to −0.34 (remainder 0.67): two units go back
    assert apportion([1.0, 2 / 3, 2 / 3, 2 / 3], 3.0) == [1.0, 0.67, 0.67, 0.66]
    assert apportion([-1 / 3] * 3, -1.0) == [-0.33, -0.33, -0.34]
    # a whole that is the parts' sum as shown (the events of a line shown as 0.34)
    assert apportion([0.1, 0.1, 0.1, 1 / 30], 0.34) == [0.1, 0.1, 0.1, 0.04]
    # parts that are not the whole's are rounded one by one: the difference still shows
    assert apportion([1 / 3] * 3, 2.0) == [0.33, 0.33, 0.33]
    assert apportion([], 0.0) == []


def test_the_lead_page_and_explain_show_lines_that_add_up_to_the_score(store: Store) -> None:
    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(MODEL, "thirds.yaml"), as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in _messages()], source="test", as_of=as_of)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        lead_id = find_lead(conn, external_id="ann")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.get(f"/leads/{lead_id}")
    assert page.status_code == 200
    ledger = page.text[page.text.index('<table class="ledger"') :]
    ledger = ledger[: ledger.index("</table>")]
    # lines largest first (read 1.00, then a, b, c by id); the unit the thirds lose goes to "a"
    assert re.findall(r'<td class="num"><strong>([^<]+)</strong></td>', ledger) == [
        "+1.00", "+0.34", "+0.33", "+0.33", "2.00"
    ]  # fmt: skip
    # the three views behind "read", newest first: 1/3 each, shown 0.34 + 0.33 + 0.33 = 1.00
    assert re.findall(r'data-line="read"[^>]*>[^<]*· ([^<]+)</li>', ledger) == ["+0.34", "+0.33", "+0.33"]

    result = CliRunner().invoke(
        cli, ["explain", "ann", "--db", str(store.url), "--as-of", AS_OF], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    points = re.findall(r"│ +([+−-]\d+\.\d\d) +│", result.output)
    # the ledger in the model's order (read, a, b, c), then the events behind each line
    assert points == [
        "+1.00",
        "+0.34",
        "+0.33",
        "+0.33",
        "+0.34",
        "+0.33",
        "+0.33",
        "+0.34",
        "+0.33",
        "+0.33",
    ]
    assert re.search(r"│ +2\.00 +│", result.output)


def test_a_lines_events_are_headed_by_the_line_as_the_ledger_shows_it(store: Store) -> None:
    # "a" is 1/3 point, shown +0.34 on the lead page (it gets the unit the thirds lose); the page of its
    # events said so, ``explain --line a`` rounded the line on its own: "+0.33 score points"
    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(MODEL, "thirds.yaml"), as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in _messages()], source="test", as_of=as_of)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        lead_id = find_lead(conn, external_id="ann")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.get(f"/leads/{lead_id}/lines/a")
    assert page.status_code == 200
    assert re.findall(r"data-line-shown=\"[^\"]*\">([^<]+)<", page.text) == ["+0.34"]
    db = ["--db", str(store.url), "--as-of", AS_OF]
    result = CliRunner().invoke(cli, ["explain", "ann", "--line", "a", *db], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "A (a): +0.34 score points from 1 events" in " ".join(result.output.split())


def test_explain_as_csv_lists_the_ledger_lines_that_add_up_to_the_score(store: Store) -> None:
    # ``explain -f csv`` printed the terminal table; a line a row, the score points as shown (1.00 + 0.34 +
    # 0.33 + 0.33 = 2.00), and the events of one line (``--line read``) a row each: 1/3 point each
    import csv
    import io

    as_of = parse_time(AS_OF, "as_of")
    publish(store, loads_model(MODEL, "thirds.yaml"), as_of=as_of)
    ingest(store, [normalise(m, received_ms=as_of) for m in _messages()], source="test", as_of=as_of)
    db = ["--db", str(store.url), "--as-of", AS_OF]
    result = CliRunner().invoke(cli, ["explain", "ann", "-f", "csv", *db])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["rule_id"], float(r["score_points"])) for r in rows] == [
        ("read", 1.0), ("a", 0.34), ("b", 0.33), ("c", 0.33)
    ]  # fmt: skip
    assert [r["matched"] for r in rows] == ["3", "1", "1", "1"]
    line = CliRunner().invoke(cli, ["explain", "ann", "--line", "read", "-f", "csv", *db])
    assert line.exit_code == 0, line.output
    events = list(csv.DictReader(io.StringIO(line.stdout)))
    assert [round(float(e["score_points"]), 6) for e in events] == [0.333333] * 3
    assert [e["event"] for e in events] == ["page /docs"] * 3


def test_a_format_the_commands_do_not_write_is_refused() -> None:
    # ``-f xml`` printed a table (and ``score -f xml`` left out withdrawn people as an export would)
    for args in (
        ["score", "-f", "xml"],
        ["explain", "ann", "-f", "xml"],
        ["deadletters", "list", "-f", "xml"],
    ):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, (args, result.output)
        said = " ".join(result.output.replace("│", " ").split())
        assert "Invalid value for '--format' / '-f'" in said, result.output
        assert "'xml' is not one of 'table', 'csv', 'json'" in said, result.output
