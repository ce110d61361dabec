"""Time is an input like events: the clock rescores leads whose score time alone changes (windows, decay
reaching a threshold), only those, with history rows of cause ``time``, and the lifecycle follows.

Every expected time and score here is worked out by hand from the model in the test."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring import clock
from leadscore.scoring.clock import tick
from leadscore.scoring.due import Decaying, decay_due, time_to_move
from leadscore.scoring.pipeline import active_models, ingest, publish
from leadscore.scoring.run import score_leads
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.people import find_lead
from leadscore.store.results import read_crossings, read_history
from leadscore.store.schema import scores

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
DAY = 86_400_000
HOUR = 3_600_000

QUIET = """
model: quiet
engagement:
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 40, window: 10d}
  - {id: webinar, name: Joined a webinar, kind: once, event: {type: track, name: Webinar Joined}, points: 40, window: 20d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
lifecycle:
  initial: lead
  hysteresis: 5
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: MQL}
    - {id: recycled, name: Recycled}
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 70}}
    - {id: cooled, from: [mql], to: lead, when: {score_below: 60}}
    - {id: went_cold, from: [lead], to: recycled, when: {band_in: [cold]}}
"""


def message(user: str, n: int, at: int, **fields: Any) -> Any:
    raw = {"userId": user, "messageId": f"{user}-{n}", "timestamp": at, **fields}
    return normalise(raw, received_ms=at)


def track(user: str, n: int, name: str, at: int) -> Any:
    return message(user, n, at, type="track", event=name)


def lead_of(store: Store, user: str) -> int:
    with store.connect() as conn:
        found = find_lead(conn, external_id=user)
    assert found is not None
    return found


def current(store: Store, lead_id: int) -> dict[str, Any]:
    with store.connect() as conn:
        return dict(conn.execute(select(scores).where(scores.c.lead_id == lead_id)).mappings().one())


def stage_path(store: Store, lead_id: int) -> list[tuple[str, int]]:
    with store.connect() as conn:
        return [(h["to_stage"], h["at_ms"]) for h in read_stage_history(conn, lead_id)]


def runner(store: Store, now: int) -> None:
    run_round(store, Settings(), now_ms=now, deliver=False)


def test_a_quiet_lead_goes_hot_warm_cold_by_time_alone(store: Store) -> None:
    publish(store, loads_model(QUIET), as_of=T0)
    ingest(
        store,
        [track("ann", 1, "Demo Requested", T0), track("ann", 2, "Webinar Joined", T0)],
        source="test",
        as_of=T0,
    )
    ann = lead_of(store, "ann")
    # 40 + 40 = 80 engagement points = score 80: hot. The demo leaves its 10-day window first.
    now = current(store, ann)
    assert (now["score"], now["band"], now["due_ms"]) == (80.0, "hot", T0 + 10 * DAY)
    runner(store, T0)
    assert stage_path(store, ann) == [("lead", T0), ("mql", T0)]

    assert tick(store, T0 + 10 * DAY - 1).leads == 0  # one millisecond early: not due
    assert current(store, ann)["band"] == "hot"

    at = T0 + 10 * DAY + 30_000  # the first tick after the demo left the window
    assert tick(store, at).leads == 1
    now = current(store, ann)
    # the webinar alone: 40, warm; next change when it leaves its 20-day window
    assert (now["score"], now["band"], now["due_ms"]) == (40.0, "warm", T0 + 20 * DAY)
    runner(store, at)
    # 40 < 60 − 5 (hysteresis): the MQL cools back to lead; 40 is warm, so not recycled yet
    assert stage_path(store, ann)[2:] == [("lead", at)]

    later = T0 + 20 * DAY + 45_000
    assert tick(store, later).leads == 1
    now = current(store, ann)
    assert (now["score"], now["band"], now["due_ms"]) == (0.0, "cold", None)  # nothing left to change
    runner(store, later)
    assert stage_path(store, ann)[3:] == [("recycled", later)]

    assert tick(store, T0 + 400 * DAY).leads == 0  # never due again
    with store.connect() as conn:
        history = read_history(conn, ann)
        crossings = read_crossings(conn, ann)
    timed = [(h["at_ms"], h["score"], h["band"], h["cause"]) for h in history if h["cause"] == "time"]
    assert timed == [(at, 40.0, "warm", "time"), (later, 0.0, "cold", "time")]
    moved = [c for c in crossings if c["from_value"] is not None]  # (the first score's are its start)
    assert [(c["kind"], c["from_value"], c["to_value"], c["at_ms"]) for c in moved] == [
        ("band", "hot", "warm", at),
        ("level", "1", "3", at),  # engagement 80 is level 1 (≥ 75), 40 level 3 (25 ≤ 40 < 50)
        ("band", "warm", "cold", later),
        ("level", "3", "4", later),
    ]


WINDOWS = """
model: windows
engagement:
  - {id: burst, name: Three pages in three days, kind: threshold, event: {type: page}, where: {property: path, prefix: /docs}, at_least: 2, within: 3d, points: 10}
  - {id: trial, name: Started a trial, kind: once, event: {type: track, name: Trial Started}, window: 7d, points: 20}
  - {id: webinar, name: Webinar, event: {type: track, name: Webinar Joined}, points: 5}
