"""Distinct counts, account scope, recency, ratio, shares and exclusions beyond the hand-computed cases
(tests/cases/distinct-counts, account-committee, recency-ratio, exclusions, pql-trial): each construct
needs its engine capability at compile time, and an account-scope rule keeps real-time scores equal to
a full rescore (a colleague's event rescores the lead)."""

from __future__ import annotations

from typing import Any

import pytest

from leadscore.compile import compile_model
from leadscore.compile.dialects import CAPABILITIES
from leadscore.compile.engines import ENGINES
from leadscore.errors import UnsupportedRuleError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import ScoringModel
from leadscore.scoring.pipeline import ingest, publish, rescore_all
from leadscore.scoring.run import all_leads
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import read_current

T0 = parse_time("2024-06-01T00:00:00Z", "t")
RECEIVED = parse_time("2030-01-01T00:00:00Z", "received")

COMMITTEE = ScoringModel.model_validate(
    {
        "model": "committee",
        "engagement": [
            {
                "id": "committee",
                "name": "Two people of the account on pricing",
                "kind": "threshold",
                "scope": "account",
                "event": {"type": "page"},
                "count": {"distinct": "person"},
                "at_least": 2,
                "within": "7d",
                "points": 40,
            }
        ],
    }
)

CONSTRUCTS: dict[str, tuple[str, dict[str, Any]]] = {
    "distinct": (
        "days",
        {"id": "days", "name": "Days", "kind": "threshold", "event": {"type": "page"},
         "count": {"distinct": "day"}, "at_least": 2, "within": "7d", "points": 5},
    ),
    "account_scope": (
        "team",
        {"id": "team", "name": "Team", "kind": "ratio", "scope": "account", "event": {"type": "page"},
         "within": "7d", "at_least": 2, "points": 5},
    ),
    "exclusions": (
        "opens",
        {"id": "opens", "name": "Opens", "event": {"type": "track", "name": "Email Opened"},
         "exclude": {"burst": {"more_than": 5, "within": "1m"}}, "points": 1},
    ),
}  # fmt: skip


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("capability", sorted(CONSTRUCTS))
def test_a_construct_the_engine_lacks_fails_at_compile_time_naming_the_rule(
    engine: str, capability: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule_id, rule = CONSTRUCTS[capability]
    model = ScoringModel.model_validate({"model": "caps", "engagement": [rule]})
    sources = Store.from_url("sqlite://", migrate_schema=False).sources()
    assert compile_model(model, sources, all_leads(T0), engine) is not None
    monkeypatch.setitem(CAPABILITIES, engine, CAPABILITIES[engine] - {capability})
    with pytest.raises(UnsupportedRuleError) as info:
        compile_model(model, sources, all_leads(T0), engine)
    assert rule_id in str(info.value) and engine in str(info.value) and capability in str(info.value)


def _message(raw: dict[str, Any]) -> Any:
    return normalise(raw, received_ms=RECEIVED)


def _score(store: Store, user: str) -> float:
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
        assert lead_id is not None
        current, _ = read_current(conn, lead_id)
    assert current is not None
    return float(current["score"])


def test_a_colleagues_event_rescores_every_lead_of_the_account(store: Store) -> None:
    """Ann and Bob are one account; Cid is not. Bob's page view (ingested alone, after Ann's) makes two
    people: 40 points, 20 score points, for Ann as for Bob, without anything of Ann's arriving."""
    publish(store, COMMITTEE, as_of=T0 - 10 * 86_400_000)
    group = {"type": "group", "groupId": "acme", "traits": {"name": "Acme", "domain": "acme.example"}}
    ingest(
        store,
        [
            _message({**group, "userId": "ann", "messageId": "g1", "timestamp": "2024-05-20T00:00:00Z"}),
            _message({**group, "userId": "bob", "messageId": "g2", "timestamp": "2024-05-20T00:00:00Z"}),
            _message({"type": "identify", "userId": "cid", "messageId": "g3", "timestamp": "2024-05-20T00:00:00Z",
                      "traits": {"email": "cid@other.example"}}),
            _message({"type": "page", "userId": "ann", "messageId": "p1", "timestamp": "2024-05-30T00:00:00Z",
                      "properties": {"path": "/pricing"}}),
        ],
        source="test",
        as_of=T0,
    )  # fmt: skip
    assert _score(store, "ann") == 0
    ingest(
        store,
        [_message({"type": "page", "userId": "bob", "messageId": "p2", "timestamp": "2024-05-31T00:00:00Z",
                   "properties": {"path": "/pricing"}})],
        source="test",
        as_of=T0,
    )  # fmt: skip
    assert _score(store, "ann") == 20
    assert _score(store, "bob") == 20
    assert _score(store, "cid") == 0
    rescored = {ledger.lead_id: ledger.score for ledger in rescore_all(store, as_of=T0, save=False)}
    with store.connect() as conn:
        for user in ("ann", "bob", "cid"):
            lead_id = find_lead(conn, external_id=user)
            assert lead_id is not None
            assert rescored[lead_id] == _score(store, user)
