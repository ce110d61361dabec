"""Several models scored together in one statement (``compile/composite.py``) give exactly what each gives
alone: the same scores, ledgers and history, on SQLite and PostgreSQL.

The three models below score the same events differently (two of them have a rule ``demo`` of different
kinds and points). Scale: the default (fit and engagement weighted ½ each, 100 raw points = 100; bands
hot ≥ 70, warm ≥ 40; grades A ≥ 75, B ≥ 50, C ≥ 25; levels 1 ≥ 75, 2 ≥ 50, 3 ≥ 25); no decay. Every case
of tests/cases is also scored beside two other cases' models and must give its hand-computed ledger.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import sqlite

from case_runner import Case, compare, load_case, run_case
from leadscore.compile import Ledger
from leadscore.compile.composite import compile_models
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import ScoringModel, loads_model
from leadscore.scoring.due import schedule, schedule_models
from leadscore.scoring.pipeline import ingest, publish, rescore_all
from leadscore.scoring.run import all_leads, score, score_models, score_points, score_points_models
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import NamedResults, read_current, read_history, save_current_scores

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
HOUR = 3_600_000
AS_OF = T0 + 6 * HOUR

CORE = """
model: core
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 60}
engagement:
  - {id: demo, name: Requested a demo, kind: once, event: {type: track, name: Demo Requested}, points: 40}
  - {id: docs, name: Read the docs, event: {type: page}, where: {property: path, prefix: /docs}, points: 5}
"""

ANALYTICS = """
model: analytics
fit:
  - {id: analyst, name: Analyst role, when: {attribute: job_title, contains: analyst}, points: 80}
engagement:
  - {id: report, name: Built a report, event: {type: track, name: Report Built}, points: 30, cap: 50}
  - {id: demo, name: Each demo request, event: {type: track, name: Demo Requested}, points: 10}
"""

PARTNERS = """
model: partners
fit:
  - {id: sales, name: Sales role, when: {attribute: job_title, contains: sales}, points: 40}
engagement:
  - id: demo
    name: Two demo requests in a month
    kind: threshold
    event: {type: track, name: Demo Requested}
    at_least: 2
    within: 30d
    points: 70
