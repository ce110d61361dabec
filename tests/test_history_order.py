"""Score history does not depend on arrival order or batching: the same messages (events, identifies with
traits, anonymous visits stitched later) give the same history rows however they are sent, through the
import path or the real-time processor. Each row is scored with the attributes known at its time."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, update

from case_runner import load_case, run_case
from leadscore.ingest.apply import event_row
from leadscore.ingest.committer import GroupCommitter
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.scoring.as_known import score_as_known
from leadscore.scoring.history import TIME_REF
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.processor import process_pending
from leadscore.store import Store
from leadscore.store.schema import leads, score_history

AS_OF = parse_time("2024-06-30T00:00:00Z", "as_of")
DAY = 86_400_000

MODEL = loads_model("""
model: history-order
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 40}
  - {id: size, name: 50 or more employees, when: {attribute: employees, gte: 50}, points: 20}
engagement:
  - {id: pricing, name: Pricing, kind: once, event: {type: page}, where: {property: path, prefix: /pricing}, points: 10, half_life: 7d}
  - {id: visit, name: Visit, event: {type: page}, points: 3, window: 14d}
  - {id: demo, name: Demo, event: {type: track, name: Demo Requested}, points: 20}
  - {id: burst, name: Two pages in three days, kind: threshold, event: {type: page}, at_least: 2, within: 3d, points: 5}
""")


def drain(store: Store) -> int:
    """Process the inbox until it is empty; the number of transactions that did work."""
    rounds = 0
    while process_pending(store):
        rounds += 1
    return rounds


def _page(n: int, days: float, path: str, **who: str) -> dict[str, Any]:
    return {
        "type": "page",
        "messageId": f"p{n}",
        "timestamp": AS_OF - int(days * DAY),
        "properties": {"path": path},
        **who,
    }


def messages() -> list[dict[str, Any]]:
    return [
        _page(1, 20, "/pricing", anonymousId="anon-1"),  # anonymous until the identify links it
        _page(2, 18, "/docs", anonymousId="anon-1"),
        {"type": "identify", "userId": "u1", "anonymousId": "anon-1", "messageId": "i1",
         "timestamp": AS_OF - 15 * DAY, "traits": {"title": "Intern", "employees": 60}},
        {"type": "track", "event": "Demo Requested", "userId": "u1", "messageId": "t1", "timestamp": AS_OF - 12 * DAY},
        {"type": "identify", "userId": "u1", "messageId": "i2", "timestamp": AS_OF - 10 * DAY,
         "traits": {"title": "VP Marketing"}},
        _page(3, 8, "/pricing/enterprise", userId="u1"),
        _page(4, 3, "/docs", userId="u1"),
        _page(5, 2, "/blog", userId="u1"),
        _page(6, 9, "/", userId="u2"),  # a bare lead, identified later
        {"type": "identify", "userId": "u2", "messageId": "i3", "timestamp": AS_OF - 4 * DAY,
         "traits": {"jobTitle": "VP Sales"}},
        _page(7, 4, "/pricing", userId="u2"),
    ]  # fmt: skip


def history(store: Store) -> list[tuple[Any, ...]]:
    """Every history row but the one a batch writes at the time it is processed where the score drifted
    from the newest row (``pipeline._rows_after_replay``: the ingest path here is as of AS_OF, the processor
    as of now, so that row's time and score differ by design; the rows of the messages do not)."""
    with store.connect() as conn:
        rows = conn.execute(
            select(leads.c.external_id, score_history)
            .join(leads, leads.c.id == score_history.c.lead_id)
            .order_by(leads.c.external_id, score_history.c.at_ms, score_history.c.id)
        ).mappings()
        return [
            (r["external_id"], r["at_ms"], r["cause"], r["cause_ref"], round(r["score"], 9),
             round(r["fit_score"], 9), round(r["engagement_score"], 9), r["grade"], r["level"], r["band"])
            for r in rows
            if r["cause_ref"] != TIME_REF
        ]  # fmt: skip


def run(order: list[dict[str, Any]], cuts: list[int], processor: bool) -> list[tuple[Any, ...]]:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "h.db"))
        publish(store, MODEL, as_of=AS_OF)
        committer = GroupCommitter(store).start() if processor else None
        for a, b in itertools.pairwise([0, *sorted(set(cuts)), len(order)]):
            batch = [normalise(m, received_ms=AS_OF) for m in order[a:b]]
            if committer is None:
                ingest(store, batch, source="test", as_of=AS_OF)
            else:
                committer.submit([event_row(m, "test") for m in batch]).result()
                drain(store)  # a batch of resent messages leaves nothing to process
        if committer is not None:
            committer.stop()
        got = history(store)
        store.dispose()
    return got