"""


def test_next_change_is_the_next_window_exit_or_entry(store: Store) -> None:
    publish(store, loads_model(WINDOWS), as_of=T0)
    page = {"type": "page"}
    messages = [
        message("ann", 1, T0 - 2 * DAY, **page, properties={"path": "/docs/a"}),  # leaves burst at T0 + 1d
        message("ann", 2, T0 - 1 * DAY, **page, properties={"path": "/docs/b"}),  # leaves at T0 + 2d
        message("ann", 3, T0 - 2 * DAY - HOUR, **page, properties={"path": "/blog"}),  # no rule's
        track("ann", 4, "Trial Started", T0 - 5 * DAY),  # leaves the 7-day window at T0 + 2d
        track("bob", 5, "Trial Started", T0 - 6 * DAY - 12 * HOUR),  # leaves at T0 + 12h
        track("bob", 6, "Webinar Joined", T0 + 3 * HOUR),  # dated after as-of: enters then
        track("cid", 7, "Webinar Joined", T0 - 30 * DAY),  # no window, no decay: never changes
        track("dan", 8, "Trial Started", T0 + 5 * DAY),  # enters at T0 + 5d
    ]
    ingest(store, messages, source="test", as_of=T0)
    due = {user: current(store, lead_of(store, user))["due_ms"] for user in ("ann", "bob", "cid", "dan")}
    assert due == {"ann": T0 + DAY, "bob": T0 + 3 * HOUR, "cid": None, "dan": T0 + 5 * DAY}


def test_a_tick_rescores_only_the_due_leads(store: Store) -> None:
    publish(store, loads_model(WINDOWS), as_of=T0)
    messages = [
        # trials leaving the 7-day window at T0 + 1d, + 2d, + 3d, + 4d, + 5d
        *(track(f"u{n}", n, "Trial Started", T0 - (6 - n) * DAY) for n in range(5)),
        track("v", 9, "Webinar Joined", T0 - DAY),  # never due
    ]
    ingest(store, messages, source="test", as_of=T0)
    stats = tick(store, T0 + 2 * DAY + HOUR)  # u0 and u1 are due
    assert (stats.leads, stats.history_rows) == (2, 2)
    assert current(store, lead_of(store, "u0"))["score"] == 0.0
    assert current(store, lead_of(store, "u2"))["score"] == 10.0  # 20 points = 20 % of 100, weighted ½
    assert tick(store, T0 + 2 * DAY + HOUR).leads == 0  # the same time again: nothing left due
    assert tick(store, T0 + 10 * DAY).leads == 3


DECAY = """
model: decay
engagement:
  - {id: visit, name: Visited, event: {type: page}, points: 60, half_life: 10d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
"""


def test_decay_is_due_when_the_score_reaches_a_boundary(store: Store) -> None:
    model = loads_model(DECAY)
    publish(store, model, as_of=T0)
    ingest(store, [message("ann", 1, T0, type="page", properties={"path": "/"})], source="test", as_of=T0)
    ann = lead_of(store, "ann")
    with store.connect() as conn:
        (ledger,) = score_leads(conn, model, store.sources(), [ann], T0)
    # score = engagement score = 60 (warm, level 2). 60 × 0.5^(dt / 10d) = 59 (one point of drift, the
    # default tolerance) comes first: dt = 10d × log2(60 / 59)
    assert current(store, ann)["due_ms"] == T0 + math.floor(10 * DAY * math.log2(60 / 59))
    # without the drift tolerance: level 3 below 50, 60 × 0.5^(dt / 10d) = 50, dt = 10d × log2(6 / 5)
    assert decay_due(model, ledger, tolerance=100) == T0 + math.floor(10 * DAY * math.log2(6 / 5))
    # cold below 40: the score kept to a millionth is below 40 once 60 × 0.5^(dt / 10d) < 40 − 0.5e-6 (half
    # a millionth under it), dt = 10d × log2(60 / (40 − 0.5e-6)), 16 ms after the exact 40 at 10d × log2(3 / 2)
    crossing = T0 + math.floor(10 * DAY * math.log2(60 / (40 - 0.5e-6)))
    assert tick(store, crossing - HOUR).leads == 1  # the drift made it due; still warm
    assert current(store, ann)["band"] == "warm"
    assert current(store, ann)["due_ms"] <= crossing
    for at in range(crossing - HOUR + 60_000, crossing + 120_000, 60_000):  # ticks a minute apart
        tick(store, at)
    now = current(store, ann)
    assert now["band"] == "cold" and now["as_of_ms"] <= crossing + 60_000


def test_time_to_move_with_several_half_lives_and_caps() -> None:
    # after 20 days: 30 × (1 − ¼) + 20 × (1 − ½) = 32.5
    terms = [Decaying(10 * DAY, 30.0, 30.0), Decaying(20 * DAY, 20.0, 20.0)]
    assert time_to_move(terms, 32.5) == pytest.approx(20 * DAY, abs=1000)
    assert time_to_move(terms, 32.5) <= 20 * DAY  # never later than the exact time
    assert time_to_move(terms, 50.0) is None  # all of it never decays away
    assert time_to_move(terms[:1], 15.0) == pytest.approx(10 * DAY)  # one half-life halves it
    # a rule of 40 raw points held at its cap of 10 moves only once 40 × 0.5^(t / 10d) < 10, after 20
    # days; 5 points more: 40 × 0.5^(t / 10d) = 5 after 30 days
    capped = [Decaying(10 * DAY, 10.0, 40.0)]
    assert time_to_move(capped, 5.0) == pytest.approx(30 * DAY, abs=1000)
    assert time_to_move(capped, 1e-9) == pytest.approx(20 * DAY, abs=1000)


def test_a_score_held_at_the_clamp_is_not_due_until_decay_brings_it_below() -> None:
    model = loads_model("""
model: clamp
engagement:
  - {id: visit, name: Visited, event: {type: page}, points: 150, half_life: 10d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 100, warm: 40}}
