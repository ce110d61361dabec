"""The examples in docs/lifecycle.md, executed on both engines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from leadscore.errors import ModelValidationError
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.runner import run_round
from leadscore.model import load_model, loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.lifecycle_tables import current_assignment, read_stage_history
from leadscore.store.people import find_lead
from lifecycle_model import settings

DOC = (Path(__file__).resolve().parent.parent / "docs" / "lifecycle.md").read_text(encoding="utf-8")


def _blocks(marker: str) -> dict[str, list[str]]:
    out = {}
    for match in re.finditer(rf"<!-- {marker}: ([\w-]+) -->", DOC):
        rest = DOC[match.end() :]
        out[match.group(1)] = re.findall(r"```\w*\n(.*?)```", rest, re.S)[:3]
    return out


EXAMPLES = _blocks("lifecycle-example")
INVALID = _blocks("lifecycle-invalid")


def test_doc_has_examples() -> None:
    assert set(EXAMPLES) == {"handoff"} and set(INVALID) == {"validation"}


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example(store: Store, name: str) -> None:
    model_text, events, expect_text = EXAMPLES[name]
    expect = yaml.safe_load(expect_text)
    as_of = parse_time(expect["as_of"], "as_of")
    publish(store, loads_model(model_text))
    ingest(
        store,
        [normalise(yaml.safe_load(line), received_ms=as_of) for line in events.splitlines() if line.strip()],
        source="doc",
    )
    run_round(store, settings(), now_ms=as_of, deliver=False)
    with store.connect() as conn:
        for user, want in expect["leads"].items():
            lead_id = find_lead(conn, external_id=user)
            assert lead_id is not None
            assert [h["to_stage"] for h in read_stage_history(conn, lead_id)] == want["stages"], user
            assignment = current_assignment(conn, lead_id)
            assert (assignment["seller"] if assignment else None) == want.get("seller"), user


def test_invalid_example() -> None:
    model_text, expected = INVALID["validation"][:2]
    with pytest.raises(ModelValidationError) as info:
        load_model("model.yaml", text=model_text)
    assert [str(p) for p in info.value.problems] == expected.strip().splitlines()
