"""Properties of the one scoring semantics, on random models and random event streams (Hypothesis).

(a) arrival order never changes a score or a ledger; (b) decay never raises a score; (c) the ledger
sums to the score, and every explanation's events add up to its lines (the case runner's check);
(d) scoring leads one at a time equals scoring them in one batch; (e) a model survives a YAML round
trip. (a), (c) and (d) also run on PostgreSQL when LEADSCORE_TEST_POSTGRES_URL is set. Stores are module-scoped and emptied between examples (function-scoped fixtures are not reset
between Hypothesis examples).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from case_runner import ROUNDED, share_problems
from leadscore.compile import Ledger
from leadscore.ingest.segment import Message, normalise
from leadscore.model import ScoringModel, dump_model, loads_model
from leadscore.scoring.explain import explain
from leadscore.scoring.pipeline import ingest
from leadscore.scoring.run import all_leads, score
from leadscore.store import Store
from leadscore.store.schema import leads, metadata
from pg_schema import pg_schema_store
from strategies import AS_OF, DAY_MS, message_streams, model_dicts, models

PG_URL = os.environ.get("LEADSCORE_TEST_POSTGRES_URL")
TOL = 1e-9
SQLITE_EXAMPLES = 60
PG_EXAMPLES = 15
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}


def _reset(store: Store) -> None:
    with store.begin() as conn:
        if store.dialect == "postgresql":
            names = ", ".join(t.name for t in metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(metadata.sorted_tables):
                conn.execute(table.delete())


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    store = Store.from_url(str(tmp_path_factory.mktemp("props") / "props.db"))
    yield store
    store.dispose()


@pytest.fixture(scope="module")
def pg_db() -> Iterator[Store]:
    if not PG_URL:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    with pg_schema_store("p") as store:
        yield store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest) -> Store:
    store: Store = request.getfixturevalue("sqlite_db" if request.param == "sqlite" else "pg_db")
    return store


def _examples(store: Store) -> int:
    return PG_EXAMPLES if store.dialect == "postgresql" else SQLITE_EXAMPLES


def _fresh(store: Store, batches: Sequence[Sequence[Message]]) -> None:
    _reset(store)
    for batch in batches:
        ingest(store, batch, source="test")


def _by_user(store: Store, model: ScoringModel, as_of: int = AS_OF) -> dict[str, Ledger]:
    """Every lead's ledger keyed by its external id (lead ids depend on which message created the lead)."""
    with store.connect() as conn:
        external = dict(conn.execute(select(leads.c.id, leads.c.external_id)).all())
        return {external[lg.lead_id]: lg for lg in score(conn, model, store.sources(), all_leads(as_of))}


def assert_same(a: Ledger, b: Ledger, *, ignore_lead_id: bool = False) -> None:
    """Ledgers equal field by field; floats to 1e-9 (sums may add the same terms in another order)."""
    if ignore_lead_id:
        b = replace(b, lead_id=a.lead_id)
    da, db_ = a.as_dict(), b.as_dict()
    la, lb = da.pop("lines"), db_.pop("lines")
    _assert_close(da, db_)
    assert [(x["rule_id"], x["kind"], x["matched"], x["capped"]) for x in la] == [
        (x["rule_id"], x["kind"], x["matched"], x["capped"]) for x in lb
    ]
    for x, y in zip(la, lb, strict=True):
        _assert_close(x, y)


def _assert_close(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, float) or isinstance(y, float):
            assert x is not None and y is not None and abs(x - y) <= TOL, (key, x, y)
        else:
            assert x == y, (key, x, y)


# (a) arrival order ------------------------------------------------------------------------------