""")
    from leadscore.compile import Ledger, LedgerLine

    lines = (
        LedgerLine("visit", "Visited", "engagement", "each", 150.0, 150.0, raw=150.0, matched=1, decay=1.0),
        LedgerLine("clamp:engagement", "Clamp", "engagement", "clamp", -50.0, -50.0),
    )
    ledger = Ledger(1, T0, 100.0, 0.0, 100.0, 0.0, 100.0, "D", 1, "hot", lines)
    # the score sits exactly at the hot threshold (100), yet is not due at once: it leaves it when
    # 150 × 0.5^(t / 10d) falls below the clamp at 100, t = 10d × log2(150 / 100)
    assert decay_due(model, ledger) == T0 + math.floor(10 * DAY * math.log2(150 / 100))


def test_serve_runs_the_clock(store: Store) -> None:
    """`leadscore serve` (the app's lifespan) ticks on its own: a demo leaves its window two seconds after
    the server starts, and the stored band follows without any event."""
    from leadscore.api.app import create_app
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings
    from live_server import serving
    from receivers import wait_for

    start = now_ms()
    publish(store, loads_model(QUIET), as_of=start)
    demo = track("ann", 1, "Demo Requested", start - 10 * DAY + 2_000)
    ingest(store, [demo, track("ann", 2, "Webinar Joined", start)], source="test")
    ann = lead_of(store, "ann")
    assert current(store, ann)["band"] == "hot"
    settings = Settings(database_url=str(store.url), clock_tick_s=0.2)
    with serving(create_app(settings, store)):
        wait_for(lambda: current(store, ann)["band"] == "warm", timeout=20)
    with store.connect() as conn:
        assert [h["cause"] for h in read_history(conn, ann)][-1] == "time"


def test_the_tick_command(sqlite_store: Store) -> None:
    from typer.testing import CliRunner

    from leadscore.cli.main import app

    publish(sqlite_store, loads_model(QUIET), as_of=T0)
    ingest(sqlite_store, [track("ann", 1, "Demo Requested", T0)], source="test", as_of=T0)
    db = str(sqlite_store.url).removeprefix("sqlite:///")
    early = CliRunner().invoke(app, ["tick", "--now", "2024-05-05T00:00:00Z", "--db", db])
    assert early.exit_code == 0 and "0 leads rescored" in early.output, early.output
    due = CliRunner().invoke(app, ["tick", "--now", "2024-05-12T00:00:00Z", "--db", db])
    assert "1 leads rescored, 1 history rows" in due.output, due.output  # the demo left its 10-day window
    assert current(sqlite_store, lead_of(sqlite_store, "ann"))["score"] == 0.0


NEW_KINDS = """
model: new_kinds
engagement:
  - {id: pricing_days, name: Pricing on 2+ days in 14 days, kind: threshold, event: {type: page}, where: {property: path, prefix: /pricing}, count: {distinct: day}, at_least: 2, within: 14d, points: 10}
  - {id: growth, name: More trials than the week before, kind: ratio, event: {type: track, name: Trial Used}, within: 7d, at_least: 2, points: 10}
  - {id: recent_demo, name: Demo lately, kind: recency, event: {type: track, name: Demo Requested}, steps: [{within: 3d, points: 20}, {within: 10d, points: 5}]}
  - {id: committee, name: 2+ colleagues on docs, kind: threshold, scope: account, event: {type: page}, where: {property: path, prefix: /docs}, count: {distinct: person}, at_least: 2, within: 5d, points: 15}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
"""


def test_next_change_covers_ratio_recency_distinct_and_account_rules(store: Store) -> None:
    """Hand-computed: a ratio rule's event moves to the window before at ts + 7d and out at ts + 14d; a
    recency step ends at ts + 3d (then ts + 10d); a distinct-day threshold's event leaves at ts + 14d; an
    account rule's colleague event leaves the lead's window at ts + 5d."""
    publish(store, loads_model(NEW_KINDS), as_of=T0)
    page = {"type": "page"}
    messages = [
        # ann: a trial used 6 days ago (into the window before at T0 + 1d), a pricing view 13d 12h ago
        track("ann", 1, "Trial Used", T0 - 6 * DAY),
        message("ann", 2, T0 - 13 * DAY - 12 * HOUR, **page, properties={"path": "/pricing"}),
        # bob: a demo 2 days and 20 hours ago: the 3-day step ends at T0 + 4h
        track("bob", 3, "Demo Requested", T0 - 2 * DAY - 20 * HOUR),
        # cid: a trial used 10 days ago (leaves both windows at T0 + 4d), a demo 9 days ago (T0 + 1d)
        track("cid", 4, "Trial Used", T0 - 10 * DAY),
        track("cid", 5, "Demo Requested", T0 - 9 * DAY),
    ]
    ingest(store, messages, source="test", as_of=T0)
    # dee and eve of one account; eve read the docs 4 days and 22 hours ago: out of dee's window at T0 + 2h
    acme = {"groupId": "acme"}
    ingest(
        store,
        [
            message("dee", 6, T0 - 30 * DAY, type="group", **acme),
            message("eve", 7, T0 - 30 * DAY, type="group", **acme),
            message("eve", 8, T0 - 4 * DAY - 22 * HOUR, **page, properties={"path": "/docs/x"}),
        ],
        source="test",
        as_of=T0,
    )
    due = {u: current(store, lead_of(store, u))["due_ms"] for u in ("ann", "bob", "cid", "dee", "eve")}
    assert due == {
        "ann": T0 + 12 * HOUR,  # the pricing view leaves its 14 days before the trial moves (T0 + 1d)
        "bob": T0 + 4 * HOUR,
        "cid": T0 + DAY,
        "dee": T0 + 2 * HOUR,
        "eve": T0 + 2 * HOUR,
    }


def test_a_tick_never_saves_the_scores_of_a_version_published_meanwhile(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The clock reads the active models, then rescores each score's due leads in transactions of their
    own: a version published in between has rescored every lead itself, and the tick must not save the
    replaced version's scores over it (SQLite and PostgreSQL alike)."""
    publish(store, loads_model(QUIET), as_of=T0)
    ingest(store, [track("ann", 1, "Demo Requested", T0)], source="test", as_of=T0)
    ann = lead_of(store, "ann")
    with store.connect() as conn:
        stale = active_models(conn)  # what the tick read, before the publication below
    second, _ = publish(store, loads_model(QUIET.replace("model: quiet", "model: quieter")), as_of=T0 + DAY)
    # the second version scored ann as of T0 + 1 day: the demo (T0) leaves its 10-day window at T0 + 10 days
    assert (current(store, ann)["model_version_id"], current(store, ann)["due_ms"]) == (
        second.id,
        T0 + 10 * DAY,
    )
    monkeypatch.setattr(clock, "active_models", lambda conn: stale)
    tick(store, now=T0 + 11 * DAY)  # ann is due; the tick's version is no longer active
    row = current(store, ann)
    assert (row["model_version_id"], row["as_of_ms"]) == (second.id, T0 + DAY)
    monkeypatch.undo()
    tick(store, now=T0 + 11 * DAY)  # the next tick reads the second version: the demo has left its window
    row = current(store, ann)
    assert (row["model_version_id"], row["as_of_ms"], row["engagement_score"]) == (
        second.id,
        T0 + 11 * DAY,
        0,
    )


GATED_CORE = """
model: core
engagement:
  - {id: visit, name: Visited, event: {type: page}, points: 60, half_life: 10d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
lifecycle:
  initial: lead
  hysteresis: 0.5
  stages:
    - {id: lead, name: Lead}
    - {id: mql_analytics, name: MQL for the analytics team}
  transitions:
    - {id: analytics_mql, from: [lead], to: mql_analytics, when: {score: analytics, score_at_least: 59.75}}
    - {id: analytics_cooled, from: [mql_analytics], to: lead, when: {score: analytics, score_below: 60}}
"""
GATED_ANALYTICS = """
model: analytics
engagement:
  - {id: demo, name: Requested a demo, event: {type: track, name: Demo Requested}, points: 60, half_life: 10d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
"""


def test_a_named_score_is_due_at_the_thresholds_of_the_gates_that_test_it(store: Store) -> None:
    """The lifecycle (the primary's) tests the analytics score at 59.75 and below 60 − 0.5: those are the
    analytics score's boundaries, not the primary's. Each score is 60 at T0 and decays with 10 days'
    half-life: 60 × 0.5^(dt / 10d) = b at dt = 10d × log2(60 / b)."""
    publish(store, loads_model(GATED_CORE), score_name="core", as_of=T0)
    publish(store, loads_model(GATED_ANALYTICS), score_name="analytics", as_of=T0)
    ingest(
        store,
        [message("ann", 1, T0, type="page", properties={"path": "/"}), track("ann", 2, "Demo Requested", T0)],
        source="test",
        as_of=T0,
    )
    ann = lead_of(store, "ann")
    with store.connect() as conn:
        rows = conn.execute(
            select(scores.c.score_name, scores.c.score, scores.c.due_ms).where(scores.c.lead_id == ann)
        )
        stored = {name: (score, due) for name, score, due in rows}
    # analytics: the gate at 59.75 first (then 59.5, then 59 of the one-point drift)
    # core: no gate tests it; its one-point drift (59) comes before its bands (40, 70) and levels (50, 75)
    assert stored == {
        "analytics": (60.0, T0 + math.floor(10 * DAY * math.log2(60 / 59.75))),
        "core": (60.0, T0 + math.floor(10 * DAY * math.log2(60 / 59))),
    }


CAPPED = """
model: capped
engagement:
  - {id: visit, name: Visited, event: {type: page}, points: 10, cap: 50, half_life: 10d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 40}}
"""


def test_a_score_on_a_boundary_held_by_a_cap_is_due_when_the_cap_lets_it_move(store: Store) -> None:
    """Ten visits at T0: 100 raw points capped at 50, score and engagement score exactly 50 (the level-2
    threshold). Nothing moves until 100 × 0.5^(t / 10d) falls below the cap of 50, at t = 10 days; a
    due time of T0 would have every tick rescore the lead, unchanged, for those ten days."""
    publish(store, loads_model(CAPPED), as_of=T0)
    visits = [message("ann", n, T0, type="page", properties={"path": f"/{n}"}) for n in range(10)]
    ingest(store, visits, source="test", as_of=T0)
    ann = lead_of(store, "ann")
    now = current(store, ann)
    assert (now["score"], now["level"]) == (50.0, 2)
    # the search stops within PRECISION_MS (one second) before the exact time, never after it
    assert T0 + 10 * DAY - 1000 <= now["due_ms"] <= T0 + 10 * DAY
    assert tick(store, T0 + 60_000).leads == 0
    assert tick(store, T0 + 9 * DAY).leads == 0


def test_rescoring_every_lead_records_the_moves_the_clock_would(store: Store) -> None:
    """``leadscore score`` (``pipeline.rescore_all``) writes a history row where a score moved, as the
    clock does for the same move (cause ``time``): the current score and the history's newest row (the
    lead page's and the API's ``score`` and ``history``, ``getting_warmer``'s score then) agree. ann
    requested a demo and joined a webinar at T0 + 1 h: 40 + 40 = 80. 15 days on the demo's 10-day window
    has closed: 40. Before, the scores table read 40 while the history ended at 80."""
    from leadscore.scoring.pipeline import rescore_all
    from leadscore.store.results import read_current

    publish(store, loads_model(QUIET), as_of=T0)
    at = T0 + HOUR
    ingest(
        store,
        [track("ann", 1, "Demo Requested", at), track("ann", 2, "Webinar Joined", at)],
        source="test",
        as_of=at,
    )
    rescore_all(store, as_of=T0 + 15 * DAY)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id="ann")
        assert lead_id is not None
        current, _ = read_current(conn, lead_id)
        rows = read_history(conn, lead_id)
    assert current is not None and current["score"] == 40.0
    assert [(r["at_ms"], r["score"], r["band"], r["cause"]) for r in rows][-2:] == [
        (at, 80.0, "hot", "event"),
        (T0 + 15 * DAY, 40.0, "warm", "time"),
    ]
    # rescoring again at the same time moves nothing: no row more
    rescore_all(store, as_of=T0 + 15 * DAY)
    with store.connect() as conn:
        assert len(read_history(conn, lead_id)) == len(rows)


