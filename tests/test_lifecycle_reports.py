"""Reports on a tiny data set, computed by hand (weeks start on Monday; T0 = Wednesday 2024-05-01)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.lifecycle import reports
from leadscore.lifecycle.feedback import give_feedback
from leadscore.lifecycle.runner import run_round
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.schema import account_stages, accounts
from lifecycle_model import DAY, T0, model, person, points, send, settings


def test_reports_by_hand(store: Store) -> None:
    publish(store, model())
    send(store, [person("ann", lead_source="webinar"), person("bob", lead_source="webinar")])
    send(store, [person("cat", lead_source="ads"), person("dan", lead_source="ads")])
    send(store, [*points("ann", 70), *points("bob", 70), *points("cat", 10)])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)  # ann, bob → mql (Thu 2 May)
    with store.connect() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("ann", "bob", "cat", "dan")}
    give_feedback(
        store,
        model(),
        ids["bob"],
        "rejected",
        reason="no_budget",
        note="",
        by="lena",
        at_ms=T0 + 2 * DAY,
        settings=settings(),
        now_ms=T0 + 2 * DAY,
    )
    give_feedback(
        store,
        model(),
        ids["ann"],
        "accepted",
        reason=None,
        note="",
        by="lena",
        at_ms=T0 + 3 * DAY,
        settings=settings(),
        now_ms=T0 + 3 * DAY,
    )
    send(store, points("dan", 65, at=T0 + 7 * DAY))
    run_round(store, settings(), now_ms=T0 + 8 * DAY, deliver=False)  # dan → mql (Thu 9 May)
    lifecycle = model().lifecycle
    assert lifecycle is not None
    now = T0 + 10 * DAY
    with store.connect() as conn:
        funnel = reports.funnel(conn, lifecycle)
        by_source = reports.funnel(conn, lifecycle, by="lead_source")
        times = {r["stage"]: r for r in reports.time_in_stage(conn, lifecycle, now)}
        acceptance = reports.acceptance(conn)
        warmer = reports.getting_warmer(conn, now, days=7)
        # the last day (since T0 + 9 days): no one's score moved after dan's points on day 7
        warmer_today = reports.getting_warmer(conn, now, days=1)
        nurtured = reports.nurtured(conn, lifecycle)
        handoff = reports.ready_for_handoff(conn, lifecycle)
        counted = (
            reports.count_in_stages(conn, list(lifecycle.nurture)),
            reports.count_ready(conn, lifecycle),
        )
    # the funnel page's counts without reading the rows: cat in 'lead', bob recycled; dan ready
    assert counted == (len(nurtured), len(handoff)) == (2, 1)
    counts = {(r["week"], r["stage"]): r["entered"] for r in funnel["counts"]}
    assert counts == {
        ("2024-04-29", "lead"): 4,
        ("2024-04-29", "mql"): 2,
        ("2024-04-29", "sql"): 1,
        ("2024-05-06", "mql"): 1,
    }
    conversion = {(r["week"], r["from"]): (r["entered"], r["converted"]) for r in funnel["conversion"]}
    # of the 4 leads that entered 'lead' that week, ann, bob and dan (a week later) reached mql
    assert conversion == {
        ("2024-04-29", "lead"): (4, 3),
        ("2024-04-29", "mql"): (2, 1),
        ("2024-04-29", "sql"): (1, 0),
        ("2024-05-06", "mql"): (1, 0),
    }
    # all time, each lead once per stage: lead 4 (ann, bob, cat, dan), 3 of them reached mql: 3/4;
    # mql 3 (ann, bob, dan), only ann reached sql: 1/3; sql 1 (ann), nobody opened an opportunity: 0/1
    stages = {r["stage"]: (r["entered"], r["converted"], r["rate"]) for r in funnel["stages"]}
    assert stages["lead"] == (4, 3, 0.75)
    assert stages["mql"] == (3, 1, 1 / 3)
    assert stages["sql"] == (1, 0, 0.0)
    # by source: webinar ann and bob both reached mql (2/2), one of them sql (1/2); ads cat and dan,
    # only dan reached mql (1/2), and dan is not in sql (0/1)
    split = {(r["group"], r["stage"]): (r["entered"], r["rate"]) for r in by_source["stages"]}
    assert split[("webinar", "lead")] == (2, 1.0) and split[("webinar", "mql")] == (2, 0.5)
    assert split[("ads", "lead")] == (2, 0.5) and split[("ads", "mql")] == (1, 0.0)
    # the CLI prints the same rows: the last JSON document is the all-time one, by source
    printed = CliRunner().invoke(
        app, ["reports", "funnel", "--by", "lead_source", "-f", "json", "--db", store.url]
    )
    assert printed.exit_code == 0, printed.output
    last = json.loads(printed.output[printed.output.rindex("[\n") :])
    assert [(r["group"], r["stage"], r["entered"]) for r in last if r["stage"] == "lead"] == [
        ("ads", "lead", 2),
        ("webinar", "lead", 2),
    ]
    rates = {(r["group"], r["from"]): r["rate"] for r in by_source["conversion"] if r["week"] == "2024-04-29"}
    assert (
        rates[("webinar", "lead")] == 1.0
        and rates[("ads", "lead")] == 0.5
        and rates[("webinar", "mql")] == 0.5
    )
    # lead: ann and bob left it at once (0 h), dan after 7 days (168 h); mql: ann 48 h, bob 24 h
    assert (times["lead"]["completed"], times["lead"]["mean_hours"], times["lead"]["median_hours"]) == (
        3,
        56.0,
        0.0,
    )
    assert (times["mql"]["completed"], times["mql"]["mean_hours"]) == (2, 36.0)
    assert {s: times[s]["current"] for s in ("lead", "mql", "sql", "recycled")} == {
        "lead": 1,
        "mql": 1,
        "sql": 1,
        "recycled": 1,
    }
    assert times["sql"]["current_mean_hours"] == 7 * 24
    assert acceptance == {
        "accepted": 1,
        "rejected": 1,
        "acceptance_rate": 0.5,
        "reasons": [{"reason": "no_budget", "count": 1}],
    }
    # 7 days before now (T0 + 3 days) dan had 0 points; now 65. ann, bob and cat have not moved.
    assert [(r["lead_id"], r["score_then"], r["increase"]) for r in warmer] == [(ids["dan"], 0.0, 65.0)]
    assert warmer_today == []
    assert [r["lead_id"] for r in nurtured] == [ids["bob"], ids["cat"]]  # recycled 70, lead 10
    assert [(r["lead_id"], r["team"]) for r in handoff] == [(ids["dan"], "emea")]


def test_the_handoff_report_pages_the_queue(store: Store) -> None:
    """``leadscore reports handoff`` lists a page of the queue and says how many more there are: ann
    (score 75), bob (70) and cat (65) are MQLs, hottest first; ``--limit 2`` lists ann and bob and says
    "1 more: --offset 2" (on stderr with JSON, which stays one document); ``--offset 2`` lists cat and
    says nothing more; the table says the queue's total (3)."""
    publish(store, model())
    send(store, [person("ann"), person("bob"), person("cat")])
    send(store, [*points("ann", 75), *points("bob", 70), *points("cat", 65)])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)
    with store.connect() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("ann", "bob", "cat")}
    base = ["reports", "handoff", "--db", store.url]
    first = CliRunner().invoke(app, [*base, "-f", "json", "--limit", "2"])
    assert first.exit_code == 0, first.output
    assert [r["lead_id"] for r in json.loads(first.stdout)] == [ids["ann"], ids["bob"]]
    assert first.stderr.strip() == "1 more: --offset 2"
    rest = CliRunner().invoke(app, [*base, "-f", "json", "--limit", "2", "--offset", "2"])
    assert rest.exit_code == 0, rest.output
    assert [r["lead_id"] for r in json.loads(rest.stdout)] == [ids["cat"]]
    assert rest.stderr == ""
    table = CliRunner().invoke(app, [*base, "--limit", "1"])
    assert table.exit_code == 0, table.output
    assert "Ready for handoff (3 in all)" in table.stdout and "2 more: --offset 1" in table.stdout


