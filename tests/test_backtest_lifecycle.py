"""The backtest counts MQLs as the lifecycle runner makes them: the fit-grade gate, hysteresis, inactivity
and new activity of the model's own lifecycle, on a hand-made history (both engines), and the replay
alone on hand-written observations. Every expected count is worked out in the comments."""

from __future__ import annotations

import html
import json
import time
from typing import Any

import pytest

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.errors import ModelError
from leadscore.ingest.segment import normalise
from leadscore.learn.backtest import Memo, Outcomes, backtest, checkpoints, replay, summarise
from leadscore.learn.labels import DAY_MS
from leadscore.lifecycle.gates import Facts
from leadscore.lifecycle.replay import Move, mql_stage, mql_threshold, replay_lead, with_threshold
from leadscore.lifecycle.runner import run_round
from leadscore.model import ScoringModel, loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.people import find_lead
from leadscore.store.users import add_user
from lifecycle_model import model as lc_model
from lifecycle_model import settings
from live_server import serving
from web_support import PASSWORD, csrf_of, signed_in

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z, the start of the period
END = T0 + 14 * DAY_MS  # two weeks
HOUR = 3_600_000

# Score = engagement (fit weight 0): a demo request is 30 points, Plus +1, Minus −1, no decay. Fit only
# sets the grade: a marketing title gives fit 60, grade B; anyone else fit 0, grade D.
SCORING = """
model: gated
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 30}
  - {id: plus, name: Showed interest, event: {type: track, name: Plus}, points: 1}
  - {id: minus, name: Lost interest, event: {type: track, name: Minus}, points: -1}
scale: {weights: {fit: 0, engagement: 1}, grades: {A: 90, B: 60, C: 30}, bands: {hot: 60, warm: 40}}
"""
LIFECYCLE = """
lifecycle:
  initial: lead
  hysteresis: {hysteresis}
  stages:
    - {{id: lead, name: Lead}}
    - {{id: mql, name: MQL}}
  transitions:
    - {{id: qualified, from: [lead], to: mql, when: {{score_at_least: 60{gate}}}}}
    - {{id: cooled, from: [mql], to: lead, when: {{score_below: 60}}}}
"""


def scoring_model(*, lifecycle: bool = True, hysteresis: float = 5, grade_gate: bool = True) -> ScoringModel:
    if not lifecycle:
        return loads_model(SCORING)
    gate = ", grade_at_least: B" if grade_gate else ""
    return loads_model(SCORING + LIFECYCLE.format(hysteresis=hysteresis, gate=gate))


# (day, user, event, count). Scores at each day's end:
#   ann  (marketing, B): day 1: 60 · day 2: 57 · day 3: 60 · day 4: 54 · day 9: 60
#   bob  (student, D):   day 2: 90
#   cara (marketing, B): day 3: 60
DAYS: list[tuple[int, str, str, int]] = [
    (1, "ann", "Demo", 2),
    (2, "ann", "Minus", 3),
    (2, "bob", "Demo", 3),
    (3, "ann", "Plus", 3),
    (3, "cara", "Demo", 2),
    (4, "ann", "Minus", 6),
    (9, "ann", "Plus", 6),
]
TITLES = {"ann": "Marketing Manager", "bob": "Student", "cara": "Marketing Director"}


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + "Z"


def _messages() -> dict[int, list[dict[str, Any]]]:
    """The history by day: everyone identifies on day 0 (12:00); the day's events from 10:00, a minute apart."""
    by_day: dict[int, list[dict[str, Any]]] = {0: []}
    for user, title in TITLES.items():
        by_day[0].append({"type": "identify", "userId": user, "messageId": f"id-{user}",
                          "timestamp": _iso(T0 + 12 * HOUR), "traits": {"email": f"{user}@x.example", "title": title}})  # fmt: skip
    for day, user, name, count in DAYS:
        for i in range(count):
            at = T0 + day * DAY_MS + 10 * HOUR + i * 60_000
            by_day.setdefault(day, []).append(
                {
                    "type": "track",
                    "event": name,
                    "userId": user,
                    "messageId": f"{user}-{day}-{name}-{i}",
                    "timestamp": _iso(at),
                }
            )
    return by_day