def test_a_batch_run_into_the_store_saves_as_rescoring_every_lead_does(store: Store) -> None:
    """``leadscore batch score --out store`` saves the current scores as ``leadscore score`` does: with when
    each is next due (the clock rescores the lead then) and a history row where a score moved. ann (demo
    and webinar at T0 + 1 h: 80) is scored as of T0 + 5 days: still 80, next due when the demo's 10-day
    window closes, T0 + 1 h + 10 days. As of T0 + 15 days: 40 (warm), a history row of cause ``time``,
    next due at T0 + 1 h + 20 days. Before, the batch saved the score with no due time (the clock never
    rescored the lead again) and no history row (the history ended at 80 while the score read 40)."""
    from typer.testing import CliRunner

    from leadscore.cli.main import app as cli
    from leadscore.store.results import read_current

    publish(store, loads_model(QUIET), as_of=T0)
    at = T0 + HOUR
    ingest(
        store,
        [track("ann", 1, "Demo Requested", at), track("ann", 2, "Webinar Joined", at)],
        source="test",
        as_of=at,
    )
    engine = "postgres" if store.dialect == "postgresql" else "sqlite"
    base = ["batch", "score", "--engine", engine, "--db", str(store.url), "--events", "store", "--leads", "store",
            "--model", "active", "--out", "store"]  # fmt: skip
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id="ann")
    assert lead_id is not None
    due = select(scores.c.due_ms).where(scores.c.lead_id == lead_id)
    found = []
    for days in (5, 15):
        result = CliRunner().invoke(cli, [*base, "--as-of", f"2024-05-{1 + days:02d}T00:00:00Z"])
        assert result.exit_code == 0, result.output
        with store.connect() as conn:
            current, _ = read_current(conn, lead_id)
            assert current is not None
            found.append((current["score"], conn.execute(due).scalar_one()))
            rows = read_history(conn, lead_id)

    assert found == [(80.0, at + 10 * DAY), (40.0, at + 20 * DAY)]
    assert [(r["at_ms"], r["score"], r["cause"]) for r in rows][-2:] == [
        (at, 80.0, "event"),
        (T0 + 15 * DAY, 40.0, "time"),
    ]
