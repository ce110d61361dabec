"""Every example in docs/model-language.md runs, on SQLite and PostgreSQL, exactly as written.

An example is a ``<!-- example: NAME -->`` marker followed by a ``yaml`` block (the model), a ``jsonl``
block (Segment messages, one ingest call) and an ``expect`` block (``as_of`` and ``leads``). An
``<!-- invalid: NAME -->`` marker is followed by a ``yaml`` block and a ``text`` block with the problems
``validate`` reports, one per line. A marker without its blocks, or a block no marker claims, is an error
when this module is imported, so a broken example fails the run instead of being skipped.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from case_runner import Case, case_from_data, check_case
from leadscore.errors import ModelValidationError
from leadscore.model import loads_model
from leadscore.store import Store

DOC = Path(__file__).resolve().parent.parent / "docs" / "model-language.md"
FENCE = re.compile(r"^```(?P<info>[\w-]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)
MARKER = re.compile(r"^<!-- (?P<kind>example|invalid): (?P<name>[\w-]+) -->$", re.MULTILINE)
LAYOUT = {"example": ("yaml", "jsonl", "expect"), "invalid": ("yaml", "text")}
EXAMPLE_ONLY = {"jsonl", "expect", "text"}


@dataclass(frozen=True)
class Block:
    info: str
    body: str
    line: int


@dataclass(frozen=True)
class Invalid:
    name: str
    model: str
    problems: tuple[str, ...]


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def parse_doc(text: str) -> tuple[list[Case], list[Invalid], list[Block]]:
    """Examples, invalid-model examples, and the free-standing blocks (illustrations) of the document."""
    blocks = [Block(m["info"], m["body"], _line(text, m.start())) for m in FENCE.finditer(text)]
    starts = [m.start() for m in FENCE.finditer(text)]
    examples: list[Case] = []
    invalid: list[Invalid] = []
    claimed: set[int] = set()
    names: set[str] = set()
    for marker in MARKER.finditer(text):
        kind, name = marker["kind"], marker["name"]
        where = f"{DOC.name}:{_line(text, marker.start())} {kind} {name}"
        if name in names:
            raise ValueError(f"{where}: the name is used twice")
        names.add(name)
        first = next((i for i, s in enumerate(starts) if s > marker.start()), len(blocks))
        want = LAYOUT[kind]
        got = blocks[first : first + len(want)]
        if tuple(b.info for b in got) != want:
            raise ValueError(f"{where}: expected blocks {want}, found {tuple(b.info for b in got)}")
        claimed.update(range(first, first + len(want)))
        if kind == "invalid":
            lines = tuple(line for line in got[1].body.splitlines() if line.strip())
            invalid.append(Invalid(name, got[0].body, lines))
            continue
        events = [json.loads(line) for line in got[1].body.splitlines() if line.strip()]
        expect = yaml.safe_load(got[2].body)
        if not isinstance(expect, dict) or set(expect) != {"as_of", "leads"}:
            raise ValueError(f"{where}: an expect block has exactly 'as_of' and 'leads'")
        data: dict[str, Any] = {"model": got[0].body, "events": events, **expect}
        data["expect"] = data.pop("leads")
        examples.append(case_from_data(data, name))
    free = [b for i, b in enumerate(blocks) if i not in claimed]
    orphans = [b for b in free if b.info in EXAMPLE_ONLY]
    if orphans:
        raise ValueError(f"{DOC.name}:{orphans[0].line}: a {orphans[0].info} block outside an example")
    return examples, invalid, free


EXAMPLES, INVALID, FREE = parse_doc(DOC.read_text(encoding="utf-8"))
RULE_KINDS = {"fit", "each", "once", "threshold", "recency", "ratio"}


def test_the_reference_has_an_example_per_rule_kind_and_operator() -> None:
    kinds: set[str] = set()
    operators: set[str] = set()
    for case in EXAMPLES:
        kinds.update("fit" for _ in case.model.fit)
        kinds.update(rule.kind for rule in case.model.engagement)
        for rule in (*case.model.fit, *case.model.engagement):
            condition = getattr(rule, "when", None) or getattr(rule, "where", None)
            operators.update(_operators(condition.model_dump(mode="json") if condition is not None else {}))
    assert kinds == RULE_KINDS
    missing = {
        "equals", "not_equals", "in", "contains", "prefix", "glob", "regex", "gt", "gte",
        "between", "exists", "missing", "in_list", "all", "any", "not",
    } - operators  # fmt: skip
    assert not missing, f"no example uses {sorted(missing)}"
    assert len(EXAMPLES) >= 10


def _operators(condition: Any) -> set[str]:
    if isinstance(condition, list):
        return set().union(*(_operators(c) for c in condition))
    if not isinstance(condition, dict):
        return set()
    found = {k for k in condition if k not in ("attribute", "property")}
    for key in ("all", "any", "not"):
        if key in condition:
            found |= _operators(condition[key])
    return found


@pytest.mark.parametrize("case", EXAMPLES, ids=[c.name for c in EXAMPLES])
def test_example(store: Store, case: Case) -> None:
    problems = check_case(store, case)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("example", INVALID, ids=[i.name for i in INVALID])
def test_invalid_example_reports_every_problem(example: Invalid) -> None:
    with pytest.raises(ModelValidationError) as caught:
        loads_model(example.model, "model.yaml")
    reported = [str(p) for p in caught.value.problems]
    assert len(reported) == len(example.problems), reported
    for want, got in zip(example.problems, reported, strict=True):
        assert got.startswith(want), f"expected {want!r}, got {got!r}"


@pytest.mark.parametrize(
    "block",
    [b for b in FREE if b.info == "yaml" and b.body.startswith("model:")],
    ids=lambda b: f"line-{b.line}",
)
def test_illustrative_models_load(block: Block) -> None:
    model = loads_model(block.body, f"{DOC.name}:{block.line}")
    assert model.model