"""

NAMES = ("core", "analytics", "partners")

# (score, fit_score, engagement_score, grade, level, band), as of T0 + 6 h
EXPECTED = {
    # ann, a marketing analyst: one demo request, two reports, one docs page
    # core: fit 60 (B); engagement demo 40 + docs 5 = 45 (level 3); score ½·60 + ½·45 = 52.5 (warm)
    ("ann", "core"): (52.5, 60.0, 45.0, "B", 3, "warm"),
    # analytics: fit 80 (A); reports 2 × 30 = 60 capped at 50, demo 1 × 10: 60 (level 2); ½·80 + ½·60 = 70
    ("ann", "analytics"): (70.0, 80.0, 60.0, "A", 2, "hot"),
    # partners: no sales role, one demo request of the two needed: 0
    ("ann", "partners"): (0.0, 0.0, 0.0, "D", 4, "cold"),
    # bob, in sales: two demo requests
    # core: fit 0; demo once 40 (level 3); score 20 (cold)
    ("bob", "core"): (20.0, 0.0, 40.0, "D", 3, "cold"),
    # analytics: fit 0; demo 2 × 10 = 20 (level 4); score 10 (cold)
    ("bob", "analytics"): (10.0, 0.0, 20.0, "D", 4, "cold"),
    # partners: fit 40 (C); two requests within 30 days: 70 (level 2); ½·40 + ½·70 = 55 (warm)
    ("bob", "partners"): (55.0, 40.0, 70.0, "C", 2, "warm"),
}


def message(user: str, n: int, at: int, **fields: Any) -> Any:
    return normalise({"userId": user, "messageId": f"{user}-{n}", "timestamp": at, **fields}, received_ms=at)


def events() -> list[Any]:
    return [
        message("ann", 0, T0, type="identify", traits={"job_title": "Marketing Analyst"}),
        message("ann", 1, T0 + HOUR, type="track", event="Demo Requested"),
        message("ann", 2, T0 + 2 * HOUR, type="track", event="Report Built"),
        message("ann", 3, T0 + 3 * HOUR, type="track", event="Report Built"),
        message("ann", 4, T0 + 4 * HOUR, type="page", name="Docs", properties={"path": "/docs/start"}),
        message("bob", 0, T0, type="identify", traits={"job_title": "Sales"}),
        message("bob", 1, T0 + HOUR, type="track", event="Demo Requested"),
        message("bob", 2, T0 + 5 * HOUR, type="track", event="Demo Requested"),
    ]


def models() -> list[ScoringModel]:
    return [loads_model(text) for text in (CORE, ANALYTICS, PARTNERS)]


def numbers(x: Ledger | dict[str, Any]) -> tuple[Any, ...]:
    keys = ("score", "fit_score", "engagement_score", "grade", "level", "band")
    if isinstance(x, Ledger):
        return tuple(getattr(x, k) for k in keys)
    return tuple(x[k] for k in keys)


def by_lead(ledgers: list[Ledger]) -> list[Ledger]:
    return sorted(ledgers, key=lambda lg: (lg.lead_id, lg.as_of))


def three_scores(store: Store) -> dict[str, int]:
    """The three models published under their names, the events ingested (each batch rescores every
    active model in one statement); user → lead id."""
    for name, model in zip(NAMES, models(), strict=True):
        publish(store, model, score_name=name, as_of=T0)
    ingest(store, events()[:5], source="test", as_of=T0 + 4 * HOUR)
    ingest(store, events()[5:], source="test", as_of=AS_OF)
    with store.connect() as conn:
        found = {user: find_lead(conn, external_id=user) for user in ("ann", "bob")}
    assert all(lead is not None for lead in found.values())
    return {user: int(lead) for user, lead in found.items() if lead is not None}


def test_three_models_scored_together_give_the_hand_computed_numbers(store: Store) -> None:
    leads = three_scores(store)
    with store.connect() as conn:
        together = score_models(conn, models(), store.sources(), all_leads(AS_OF))
    by_lead = {leads[user]: user for user in leads}
    got = {
        (by_lead[lg.lead_id], name): numbers(lg)
        for name, ledgers in zip(NAMES, together, strict=True)
        for lg in ledgers
    }
    assert got == EXPECTED
    # ann's analytics ledger: the report line capped at 50 from 60, the demo line (an 'each' rule here,
    # a 'once' rule in core) one request of 10
    ann = next(lg for lg in together[1] if lg.lead_id == leads["ann"])
    lines = {line.rule_id: (line.kind, line.value, line.raw, line.matched, line.capped) for line in ann.lines}
    assert lines["report"] == ("each", 50.0, 60.0, 2, True)
    assert lines["demo"] == ("each", 10.0, 10.0, 1, False)
    assert lines["analyst"] == ("fit", 80.0, 80.0, 1, False)


def test_each_model_together_gives_what_it_gives_alone(store: Store) -> None:
    three_scores(store)
    with store.connect() as conn:
        sources = store.sources()
        together = score_models(conn, models(), sources, all_leads(AS_OF))
        alone = [score(conn, model, sources, all_leads(AS_OF)) for model in models()]
        assert [by_lead(x) for x in together] == [by_lead(x) for x in alone]
        # when each score is next due: bob's partners score when his first request leaves its 30 days
        due = schedule_models(conn, models(), sources, together)
        assert due == [
            schedule(conn, model, sources, ledgers) for model, ledgers in zip(models(), alone, strict=True)
        ]
        bob = next(lg.lead_id for lg in alone[2] if lg.score == 55.0)
        assert due[2][bob] == T0 + HOUR + 30 * 24 * HOUR
        # at earlier times too (bound targets, several points per lead), with and without ledger lines
        pairs = [(lg.lead_id, at) for lg in alone[0] for at in (T0 + HOUR, T0 + 3 * HOUR, AS_OF)]
        points_alone = [score_points(conn, model, sources, pairs) for model in models()]
        assert score_points_models(conn, models(), sources, pairs) == points_alone
        totals = score_points_models(conn, models(), sources, pairs, explain=False)
    for got, want in zip(totals, points_alone, strict=True):
        assert [(t.lead_id, t.as_of, *numbers(t)) for t in got] == [
            (w.lead_id, w.as_of, *numbers(w)) for w in want
        ]
        assert all(t.lines == () for t in got)


def test_stored_scores_and_history_of_every_name(store: Store) -> None:
    """The processor's path (``ingest``: one statement for the three models per batch, their history
    replayed together) and full rescoring store the hand-computed numbers under each name."""
    leads = three_scores(store)
    for rescored in (False, True):
        if rescored:
            rescore_all(store, as_of=AS_OF)
        with store.connect() as conn:
            for (user, name), want in EXPECTED.items():
                row, _ = read_current(conn, leads[user], name)
                assert row is not None
                assert numbers(row) == want, (user, name, rescored)
    with store.connect() as conn:
        history = {
            (user, name): [(r["cause"], r["score"]) for r in read_history(conn, leads[user], name)]
            for user in ("ann", "bob")
            for name in NAMES
        }
    # every lead's history starts just before its first event (the identify: no job title known yet);
    # then a row at each event time where the score moved
    # bob, partners: identify (fit 40: 20), first request (1 of 2: unchanged), second (70: ½·40 + ½·70 = 55)
    assert history["bob", "partners"] == [("created", 0.0), ("event", 20.0), ("event", 55.0)]
    # bob, core: identify (Sales: no fit), first request (once, 40: 20), second (once: unchanged)
    assert history["bob", "core"] == [("created", 0.0), ("event", 20.0)]
    # bob, analytics: first request (10: 5), second (20: 10)
    assert history["bob", "analytics"] == [("created", 0.0), ("event", 5.0), ("event", 10.0)]
    # ann, analytics: identify (fit 80: 40), demo (10: 45), report (40: 60), report (60 capped at 50: 70),
    # docs page (unchanged)
    assert history["ann", "analytics"] == [
        ("created", 0.0),
        ("event", 40.0),
        ("event", 45.0),
        ("event", 60.0),
        ("event", 70.0),
    ]
    # ann, core: identify (fit 60: 30), demo (40: 50), reports (unchanged), docs page (45: 52.5)
    assert history["ann", "core"] == [("created", 0.0), ("event", 30.0), ("event", 50.0), ("event", 52.5)]
    # ann, partners: nothing moves it from 0
    assert history["ann", "partners"] == [("created", 0.0)]


CASES = [load_case(path) for path in sorted((Path(__file__).resolve().parent / "cases").glob("*.yaml"))]


@pytest.mark.parametrize("i", range(len(CASES)), ids=[c.name.removesuffix(".yaml") for c in CASES])
def test_every_case_beside_two_other_models(store: Store, i: int) -> None:
    """Each hand-computed case scored in one statement with two other cases' models and its own model
    again under another name (every aggregate and lead value of that one read from the case model's,
    ``compile/composite.py``): its own ledgers as the case expects them, and every model's ledgers as it
    gives them alone."""
    case: Case = CASES[i]
    neighbours = [CASES[(i + 1) % len(CASES)].model, CASES[(i + 7) % len(CASES)].model]
    alone = run_case(store, case)
    twin = case.model.model_copy(update={"model": f"{case.model.model}-twin"})
    group = [neighbours[0], case.model, neighbours[1], twin]
    with store.connect() as conn:
        together = score_models(conn, group, store.sources(), all_leads(case.as_of))
        assert sorted(together[1], key=lambda lg: lg.lead_id) == sorted(
            alone.values(), key=lambda lg: lg.lead_id
        )
        for model, got in zip(group, together, strict=True):
            # in any order: neither statement orders its rows (the engine's plan does)
            assert by_lead(got) == by_lead(score(conn, model, store.sources(), all_leads(case.as_of))), (
                model.model
            )
        due = schedule_models(conn, group, store.sources(), together)
        for model, when, ledgers in zip(group, due, together, strict=True):
            assert when == schedule(conn, model, store.sources(), ledgers), model.model
    by_id = {lg.lead_id: user for user, lg in alone.items()}
    for ledger in together[1]:
        user = by_id[ledger.lead_id]
        if user in case.expect:
            assert not compare(ledger, case.expect[user], tolerant=case.decays), user


def test_saving_several_scores_refuses_results_of_different_leads(store: Store) -> None:
    """One delete covers every score of the leads: a score without a lead's result would lose its row."""
    leads = three_scores(store)
    with store.connect() as conn:
        core, analytics = score_models(conn, models()[:2], store.sources(), all_leads(AS_OF))
    only_ann = [lg for lg in analytics if lg.lead_id == leads["ann"]]
    with store.begin() as conn, pytest.raises(ValueError, match="different leads"):
        save_current_scores(
            conn, [NamedResults("core", 1, core), NamedResults("analytics", 2, only_ann)], scored_ms=AS_OF
        )


