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
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.schema import leads

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
    # Soloco: one person (active_users not met): 4 features (30) + recent login (10) = 40
    assert _stage(store, "sol@solo.example") == "trial"