IN_ORDER = run(sorted(messages(), key=lambda m: m["timestamp"]), list(range(len(messages()))), False)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    order=st.permutations(messages()),
    cuts=st.lists(st.integers(0, len(messages())), max_size=5),
    processor=st.booleans(),
)
def test_history_is_the_same_whatever_the_order_and_batching(
    order: list[dict[str, Any]], cuts: list[int], processor: bool
) -> None:
    assert run(order, cuts, processor) == IN_ORDER


def test_in_order_history_is_what_the_model_says() -> None:
    u2 = [(r[1], r[2], r[4], r[5], r[6]) for r in IN_ORDER if r[0] == "u2"]
    d = AS_OF - 9 * DAY
    # created just before the first visit: nothing known yet; the visit: 3 engagement points → score 1.5;
    # 4 days before as-of the identify (VP: fit 40) and the pricing page at the same time, one row: visits
    # 3 + 3, pricing 10 undecayed, only one page in the last three days (no burst): engagement 16, score
    # 40 / 2 + 16 / 2 = 28
    assert u2 == [
        (d - 1, "created", 0.0, 0.0, 0.0),
        (d, "event", 1.5, 0.0, 3.0),
        (AS_OF - 4 * DAY, "event", 28.0, 40.0, 16.0),
    ]


def _send(store: Store, batches: list[list[dict[str, Any]]]) -> list[tuple[Any, ...]]:
    publish(store, loads_model(SIMPLE), as_of=AS_OF)
    for batch in batches:
        ingest(store, [normalise(m, received_ms=AS_OF) for m in batch], source="test", as_of=AS_OF)
    return [(r[1] - AS_OF, r[2], r[3], r[4], r[5]) for r in history(store)]


SIMPLE = """
model: simple
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 40}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 10}
"""
VISIT_5 = {"type": "page", "userId": "ann", "messageId": "v5", "timestamp": AS_OF - 5 * DAY}
IDENTIFY_3 = {"type": "identify", "userId": "ann", "messageId": "i3", "timestamp": AS_OF - 3 * DAY,
              "traits": {"title": "VP Marketing"}}  # fmt: skip
VISIT_1 = {"type": "page", "userId": "ann", "messageId": "v1", "timestamp": AS_OF - 1 * DAY}
# score = fit / 2 + engagement / 2: nothing before the first visit (0); the visit: engagement 10 → 5; the
# identify makes her a VP: fit 40 → 25; the second visit: engagement 20 → 30
EXPECTED = [
    (-5 * DAY - 1, "created", "before any activity", 0.0, 0.0),
    (-5 * DAY, "event", "v5", 5.0, 0.0),
    (-3 * DAY, "event", "i3", 25.0, 40.0),
    (-1 * DAY, "event", "v1", 30.0, 40.0),
]


def test_the_fit_of_a_late_identify_is_not_in_the_rows_before_it(store: Store) -> None:
    # the newest visit and the identify first, the oldest visit days later
    assert _send(store, [[VISIT_1, IDENTIFY_3], [VISIT_5]]) == EXPECTED


def test_one_message_at_a_time_in_order_gives_the_same_rows(store: Store) -> None:
    assert _send(store, [[VISIT_5], [IDENTIFY_3], [VISIT_1]]) == EXPECTED