def test_two_models_with_the_same_account_rules_keep_their_own_consent(store: Store) -> None:
    """The buying-committee case (tests/cases/account-committee.yaml: account-scope rule ``committee`` and
    lead rule ``pricing``) beside the same rules under ``tracking_consent: required``. No lead of the case
    has ``consent_tracking: true``, so under ``required`` no one's events count, a colleague's included:
    every score 0. Scored together, the case's own model still gives its hand-computed ledgers (the
    colleagues of acme count for it), and each model gives what it gives alone."""
    case = next(c for c in CASES if c.name == "account-committee.yaml")
    strict = case.model.model_copy(
        update={"privacy": case.model.privacy.model_copy(update={"tracking_consent": "required"})}
    )
    alone = run_case(store, case)
    with store.connect() as conn:
        assumed, required = score_models(conn, [case.model, strict], store.sources(), all_leads(case.as_of))
        assert [lg.score for lg in required] == [0.0] * len(alone)
        assert by_lead(assumed) == by_lead(score(conn, case.model, store.sources(), all_leads(case.as_of)))
        assert by_lead(required) == by_lead(score(conn, strict, store.sources(), all_leads(case.as_of)))
    by_id = {lg.lead_id: user for user, lg in alone.items()}
    for ledger in assumed:
        user = by_id[ledger.lead_id]
        if user in case.expect:
            assert not compare(ledger, case.expect[user], tolerant=case.decays), user