def _ingest(store: Store, raws: list[dict[str, Any]], as_of: int | None = None) -> None:
    stamp = int(time.time() * 1000)
    ingest(store, [normalise(r, received_ms=stamp) for r in raws], source="test", as_of=as_of)


def _run(store: Store, model: ScoringModel, baseline: ScoringModel | None = None, **kw: Any) -> Any:
    with store.connect() as conn:
        return backtest(conn, store.sources(), ("candidate", model, kw.pop("threshold", None)),
                        ("baseline", baseline, None) if baseline is not None else None, start_ms=T0,
                        end_ms=END, outcome="opportunity", horizon_ms=3 * DAY_MS, **kw)  # fmt: skip


@pytest.fixture
def history(store: Store) -> Store:
    _ingest(store, [m for day in _messages().values() for m in day])
    return store


def test_the_fit_gate_changes_the_mql_count(history: Store) -> None:
    plain = _run(history, scoring_model(lifecycle=False))
    # no lifecycle: an MQL is the first day's end at or above the hot band (60): ann day 1, bob day 2,
    # cara day 3, all in week 1
    assert (plain.candidate.threshold, plain.candidate.mqls, plain.candidate.weekly) == (60, 3, [3, 0])
    ungated = _run(history, scoring_model(grade_gate=False))
    # the lifecycle without a grade test: ann enters on day 1, stays at 57 and 60 (57 is not below
    # 60 − 5), leaves at 54 on day 4 and enters again on day 9 (week 2); bob on day 2; cara on day 3
    assert (ungated.candidate.mqls, ungated.candidate.weekly) == (4, [3, 1])
    gated = _run(history, scoring_model(), baseline=scoring_model(lifecycle=False))
    # grade B or better: bob (grade D at 90) never becomes an MQL; ann twice, cara once
    assert (gated.candidate.threshold, gated.candidate.mqls, gated.candidate.weekly) == (60, 3, [2, 1])
    # against the plain model: the same leads minus bob
    assert (gated.gained, gated.lost) == (0, 1)


def test_hysteresis_counts_each_new_entry(history: Store) -> None:
    flapping = _run(history, scoring_model(hysteresis=0))
    # without hysteresis ann leaves at 57 (day 2), enters at 60 (day 3), leaves at 54 (day 4) and enters
    # at 60 (day 9): entries on days 1, 3, 9; with cara on day 3, four MQLs, three in week 1
    assert (flapping.candidate.mqls, flapping.candidate.weekly, flapping.candidate.already_mql) == (
        4,
        [3, 1],
        0,
    )
    steady = _run(history, scoring_model(hysteresis=5))
    assert (steady.candidate.mqls, steady.candidate.weekly) == (3, [2, 1])


def test_the_advisor_replays_the_gates(history: Store) -> None:
    # Two weeks. Plain model: from threshold 61 to 90 only bob (90) qualifies: 0.5 a week, exactly the
    # asked capacity; at 60 or below ann, bob and cara: 1.5 a week.
    plain = _run(history, scoring_model(lifecycle=False), per_week=0.5)
    assert (plain.advice.capacity_threshold, plain.advice.capacity_mqls_per_week) == (61.0, 0.5)
    # Gated: bob never counts. At 60 or below ann enters twice and cara once: 3 in two weeks, 1.5 a week
    # (at 1–54 ann's fall to 54 on day 4 re-qualifies her at once, still two entries); above 60, nobody.
    # 0 a week is closer to 0.5 than 1.5 is, so 61: what the runner would really send at that line.
    gated = _run(history, scoring_model(), per_week=0.5)
    assert (gated.advice.capacity_threshold, gated.advice.capacity_mqls_per_week) == (61.0, 0.0)
    # At 0 a score of 0 qualifies and is at once below 60 − 5, so the chain (two moves at most with two
    # stages) takes ann and cara in and out on day 0, and each enters again later (ann days 1 and 4, cara
    # day 3): 5 entries, 2.5 a week. 1.5 a week is first reached at 1.
    exact = _run(history, scoring_model(), per_week=1.5)
    assert (exact.advice.capacity_threshold, exact.advice.capacity_mqls_per_week) == (1.0, 1.5)
    assert _run(history, scoring_model(), threshold=0).candidate.mqls == 5