def _check_order(store: Store, model: ScoringModel, messages: list[Message], seed: int) -> None:
    _fresh(store, [messages])
    once = _by_user(store, model)
    shuffled = list(messages)
    rnd = random.Random(seed)
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.sample(range(1, len(shuffled)), min(3, len(shuffled) - 1))) if len(shuffled) > 1 else []
    batches = [shuffled[i:j] for i, j in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    _fresh(store, batches)
    arrived = _by_user(store, model)
    assert once.keys() == arrived.keys()
    for user in once:
        assert_same(once[user], arrived[user], ignore_lead_id=True)


def test_arrival_order_never_changes_a_score(db: Store) -> None:
    @settings(max_examples=_examples(db), **SETTINGS)
    @given(model=models(), messages=message_streams(), seed=st.integers(0, 2**32 - 1))
    def check(model: ScoringModel, messages: list[Message], seed: int) -> None:
        _check_order(db, model, messages, seed)

    check()


# (b) decay never raises a score -------------------------------------------------------------------


def test_decay_never_raises_a_score(sqlite_db: Store) -> None:
    """All points positive, no event after t1, t1 < t2: no rule's value, and no engagement score, is
    higher at t2 than at t1. Decay lowers each/once values; windows and thresholds can only drop events
    (which only lowers a positive total); caps, group caps and the clamp are monotone."""

    @settings(max_examples=SQLITE_EXAMPLES, **SETTINGS)
    @given(
        model=models(positive=True),
        messages=message_streams(future=False),
        later=st.sampled_from([1, 3_600_000, DAY_MS, 9 * DAY_MS, 400 * DAY_MS]),
    )
    def check(model: ScoringModel, messages: list[Message], later: int) -> None:
        _fresh(sqlite_db, [messages])
        t1 = max(m.ts for m in messages)
        before, after = _by_user(sqlite_db, model, t1), _by_user(sqlite_db, model, t1 + later)
        for user, early in before.items():
            late = after[user]
            values = {line.rule_id: line.value for line in late.lines if line.section == "engagement"}
            for line in early.lines:
                if line.kind in ("each", "once", "threshold"):
                    assert values.get(line.rule_id, 0.0) <= line.value + TOL, line
            assert late.engagement_points <= early.engagement_points + TOL
            assert late.engagement_score <= early.engagement_score + TOL
            assert late.fit_score == early.fit_score

    check()


def _halve(duration: str) -> str:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([smhdw])", duration).groups()  # type: ignore[union-attr]
    return f"{float(number) / 2:g}{unit}"


def test_halving_a_half_life_never_raises_a_score(sqlite_db: Store) -> None:
    """All points positive: with every half-life (rules' and the default) halved, no lead's engagement
    score is higher (each decayed value shrinks; caps and the group cap are monotone)."""

    @settings(max_examples=SQLITE_EXAMPLES, **SETTINGS)
    @given(data=model_dicts(positive=True), messages=message_streams())
    def check(data: dict[str, Any], messages: list[Message]) -> None:
        halved = {**data, "engagement": [dict(r) for r in data["engagement"]]}
        for rule in halved["engagement"]:
            if rule.get("half_life") not in (None, "none"):
                rule["half_life"] = _halve(rule["half_life"])
        if "defaults" in data:
            halved["defaults"] = {"half_life": _halve(data["defaults"]["half_life"])}
        _fresh(sqlite_db, [messages])
        slow = _by_user(sqlite_db, ScoringModel.model_validate(data))
        fast = _by_user(sqlite_db, ScoringModel.model_validate(halved))
        for user, ledger in slow.items():
            assert fast[user].engagement_score <= ledger.engagement_score + TOL

    check()


# (c) the ledger sums to the score ----------------------------------------------------------------


def test_ledger_sums_to_the_score(db: Store) -> None:
    @settings(max_examples=_examples(db), **SETTINGS)
    @given(model=models(), messages=message_streams(), as_of_shift=st.integers(-3 * DAY_MS, 3 * DAY_MS))
    def check(model: ScoringModel, messages: list[Message], as_of_shift: int) -> None:
        _fresh(db, [messages])
        ledgers = _by_user(db, model, AS_OF + as_of_shift)
        assert ledgers, "every stream identifies at least one user"
        for ledger in ledgers.values():
            # the lines are not rounded, the score is kept to a millionth
            assert abs(sum(line.score_points for line in ledger.lines) - ledger.score) <= ROUNDED
            assert 0.0 <= ledger.score <= 100.0 + TOL

    check()


def test_explanations_add_up_to_the_ledger(db: Store) -> None:
    @settings(max_examples=_examples(db), **SETTINGS)
    @given(model=models(), messages=message_streams(), as_of_shift=st.integers(-3 * DAY_MS, 3 * DAY_MS))
    def check(model: ScoringModel, messages: list[Message], as_of_shift: int) -> None:
        _fresh(db, [messages])
        as_of = AS_OF + as_of_shift
        with db.connect() as conn:
            ledgers = {lg.lead_id: lg for lg in score(conn, model, db.sources(), all_leads(as_of))}
            explained = explain(conn, model, db.sources(), all_leads(as_of))
        assert explained and {x.ledger.lead_id for x in explained} == set(ledgers)
        for x in explained:
            assert x.ledger == ledgers[x.ledger.lead_id]
            assert not share_problems(x), share_problems(x)
        # listing only each rule's newest event: the listed shares are the same, the rest adds up
        with db.connect() as conn:
            newest = explain(conn, model, db.sources(), all_leads(as_of), events_per_line=1)
        for x, one in zip(explained, newest, strict=True):
            assert one.ledger == x.ledger and set(one.events) <= set(x.events)
            assert len({e.rule_id for e in one.events}) == len(one.events)
            assert not share_problems(one), share_problems(one)

    check()


# (d) singly and in batch --------------------------------------------------------------------------


def test_single_and_batch_scoring_agree(db: Store) -> None:
    @settings(max_examples=_examples(db), **SETTINGS)
    @given(model=models(), messages=message_streams())
    def check(model: ScoringModel, messages: list[Message]) -> None:
        _fresh(db, [messages])
        with db.connect() as conn:
            batch = {lg.lead_id: lg for lg in score(conn, model, db.sources(), all_leads(AS_OF))}
            for lead_id, ledger in batch.items():
                (single,) = score(conn, model, db.sources(), all_leads(AS_OF, [lead_id]))
                assert_same(ledger, single)

    check()


# (e) YAML round trip ------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(model=models())
def test_models_survive_a_yaml_round_trip(model: ScoringModel) -> None:
    assert loads_model(dump_model(model)) == model


def test_strategies_cover_every_rule_kind() -> None:
    """The generated models exercise what the properties are about (a guard against a silent narrowing)."""
    seen: set[str] = set()
    extras: set[str] = set()

    @settings(max_examples=60, deadline=None)
    @given(data=model_dicts())
    def collect(data: dict[str, Any]) -> None:
        for rule in data["engagement"]:
            seen.add(rule["kind"])
            extras.update(
                k for k in ("window", "half_life", "cap", "group", "count", "scope", "exclude") if k in rule
            )

    collect()
    assert seen == {"each", "once", "threshold", "recency", "ratio"}
    assert extras == {"window", "half_life", "cap", "group", "count", "scope", "exclude"}


def test_reset_empties_the_store(sqlite_db: Store) -> None:
    """The helper the properties rely on between examples really starts from nothing."""
    identify = normalise(
        {"type": "identify", "userId": "u1", "traits": {"email": "u1@acme.com"}}, received_ms=AS_OF
    )
    _fresh(sqlite_db, [[identify]])
    with sqlite_db.connect() as conn:
        assert conn.execute(select(leads.c.external_id)).scalars().all() == ["u1"]
    _reset(sqlite_db)
    with sqlite_db.connect() as conn:
        for table in metadata.sorted_tables:
            assert conn.execute(select(table).limit(1)).first() is None, table.name


def test_an_older_identify_arriving_late_does_not_overwrite_newer_traits(sqlite_db: Store) -> None:
    """(a) with conflicting traits: the value observed at the latest event time wins, whatever the batches."""
    model = ScoringModel.model_validate(
        {
            "model": "cto",
            "fit": [
                {
                    "id": "cto",
                    "name": "CTO",
                    "when": {"attribute": "job_title", "equals": "CTO"},
                    "points": 10,
                }
            ],
        }
    )
    older = {
        "type": "identify",
        "userId": "u1",
        "traits": {"job_title": "Engineer"},
        "timestamp": AS_OF - 2 * DAY_MS,
    }
    newer = {"type": "identify", "userId": "u1", "traits": {"job_title": "CTO"}, "timestamp": AS_OF - DAY_MS}
    messages = [
        normalise({**m, "messageId": f"m{i}"}, received_ms=AS_OF) for i, m in enumerate([older, newer])
    ]
    _fresh(sqlite_db, [messages])
    together = _by_user(sqlite_db, model)["u1"].fit_points
    _fresh(sqlite_db, [messages[1:], messages[:1]])
    newer_first = _by_user(sqlite_db, model)["u1"].fit_points
    assert together == newer_first == 10.0
