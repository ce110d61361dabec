"""A change of score is shown as the difference of the two scores as shown (``scoring.shown.shown_change``):
the score before as shown plus the change is the score after as shown.

ann signs up ten days ago (24.09 points, a score of 24.09, shown 24.0) and asks for a demo an hour ago
(+5.92, a score of 30.01, shown 30.0). Before, the change was the raw difference rounded (5.92 → "+5.9",
and the first move 24.09 → "+24.1") or cut ("5.9"), beside "24.0" and "30.0": the lead page's moves,
the funnel's getting warmer, ``leadscore reports warmer`` and ``leadscore history`` all said 24.0 + 5.9
= 30.0. Every one now says +6.0 (and +24.0 for the first move).
"""

from __future__ import annotations

import re
import time
from typing import Any

from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import now_ms
from leadscore.scoring.shown import shown_change
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

MODEL = """
model: moves
engagement:
  - {id: signup, name: Signed up, event: {type: track, name: Signup}, points: 24.09}
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 5.92}
scale: {weights: {fit: 0, engagement: 1}}
lifecycle:
  initial: lead
  stages: [{id: lead, name: Lead}]
"""
DAY = 86_400_000
HOUR = 3_600_000


def _msg(kind: str, at: int, n: int, **fields: Any) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000)) + "Z"
    return {"type": kind, "userId": "ann", "messageId": f"ann-{n}", "timestamp": stamp, **fields}


def test_shown_change_by_hand() -> None:
    assert shown_change(30.01, 24.09) == 6.0  # 30.0 − 24.0, not 5.92
    assert shown_change(24.09, 0.0) == 24.0
    assert shown_change(24.0, 30.09) == -6.0
    assert shown_change(59.996, 59.91) == 0.0  # both shown 59.9
    assert shown_change(30.01, 24.09, 2) == 5.92


def test_every_screen_shows_a_change_as_the_shown_scores_differ(store: Store) -> None:
    now = now_ms()
    publish(store, loads_model(MODEL), as_of=now - 11 * DAY)
    first, second = now - 10 * DAY, now - HOUR
    signup = [_msg("identify", first, 1, traits={"email": "ann@example.test"}),
              _msg("track", first, 2, event="Signup")]  # fmt: skip
    ingest(store, [normalise(m, received_ms=first) for m in signup], source="test", as_of=first)
    demo = [_msg("track", second, 3, event="Demo")]
    ingest(store, [normalise(m, received_ms=second) for m in demo], source="test", as_of=second)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        ann = find_lead(conn, external_id="ann")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page, funnel = client.get(f"/leads/{ann}"), client.get("/funnel")
    assert page.status_code == 200 and funnel.status_code == 200
    moves = page.text[page.text.index('<table class="moves">') :]
    moves = moves[: moves.index("</table>")]
    # change, score after: each move's change is the difference of the scores as shown
    assert re.findall(r'<td class="num">([^<]+)</td><td class="num">([^<]+)</td>', moves) == [
        ("+24.0", "24.0"),
        ("+6.0", "30.0"),
    ]
    warmer = funnel.text[funnel.text.index('<table class="warmer">') :]
    warmer = warmer[: warmer.index("</table>")]
    # then, now, increase
    assert re.findall(r'<td class="num">([^<]+)</td>', warmer) == ["24.0", "30.0", "+6.0"]

    db = ["--db", str(store.url)]
    report = CliRunner().invoke(cli, ["reports", "warmer", *db], env={"COLUMNS": "200"})
    assert report.exit_code == 0, report.output
    row = next(line for line in report.output.splitlines() if "ann@example.test" in line)
    # score now, score then, increase
    assert re.findall(r"\b\d+\.\d\b", row) == ["30.0", "24.0", "6.0"]
    history = CliRunner().invoke(cli, ["history", "ann", *db], env={"COLUMNS": "250"})
    assert history.exit_code == 0, history.output
    rows = [line for line in history.output.splitlines() if re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line)]
    # score and change of the signup's and the demo's rows
    assert [re.findall(r"[+−-]?\b\d+\.\d\b", line)[:2] for line in rows[-2:]] == [
        ["24.0", "+24.0"],
        ["30.0", "+6.0"],
    ]


NUDGES = """
model: nudges
engagement:
  - {id: signup, name: Signed up, event: {type: track, name: Signup}, points: 24.01}
  - {id: nudge, name: Nudged, event: {type: track, name: Nudge}, points: 0.06}
  - {id: tick, name: Ticked, event: {type: track, name: Tick}, points: 0.04}
scale: {weights: {fit: 0, engagement: 1}}
"""


def test_the_lead_page_lists_the_moves_of_the_score_as_shown(store: Store) -> None:
    # 24.01 (shown 24.0), a nudge +0.06 → 24.07 (still 24.0), a tick +0.04 → 24.11 (24.1). The moves
    # listed the nudge as "+0.1, 24.0" (a raw change of 0.05 or more) and left the tick out (0.04)
    now = now_ms()
    publish(store, loads_model(NUDGES), as_of=now - 11 * DAY)
    steps = [("Signup", now - 10 * DAY), ("Nudge", now - 2 * HOUR), ("Tick", now - HOUR)]
    for n, (name, at) in enumerate(steps, start=1):
        raws = [_msg("identify", at, 0, traits={"email": "ann@example.test"})] if n == 1 else []
        raws.append(_msg("track", at, n, event=name))
        ingest(store, [normalise(m, received_ms=at) for m in raws], source="test", as_of=at)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
        ann = find_lead(conn, external_id="ann")
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.get(f"/leads/{ann}")
    assert page.status_code == 200
    moves = page.text[page.text.index('<table class="moves">') :]
    moves = moves[: moves.index("</table>")]
    assert re.findall(
        r"<td>([^<]+)</td><td class=\"num\">([^<]+)</td><td class=\"num\">([^<]+)</td>", moves
    ) == [
        ("identify, Signup", "+24.0", "24.0"),
        ("Tick", "+0.1", "24.1"),
    ]