# Two models with some rules alike: X's ``pricing`` and Y's ``price_page`` (both 'once' on /pricing, other
# points: one aggregate, the latest visit), X's ``docs`` and Y's ``docs_again`` (both 5 a docs page: one
# sum, Y's capped at 8); Y's ``docs2`` counts the same pages at 10 each (another sum) and ``report`` is its
# own. Both have a rule ``key_page`` on the list ``key_pages``, of other values in each (not shared), and
# the fit rule ``marketing`` alike (one lead value).
SHARING_X = """
model: x
lists: {key_pages: {values: [/pricing]}}
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 40}
engagement:
  - {id: pricing, name: Pricing, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 20}
  - {id: docs, name: Docs, event: {type: page}, where: {property: path, prefix: /docs}, points: 5, cap: 20}
  - {id: key_page, name: A key page, kind: once, event: {type: page}, where: {property: path, in_list: key_pages}, points: 10}
"""

SHARING_Y = """
model: y
lists: {key_pages: {values: [/security]}}
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 40}
  - {id: analyst, name: Analyst role, when: {attribute: job_title, contains: analyst}, points: 60}
engagement:
  - {id: price_page, name: Pricing page, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 30}
  - {id: docs2, name: Docs at 10, event: {type: page}, where: {property: path, prefix: /docs}, points: 10}
  - {id: docs_again, name: Docs at 5, event: {type: page}, where: {property: path, prefix: /docs}, points: 5, cap: 8}
  - {id: report, name: Built a report, event: {type: track, name: Report Built}, points: 15}
  - {id: key_page, name: A key page, kind: once, event: {type: page}, where: {property: path, in_list: key_pages}, points: 10}
"""


