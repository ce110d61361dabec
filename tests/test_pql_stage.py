"""Product-qualified leads: a lifecycle gate that names rules (``rules_met``) holds when each named
rule's line in the lead's ledger gives points, so a stage can require product usage beside the score.
Unit tests of the gate on hand-made facts, the rule ids checked where they are written, and the example
model (examples/pql_trial) end to end: events in, the team's lead in stage ``pql``, a lone user not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.errors import ModelError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.gates import Facts, holds
from leadscore.lifecycle.runner import run_round
from leadscore.model import Gate, load_model, loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_account_stages, read_stage_history
from leadscore.store.schema import accounts, leads

EXAMPLE = Path(__file__).parent.parent / "examples" / "pql_trial" / "model.yaml"


def _facts(score: float, rule_points: dict[str, float]) -> Facts:
    return Facts(1, score, 0, score, "D", 4, "hot", 0, 0, None, rule_points)


@pytest.mark.parametrize(
    ("rule_points", "expected"),
    [
        ({"active_users": 40, "features_adopted": 30}, True),  # both met
        ({"active_users": 40}, False),  # features_adopted has no line
        ({"active_users": 40, "features_adopted": 0}, False),  # a line giving no points is not met
        ({"active_users": -20, "features_adopted": 30}, True),  # a negative rule that fired is met
        ({}, False),
    ],
)
def test_rules_met_reads_the_ledger(rule_points: dict[str, float], expected: bool) -> None:
    gate = Gate(rules_met=("active_users", "features_adopted"))
    assert holds(gate, _facts(90, rule_points), hysteresis=0, attribute_ok=True, now_ms=0) is expected


def test_rules_met_combines_with_the_score() -> None:
    gate = Gate(rules_met=("active_users",), score_at_least=70)
    met = {"active_users": 40.0}
    assert holds(gate, _facts(70, met), hysteresis=0, attribute_ok=True, now_ms=0)
    assert not holds(gate, _facts(69.5, met), hysteresis=0, attribute_ok=True, now_ms=0)


def test_an_unknown_rule_is_refused_where_it_is_written() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "rules_met: [active_users, features_adopted]", "rules_met: [active_users, feature_adopted]"
    )
    with pytest.raises(ModelError) as caught:
        loads_model(text, "pql.yaml")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "feature_adopted]" in row)
    assert "rules_met names unknown rule 'feature_adopted'" in str(caught.value)
    assert f"pql.yaml:{line}:" in str(caught.value)


AS_OF = parse_time("2025-03-15T00:00:00Z", "as_of")


def _messages() -> list[dict[str, Any]]:
    def at(day: int) -> str:
        return f"2025-03-{day:02d}T09:00:00Z"

    out: list[dict[str, Any]] = []
    for user, company, domain, seats in [
        ("tina", "trialco", "trial.example", 10),
        ("uma", "trialco", "trial.example", 10),
        ("vic", "trialco", "trial.example", 10),
        ("sol", "soloco", "solo.example", 5),
    ]:
        out.append(
            {"type": "identify", "userId": user, "traits": {"email": f"{user}@{domain}"}, "timestamp": at(1)}
        )
        traits = {"name": company, "domain": domain, "seats": seats}
        out.append(
            {"type": "group", "userId": user, "groupId": company, "traits": traits, "timestamp": at(1)}
        )
        out.append({"type": "track", "event": "Logged In", "userId": user, "timestamp": at(14)})
    for user in ("tina", "sol"):
        for feature in "abcd":
            out.append(
                {"type": "track", "event": "Feature Used", "userId": user, "properties": {"feature": feature},
                 "timestamp": at(13)}
            )  # fmt: skip
    return [{**m, "messageId": f"m{i}"} for i, m in enumerate(out)]


def _stage(store: Store, email: str) -> str:
    with store.connect() as conn:
        lead_id = conn.execute(select(leads.c.id).where(leads.c.email == email)).scalar_one()
        return str(read_stage_history(conn, lead_id)[-1]["to_stage"])


def test_events_to_stage_pql(store: Store) -> None:
    publish(store, load_model(EXAMPLE))
    messages = [normalise(m, received_ms=AS_OF) for m in _messages()]
    ingest(store, messages, source="test", as_of=AS_OF)
    run_round(store, Settings(database_url="unused"), now_ms=AS_OF, deliver=False)
    # Trialco: 3 people logged in (active_users 40, 3 of 10 seats: seats_active 10), 4 features (30),
    # each logged in within 2 days (recent_login 10): at least 90, hot, both named rules met
    for person in ("tina", "uma", "vic"):
        assert _stage(store, f"{person}@trial.example") == "pql", person
    # Soloco: one person (active_users not met): 4 features (30) + usage growing (10: 4 uses, none the
    # week before) + recent login (10) = 50
    assert _stage(store, "sol@solo.example") == "trial"


def _duoco() -> list[dict[str, Any]]:
    """Duoco (2 seats): dan and dee log in on Mar 14, dan uses features a, b, c on Mar 13."""
    out: list[dict[str, Any]] = []
    for user in ("dan", "dee"):
        out += [
            {"type": "identify", "userId": user, "traits": {"email": f"{user}@duo.example"},
             "timestamp": "2025-03-01T09:00:00Z"},
            {"type": "group", "userId": user, "groupId": "duoco",
             "traits": {"name": "duoco", "domain": "duo.example", "seats": 2}, "timestamp": "2025-03-01T09:00:00Z"},
            {"type": "track", "event": "Logged In", "userId": user, "timestamp": "2025-03-14T09:00:00Z"},
        ]  # fmt: skip
    for feature in "abc":
        out.append({"type": "track", "event": "Feature Used", "userId": "dan", "properties": {"feature": feature},
                    "timestamp": "2025-03-13T09:00:00Z"})  # fmt: skip
    return [{**m, "messageId": f"duo{i}"} for i, m in enumerate(out)]


def test_accounts_pqa_is_an_mqa_whose_team_uses_the_product(store: Store) -> None:
    """The example's accounts section: committee of 2, MQA at 25 with 2 people at 25 or more, PQA when
    active_users and features_adopted give points to a contact. As of Mar 15 00:00 (1 point = 1 score
    point; fit has weight 0, so the account score is the committee's mean engagement):

    * Trialco: tina, uma, vic each 40 (active_users) + 10 (seats_active: 3 ≥ 2.5) + 30 (features a-d)
      + 10 (usage_growing: 4 uses against none before) + 10 (recent_login: 15 h) = 100; committee
      (100 + 100) / 2 = 100, 3 engaged: MQA, both rules met: PQA.
    * Duoco: dan and dee each 10 (seats_active: 2 ≥ 0.5) + 10 (usage_growing: 3 against 0) + 10
      (recent_login) = 30 (active_users 2 < 3, features 3 < 4: no points); (30 + 30) / 2 = 30 ≥ 25 with
      2 engaged: MQA, but not a PQA.
    * Soloco: sol 30 (features) + 10 (usage_growing) + 10 (recent_login) = 50 (alone: no active_users
      or seats_active, 1 < 1.25); (50 + 0) / 2 = 25, but 1 engaged person: none.
    """
    publish(store, load_model(EXAMPLE))
    messages = [normalise(m, received_ms=AS_OF) for m in [*_messages(), *_duoco()]]
    ingest(store, messages, source="test", as_of=AS_OF)
    run_round(store, Settings(database_url="unused"), now_ms=AS_OF, deliver=False)
    with store.connect() as conn:
        names = dict(conn.execute(select(accounts.c.id, accounts.c.domain)).all())
        stages = {names[a]: s for a, s in read_account_stages(conn, list(names)).items()}
    got = {d: (s["stage"], s["score"], s["engaged_contacts"]) for d, s in stages.items()}
    assert got == {
        "trial.example": ("pqa", 100, 3),
        "duo.example": ("mqa", 30, 2),
        "solo.example": ("none", 25, 1),
    }


def test_an_unknown_pqa_rule_is_refused_where_it_is_written() -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "pqa: {rules_met: [active_users, features_adopted]}", "pqa: {rules_met: [active_user]}"
    )
    with pytest.raises(ModelError) as caught:
        loads_model(text, "pql.yaml")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "[active_user]" in row)
    assert "accounts.pqa: rules_met names unknown rule 'active_user'" in str(caught.value)
    assert f"pql.yaml:{line}:" in str(caught.value)