def test_an_explicit_threshold_replaces_the_lifecycles_way_in(history: Store) -> None:
    # at 58 ann still enters on days 1 and 9, cara on day 3; at 61 nobody with grade B gets there
    assert _run(history, scoring_model(), threshold=58).candidate.mqls == 3
    assert _run(history, scoring_model(), threshold=61).candidate.mqls == 0


def test_the_runner_makes_the_mqls_the_backtest_counts(store: Store) -> None:
    model = scoring_model()
    publish(store, model)
    for _, raws in sorted(_messages().items()):
        day_end = max(normalise(r, received_ms=END).ts for r in raws)
        _ingest(store, raws, as_of=day_end)
        run_round(store, settings(), now_ms=day_end, deliver=False, timers=True)
    entries: dict[int, int] = {}
    with store.connect() as conn:
        for user in TITLES:
            lead = find_lead(conn, external_id=user)
            assert lead is not None
            entries[lead] = sum(1 for m in read_stage_history(conn, lead) if m["to_stage"] == "mql")
    assert sorted(entries.values()) == [0, 1, 2]  # bob never, cara once, ann twice (see DAYS)
    replayed = _run(store, model).candidate
    assert (replayed.mqls, replayed.leads) == (3, {lead for lead, n in entries.items() if n})


def test_the_mql_stage_and_threshold_of_a_model() -> None:
    lc = lc_model()
    assert lc.lifecycle is not None
    assert (mql_stage(lc.lifecycle), mql_threshold(lc)) == ("mql", 60)  # the assignment stage
    assert mql_threshold(scoring_model(lifecycle=False)) == 60  # the hot band
    moved = with_threshold(lc, 70)
    # only the automatic ways into MQL change; requalified keeps its grade and new-activity tests
    assert [(t.id, t.when.score_at_least) for t in moved.transitions if t.to == "mql"] == [
        ("qualified", 70),
        ("requalified", 70),
    ]
    assert next(t for t in moved.transitions if t.id == "requalified").when.new_activity
    no_mql = loads_model(SCORING + LIFECYCLE.format(hysteresis=0, gate="").replace("mql", "hot"))
    with pytest.raises(ModelError, match="no MQL stage"):
        _ = with_threshold(no_mql, 50) and mql_threshold(no_mql)


def _facts(day: float, score: float, last_event_day: float | None = None) -> Facts:
    at = T0 + int(day * DAY_MS)
    last = at if last_event_day is None else T0 + int(last_event_day * DAY_MS)
    return Facts(1, score, 60.0, score, "B", 2, "hot", scored_ms=at, entered_ms=0, last_event_ms=last)


def _day(d: float) -> int:
    return T0 + int(d * DAY_MS)


def test_replay_takes_the_timer_and_asks_for_new_activity() -> None:
    lc = lc_model().lifecycle  # quiet: mql → recycled after 30 days; requalified needs new activity
    assert lc is not None

    def no_attributes(_: Any) -> bool:
        return False

    # MQL on day 1; silent until day 40: the timer moves it on day 31 (30 days after its entry and last
    # event); the event on day 40 is new activity after that entry, so it qualifies again
    moves = replay_lead(lc, _day(0), [_facts(1, 70), _facts(40, 70)], no_attributes, _day(50))
    assert moves == [
        Move(_day(1), "lead", "mql", "qualified"),
        Move(_day(31), "mql", "recycled", "quiet"),
        Move(_day(40), "recycled", "mql", "requalified"),
    ]
    # observed again on day 40 with no event since day 1: recycled, and it stays there
    moves = replay_lead(
        lc, _day(0), [_facts(1, 70), _facts(40, 70, last_event_day=1)], no_attributes, _day(50)
    )
    assert moves == [Move(_day(1), "lead", "mql", "qualified"), Move(_day(31), "mql", "recycled", "quiet")]
    # the timer also runs after the last observation, up to the end of the period, and not past it
    assert replay_lead(lc, _day(0), [_facts(1, 70)], no_attributes, _day(31))[-1].to_stage == "recycled"
    assert replay_lead(lc, _day(0), [_facts(1, 70)], no_attributes, _day(31) - 1)[-1].to_stage == "mql"