def test_the_nurtured_and_accounts_reports_page_their_lists(store: Store) -> None:
    """``leadscore reports nurtured`` and ``reports accounts`` list a page, as ``reports handoff`` does,
    and say how many more there are (they printed every row): ann (3 points), bob (2) and cat (1) are in
    ``lead``, a nurture stage, hottest first; accounts a1..a3 scored 30, 50, 10 list a2, a1, a3."""
    publish(store, model())
    send(store, [person("ann"), person("bob"), person("cat")])
    send(store, [*points("ann", 3), *points("bob", 2), *points("cat", 1)])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)
    with store.begin() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("ann", "bob", "cat")}
        for name, score in {"a1": 30.0, "a2": 50.0, "a3": 10.0}.items():
            account_id = conn.execute(
                accounts.insert().values(
                    domain=f"{name}.example", name=name, attributes={}, created_ms=T0, updated_ms=T0
                )
            ).inserted_primary_key[0]
            conn.execute(
                account_stages.insert().values(
                    account_id=account_id, stage="none", score=score, fit_score=score, engagement_score=0.0,
                    engaged_contacts=0, target=False, entered_ms=T0, updated_ms=T0,
                )
            )  # fmt: skip
    for report, key, listed in (
        ("nurtured", "lead_id", [ids["ann"], ids["bob"], ids["cat"]]),
        ("accounts", "name", ["a2", "a1", "a3"]),
    ):
        base = ["reports", report, "--db", store.url]
        every = CliRunner().invoke(app, [*base, "-f", "json"])  # 100 by default: all three
        assert every.exit_code == 0, every.output
        assert [r[key] for r in json.loads(every.stdout)] == listed
        assert every.stderr == ""
        first = CliRunner().invoke(app, [*base, "-f", "json", "--limit", "2"])
        assert first.exit_code == 0, first.output
        assert [r[key] for r in json.loads(first.stdout)] == listed[:2]
        assert first.stderr.strip() == "1 more: --offset 2"
        rest = CliRunner().invoke(app, [*base, "-f", "json", "--limit", "2", "--offset", "2"])
        assert [r[key] for r in json.loads(rest.stdout)] == listed[2:]
        assert rest.stderr == ""
        table = CliRunner().invoke(app, [*base, "--limit", "1"])
        assert table.exit_code == 0, table.output
        assert "(3 in all)" in table.stdout and "2 more: --offset 1" in table.stdout
        refused = CliRunner().invoke(app, [*base, "--limit", "0"])
        assert refused.exit_code == 2 and "--limit" in refused.output