def test_a_point_scored_with_attributes_as_known_then_counts_every_colleague(store: Store) -> None:
    """tests/cases/account-committee.yaml: ann, bob and cid of acme read pricing within three weeks, so
    each of them has the committee's 40 raw points (20 score points) and ann her own pricing 10 (5): 25
    as of the case's time. Once ann has an attribute observed after that time, her point there is scored
    through the attributes as known then (a temporary table of the points' leads), and her colleagues,
    who are not among those points, must still count: 25 again, not her pricing alone (5)."""
    case = load_case(Path(__file__).resolve().parent / "cases" / "account-committee.yaml")
    ann = run_case(store, case)["ann"].lead_id
    with store.connect() as conn:
        now = score_as_known(conn, case.model, store.sources(), [(ann, case.as_of)])
    with store.begin() as conn:
        later = {"attributes": {"plan": "pro"}, "attribute_ts": {"plan": case.as_of + 1}}
        conn.execute(update(leads).where(leads.c.id == ann).values(**later))
    with store.connect() as conn:
        then = score_as_known(conn, case.model, store.sources(), [(ann, case.as_of)])
    assert now[ann, case.as_of].score == then[ann, case.as_of].score == 25.0


def test_identifies_of_traits_no_rule_reads_make_no_query_of_their_own(store: Store) -> None:
    """A client identifying on every page view with a changing trait no rule reads (``last_seen``) made
    each identify an attribute set of its own: one scoring query per identify in every batch about her,
    each batch re-reading all her identifies (a write key's flood stalled every lead's scoring). The 40
    ``last_seen`` identifies change nothing scored: her history is EXPECTED's (the VP identify still
    counts from its own time), and the batch scores her points in at most two attribute sets (before
    and after the VP identify), not 42."""
    from sqlalchemy import event as sa_event

    publish(store, loads_model(SIMPLE), as_of=AS_OF)
    seen = [{"type": "identify", "userId": "ann", "messageId": f"seen-{k}",
             "timestamp": AS_OF - 4 * DAY + k * 60_000, "traits": {"last_seen": k}} for k in range(40)]  # fmt: skip
    queries: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if (
            statement.lstrip().upper().startswith(("SELECT", "WITH"))
            and "leadscore_known_attributes" in statement
        ):
            queries.append(statement)

    committer = GroupCommitter(store).start()
    try:
        committer.submit([event_row(normalise(m, received_ms=AS_OF), "test")
                          for m in [VISIT_5, *seen, IDENTIFY_3, VISIT_1]]).result()  # fmt: skip
        sa_event.listen(store.engine, "before_cursor_execute", count)
        try:
            assert drain(store) == 1  # one batch
        finally:
            sa_event.remove(store.engine, "before_cursor_execute", count)
    finally:
        committer.stop()
    rows = [(r[1] - AS_OF, r[2], r[3], r[4], r[5]) for r in history(store)]
    assert [r for r in rows if not str(r[2]).startswith("seen-")] == EXPECTED
    # the last_seen identifies move no number: any row of theirs repeats the visit's 5.0 / fit 0
    assert {(r[3], r[4]) for r in rows if str(r[2]).startswith("seen-")} <= {(5.0, 0.0)}
    assert len(queries) <= 2, len(queries)