def sharing_events() -> list[Any]:
    return [
        message("cat", 0, T0, type="identify", traits={"job_title": "Marketing Analyst"}),
        message("cat", 1, T0 + HOUR, type="page", name="Pricing", properties={"path": "/pricing"}),
        message("cat", 2, T0 + 2 * HOUR, type="page", name="Docs", properties={"path": "/docs/a"}),
        message("cat", 3, T0 + 3 * HOUR, type="page", name="Docs", properties={"path": "/docs/b"}),
        message("cat", 4, T0 + 4 * HOUR, type="track", event="Report Built"),
    ]


def test_two_models_sharing_some_rules_give_the_hand_computed_numbers(store: Store) -> None:
    x, y = loads_model(SHARING_X), loads_model(SHARING_Y)
    publish(store, x, as_of=T0)
    ingest(store, sharing_events(), source="test", as_of=AS_OF)
    with store.connect() as conn:
        got_x, got_y = score_models(conn, [x, y], store.sources(), all_leads(AS_OF))
        assert by_lead(got_x) == by_lead(score(conn, x, store.sources(), all_leads(AS_OF)))
        assert by_lead(got_y) == by_lead(score(conn, y, store.sources(), all_leads(AS_OF)))
    (cat_x,), (cat_y,) = got_x, got_y
    # x: fit 40 (C); pricing 20 + docs 2 x 5 + key page (/pricing) 10 = 40 (level 3); ½·40 + ½·40 = 40 (warm)
    assert numbers(cat_x) == (40.0, 40.0, 40.0, "C", 3, "warm")
    # y: fit 40 + 60 = 100 (A); price page 30 + docs2 2 x 10 + docs again 2 x 5 = 10 capped at 8 + report 15
    # + key page (/security: never) 0 = 73 (level 2); ½·100 + ½·73 = 86.5 (hot)
    assert numbers(cat_y) == (86.5, 100.0, 73.0, "A", 2, "hot")
    lines = {line.rule_id: (line.value, line.raw, line.matched) for line in cat_y.lines}
    assert lines["docs_again"] == (8.0, 10.0, 2)
    assert lines["docs2"] == (20.0, 20.0, 2)
    assert lines["price_page"] == (30.0, 30.0, 1)
    assert "key_page" not in lines  # y's key pages (/security): never visited, no ledger line
    assert {line.rule_id: line.value for line in cat_x.lines}["key_page"] == 10.0  # x's (/pricing)


def test_an_aggregate_two_models_share_is_computed_once() -> None:
    """The compiled statement of x and y computes x's pricing and docs aggregates and y's docs2, report
    and key page; y's price page and docs again read x's (no aggregate of theirs is labelled)."""
    x, y = loads_model(SHARING_X), loads_model(SHARING_Y)
    sql = str(compile_models([x, y], Store.sources(), all_leads(AS_OF)).compile(dialect=sqlite.dialect()))
    computed = {"last__m0_pricing", "raw__m0_docs", "last__m0_key_page", "raw__m1_docs2", "raw__m1_report",
                "last__m1_key_page"}  # fmt: skip
    for label in computed:
        assert sql.count(f"AS {label}") == 1, label
    assert "m1_price_page" not in sql
    assert "m1_docs_again" not in sql
    # y reads them back under its own ids, from x's columns
    assert "last__m0_pricing AS last__price_page" in sql
    assert "raw__m0_docs AS raw__docs_again" in sql
    # one lead value each for the tracking flag and the marketing rule both have, one for y's analyst rule
    assert [f"AS v{n}" in sql for n in range(4)] == [True, True, True, False]
    assert sql.count("lead_values.v1 AS f__marketing") == 2