def test_the_dashboard_backtests_a_draft_through_its_lifecycle(history: Store) -> None:
    publish(history, scoring_model(lifecycle=False), as_of=END)
    with history.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(history.url), run_processor=False), history)
    gated = SCORING + LIFECYCLE.format(hysteresis=5, gate=", grade_at_least: B")
    no_mql = gated.replace("mql", "hot")
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        token = csrf_of(client)
        page = client.post("/model/backtest", data={"csrf_token": token, "draft": gated},
                           headers={"HX-Request": "true"})  # fmt: skip
        refused = client.post("/model/backtest", data={"csrf_token": token, "draft": no_mql},
                              headers={"HX-Request": "true"})  # fmt: skip
    assert page.status_code == 200, page.text
    # the draft (grade B or better) makes 3 MQLs of ann and cara, the active plain model 3 of ann, bob
    # and cara (the 12-week period holds the whole history): the draft loses bob
    row = page.text[page.text.index('<th scope="row">MQLs</th>') :]
    assert row.startswith('<th scope="row">MQLs</th><td class="num">3</td><td class="num">3</td>')
    assert "gains 0 MQLs the active model would not have made (0 converted) and loses 1" in page.text
    # the chart beside it: the same MQLs per week, before (active) and after (draft), 12 weeks each
    # on the canvas itself: the fragment is swapped in by htmx, which drops <script> elements
    start = page.text.index("data-json='") + len("data-json='")
    chart = json.loads(html.unescape(page.text[start : page.text.index("'", start)]))
    before, after = chart["series"]
    assert before["label"].startswith("Before: ") and after["label"].startswith("After: ")
    assert (sum(before["values"]), sum(after["values"])) == (3, 3)
    assert len(chart["x"]) == len(before["values"]) == len(after["values"]) == 12
    assert (
        refused.status_code == 200 and "Cannot backtest:" in refused.text and "no MQL stage" in refused.text
    )


def test_the_dashboards_backtest_shows_the_mql_threshold_as_the_model_writes_it(history: Store) -> None:
    # the draft asks for a score of 62.25 to qualify; the active plain model's MQL threshold is its hot band,
    # 60: the row read "62.2" (the one-decimal cut of a score) and "60.0"
    publish(history, scoring_model(lifecycle=False), as_of=END)
    with history.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(history.url), run_processor=False), history)
    draft = SCORING + LIFECYCLE.format(hysteresis=0, gate="").replace(
        "score_at_least: 60", "score_at_least: 62.25"
    )
    with serving(app) as url, signed_in(url, "marketing@example.test") as client:
        page = client.post("/model/backtest", data={"csrf_token": csrf_of(client), "draft": draft},
                           headers={"HX-Request": "true"})  # fmt: skip
    assert page.status_code == 200, page.text
    row = page.text[page.text.index('<th scope="row">MQL threshold</th>') :]
    assert row.startswith(
        '<th scope="row">MQL threshold</th><td class="num">62.25</td><td class="num">60</td>'
    )


def test_the_advisors_shortcut_replays_what_a_full_replay_does(history: Store) -> None:
    """The advisor replays a lead once per set of observed scores at or above the threshold; every
    threshold must count exactly what a replay of every lead counts."""
    model = scoring_model()
    with history.connect() as conn:
        rp = replay(conn, history.sources(), model, checkpoints(conn, T0, END), T0, END)
        out = Outcomes.load(conn, "opportunity", 3 * DAY_MS)
    memo: Memo = {}
    for threshold in range(0, 101):
        lifecycle = with_threshold(model, threshold)
        full = summarise(rp, out, "", lifecycle, threshold)
        short = summarise(rp, out, "", lifecycle, threshold, memo)
        assert (short.mqls, short.weekly, short.leads, short.already_mql) == (
            full.mqls,
            full.weekly,
            full.leads,
            full.already_mql,
        ), threshold
    assert 0 < len(memo) < 101 * len(rp.path)