@pytest.mark.parametrize("example", ["b2b_saas", "danish", "linda", "pql_trial"])
def test_history_as_known_reads_only_what_the_model_scores_and_agrees_with_reading_everything(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """History points are scored with the attributes as known at their time, told apart only by the keys
    the model reads (``compile.query.lead_attribute_keys``). For every shipped example model, a lead whose
    identifies set read traits (title, country, company size) and unread ones (last_seen, plan) at
    several times scores every point exactly as when every key is kept."""
    from leadscore.model import load_model
    from leadscore.scoring import as_known

    model = load_model(Path(__file__).parents[1] / "examples" / example / "model.yaml")
    store = Store.from_url(str(tmp_path / "k.db"))
    publish(store, model, as_of=AS_OF)
    day = lambda d: AS_OF - d * DAY  # noqa: E731
    sent = [
        _page(1, 30, "/pricing", userId="ann"),
        {"type": "identify", "userId": "ann", "messageId": "k1", "timestamp": day(28),
         "traits": {"title": "VP Marketing", "country": "DK", "employees": 300, "industry": "Software",
                    "last_seen": 1, "plan": "pro"}},
        _page(2, 25, "/docs", userId="ann"),
        {"type": "identify", "userId": "ann", "messageId": "k2", "timestamp": day(20), "traits": {"last_seen": 2}},
        {"type": "identify", "userId": "ann", "messageId": "k3", "timestamp": day(15),
         "traits": {"title": "Intern", "country": "US", "last_seen": 3, "plan": "free"}},
        _page(3, 12, "/pricing", userId="ann"),
        {"type": "identify", "userId": "ann", "messageId": "k4", "timestamp": day(5),
         "traits": {"title": "Head of Growth", "employees": 20, "last_seen": 4}},
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=AS_OF) for m in sent], source="test", as_of=AS_OF)
    with store.connect() as conn:
        lead = conn.execute(select(leads.c.id)).scalar_one()
        points = [
            (lead, day(d) + offset) for d in (31, 30, 28, 25, 20, 15, 12, 5, 0) for offset in (-1, 0, 1)
        ]
        if example == "b2b_saas":  # its fit reads the title (the country only its assignment rules)
            assert as_known.attribute_keys([model]) == {"job_title", "consent_tracking"}
        assert "last_seen" not in as_known.attribute_keys([model])  # type: ignore[operator]
        projected = score_as_known(conn, model, store.sources(), points)
        monkeypatch.setattr(as_known, "attribute_keys", lambda models: None)
        everything = score_as_known(conn, model, store.sources(), points)
    store.dispose()
    got = {p: (v.score, v.fit_score, v.engagement_score) for p, v in projected.items()}
    want = {p: (v.score, v.fit_score, v.engagement_score) for p, v in everything.items()}
    assert got == want
    if example == "b2b_saas":
        assert len({v[1] for v in want.values()}) >= 2  # the fit moved with the titles


SEVERAL_ATTRIBUTES = """
model: several
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 40}
  - {id: head, name: Head, when: {attribute: job_title, contains: head of}, points: 20}
  - {id: nordic, name: Nordic, when: {attribute: country, in: [SE, DK]}, points: 5}
  - {id: senior, name: Senior, when: {attribute: seniority, in: [director, vp]}, points: 10}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 10}
"""


def test_as_known_leads_probe_the_temporary_table_once_a_lead(store: Store) -> None:
    """The leads of an as-known statement take their attributes from the temporary table by one join on
    its key: as a scalar subquery, both engines repeated the subquery at every reference to the
    attributes (a rule's attribute is read by several JSON functions: 13 probes of the table a lead here
    on SQLite, 6 on PostgreSQL; 24 on SQLite for the bench's three realistic models), a sixth of the
    as-known statement's CPU (bench/README.md, "Three scores against one, twenty-sixth session")."""
    from leadscore.compile import compile_model
    from leadscore.scoring.as_known import _prepare, as_known_sources
    from leadscore.scoring.run import points

    model = loads_model(SEVERAL_ATTRIBUTES)
    with store.begin() as conn:
        _prepare(conn)
        dialect = conn.dialect.name
        query = compile_model(model, as_known_sources(store.sources()), points([(1, AS_OF)]), engine=dialect)
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        if dialect == "sqlite":
            assert compiled.positiontup is not None
            values: Any = tuple(compiled.params[name] for name in compiled.positiontup)
            plan = [row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}", values)]
        else:
            plan = [row[0] for row in conn.exec_driver_sql(f"EXPLAIN {compiled}", compiled.params)]
    # a step of the plan that reads the table (SQLite: SEARCH ...; PostgreSQL: Index Scan ... on ...)
    probes = [
        step
        for step in plan
        if ("SEARCH " if dialect == "sqlite" else " on ") + "leadscore_known_attributes" in step
    ]
    assert len(probes) == 1, plan
