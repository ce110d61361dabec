"""The lifecycle section of the model: positioned errors, round trip, the shipped example."""

from __future__ import annotations

from pathlib import Path

import pytest

from leadscore.errors import ModelValidationError
from leadscore.model import dump_model, load_model, loads_model
from lifecycle_model import MODEL

ROOT = Path(__file__).resolve().parent.parent


def problems(text: str) -> list[str]:
    with pytest.raises(ModelValidationError) as info:
        load_model("model.yaml", text=text)
    return [str(p) for p in info.value.problems]


def test_round_trip_and_example() -> None:
    model = loads_model(MODEL)
    assert loads_model(dump_model(model)) == model
    example = load_model(ROOT / "examples/b2b_saas/model.yaml")
    assert example.lifecycle is not None
    qualified = next(t for t in example.lifecycle.transitions if t.id == "qualified")
    assert (qualified.to, qualified.when.score_at_least, qualified.when.grade_at_least) == ("mql", 60, "B")
    assert load_model(ROOT / "src/leadscore/demo/b2b_saas.yaml") == example


def test_errors_are_positioned() -> None:
    text = """model: broken
lifecycle:
  initial: lead
  hysterisis: 5
  stages:
    - {id: lead, name: Lead}
    - {id: mql, name: MQL}
    - {id: lead, name: Again}
  transitions:
    - {id: up, from: [lead], to: mqll, when: {score_at_least: 60}}
    - {id: down, from: [mql, nope], to: lead, when: {score_below: 50}}
    - {id: never, from: [lead], to: mql}
  teams:
    - {id: emea, name: EMEA, sellers: [{id: lena, name: Lena, email: lena@x.example}]}
  assignment: {stage: mql, default_team: nordics}
  actions:
    - id: mail
      trigger: {enter: mql}
      mail: {to: seller, subject: "Hi {{ lead.name }", body: ok}
"""
    assert problems(text) == [
        "model.yaml:4:3 field lifecycle.hysterisis: unknown key 'hysterisis'",
        "model.yaml:8:12 field lifecycle.stages.2.id: duplicate stage id 'lead'",
        "model.yaml:10:34 field lifecycle.transitions.0.to: unknown stage 'mqll' (stages: lead, mql)",
        "model.yaml:11:30 field lifecycle.transitions.1.from.1: unknown stage 'nope' (stages: lead, mql)",
        "model.yaml:12:7 field lifecycle.transitions.2: transition never: an automatic (trigger: score) transition needs 'when'",
        "model.yaml:15:42 field lifecycle.assignment.default_team: unknown team 'nordics' (teams: emea)",
        "model.yaml:19:35 field lifecycle.actions.0.mail.subject: template syntax: unexpected '}' (template line 1)",
    ]
