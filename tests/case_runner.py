"""Scoring cases as data: load a case (model + leads + events + as-of → expectations), run it, compare.

One runner serves ``tests/cases/*.yaml`` and the examples in docs/model-language.md. A case runs through
the real path on a store: leads and accounts are written with the store's upserts, the model is published
as of the case's time, the events are ingested as Segment messages (one ``ingest`` call per batch), and
every lead is scored with ``all_leads(as_of)``.

Every lead is also explained (``scoring.explain``: the same query with one row per counted event), and
the explanation must agree with the scores: the same ledger, each engagement line equal to the sum of its
events' shares, as many events under a rule line as the line counted, and the fit lines plus every event's
contribution equal to the score. A case may also expect the events under a line: ``events: {line id:
{message id: score points}}``, hand-computed like the rest.

Expected numbers may be written as arithmetic (``"= 20 * 0.5 ** (10 / 30)"``) so the hand computation is
the expectation. Values compare exactly unless the model decays (then 1e-9 relative). A score (score, fit
and engagement score) is kept to a millionth (docs/model-language.md, "Scores are kept to a millionth"),
so an expected score is the hand computation rounded half up to six decimals, and a ledger's lines (not
rounded) add up to its score within half a millionth.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select

from leadscore.compile import Ledger, half_life_ms
from leadscore.compile.contributions import EventShare, Explanation
from leadscore.compile.dialects import SCORE_DECIMALS
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import ScoringModel, loads_model
from leadscore.scoring.explain import explain, explain_lead
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import all_leads, score
from leadscore.store import Store
from leadscore.store.people import upsert_account, upsert_lead
from leadscore.store.schema import leads as leads_table

RECEIVED_MS = parse_time("2030-01-01T00:00:00Z", "received")
REL = 1e-9
CASE_KEYS = {"description", "model", "leads", "accounts", "events", "batches", "as_of", "expect"}
LEAD_KEYS = {"email", "first_name", "last_name", "company", "attributes"}
ACCOUNT_KEYS = {"domain", "name", "attributes"}
EXPECT_KEYS = {"score", "fit_score", "engagement_score", "grade", "level", "band", "ledger", "events"}
LINE_KEYS = {"points", "matched", "capped", "decay"}


@dataclass(frozen=True)
class Case:
    name: str
    model: ScoringModel
    as_of: int
    expect: Mapping[str, Mapping[str, Any]]
    batches: Sequence[Sequence[Mapping[str, Any]]] = ()
    leads: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    accounts: Sequence[Mapping[str, Any]] = ()

    @property
    def decays(self) -> bool:
        return any(half_life_ms(self.model, rule) for rule in self.model.engagement)


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise ValueError(f"{where}: {message}")


def case_from_data(data: Any, name: str) -> Case:
    """Build a case from parsed YAML; any malformed part raises ValueError naming it."""
    _require(isinstance(data, dict), name, "a case is a mapping")
    unknown = set(data) - CASE_KEYS
    _require(not unknown, name, f"unknown keys {sorted(unknown)}")
    for key in ("model", "as_of", "expect"):
        _require(key in data, name, f"missing {key!r}")
    _require(not ("events" in data and "batches" in data), name, "give either events or batches")
    model = data["model"]
    model_text = model if isinstance(model, str) else yaml.safe_dump(model, sort_keys=False)
    batches = data.get("batches") or ([data["events"]] if data.get("events") else [])
    for batch in batches:
        _require(
            isinstance(batch, list) and all(isinstance(m, dict) for m in batch), name, "events are mappings"
        )
    leads = data.get("leads") or {}
    _require(isinstance(leads, dict), name, "leads maps a user id to the lead")
    for key, lead in leads.items():
        _require(
            isinstance(lead, dict) and not set(lead) - LEAD_KEYS,
            name,
            f"lead {key}: keys are {sorted(LEAD_KEYS)}",
        )
    accounts = data.get("accounts") or []
    for account in accounts:
        _require(
            isinstance(account, dict) and not set(account) - ACCOUNT_KEYS,
            name,
            f"account keys are {sorted(ACCOUNT_KEYS)}",
        )
    expect = data["expect"]
    _require(isinstance(expect, dict) and expect, name, "expect maps a user id to expectations")
    for key, values in expect.items():
        _require(isinstance(values, dict), name, f"expect {key}: a mapping")
        unknown = set(values) - EXPECT_KEYS
        _require(not unknown, name, f"expect {key}: unknown keys {sorted(unknown)}")
        _require("score" in values, name, f"expect {key}: needs at least a score")
        for rule_id, line in (values.get("ledger") or {}).items():
            ok = not isinstance(line, dict) or not set(line) - LINE_KEYS
            _require(ok, name, f"expect {key} ledger {rule_id}: keys are {sorted(LINE_KEYS)}")
        for line_id, shares in (values.get("events") or {}).items():
            ok = isinstance(shares, dict)
            _require(ok, name, f"expect {key} events {line_id}: a mapping of message id to score points")
    return Case(
        name=name,
        model=loads_model(model_text, f"{name} (model)"),
        as_of=parse_time(data["as_of"], "as_of"),
        expect=expect,
        batches=batches,
        leads=leads,
        accounts=accounts,
    )


def load_case(path: Path) -> Case:
    return case_from_data(yaml.safe_load(path.read_text(encoding="utf-8")), path.name)


def run_case(store: Store, case: Case) -> dict[str, Ledger]:
    """Run a case on a fresh store; the ledger of every lead by its user id (external id)."""
    with store.begin() as conn:
        for account in case.accounts:
            upsert_account(
                conn,
                now_ms=RECEIVED_MS,
                domain=account.get("domain"),
                name=account.get("name"),
                attributes=account.get("attributes"),
            )
        for user_id, lead in case.leads.items():
            upsert_lead(
                conn,
                now_ms=RECEIVED_MS,
                email=lead.get("email"),
                external_id=str(user_id),
                fields={k: lead[k] for k in ("first_name", "last_name", "company") if k in lead},
                attributes=lead.get("attributes"),
            )
    publish(store, case.model, as_of=case.as_of)
    for batch in case.batches:
        messages = [normalise(raw, received_ms=RECEIVED_MS) for raw in batch]
        ingest(store, messages, source="case", as_of=case.as_of)
    with store.connect() as conn:
        keys = dict(conn.execute(select(leads_table.c.id, leads_table.c.external_id)).all())
        ledgers = score(conn, case.model, store.sources(), all_leads(case.as_of))
    return {str(keys[lg.lead_id]): lg for lg in ledgers}


_OPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
_FUNCS = {"min": min, "max": max}


def _arith(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _arith(node.body)
    if (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
    ):
        return node.value
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_arith(node.left), _arith(node.right))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_arith(node.operand)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in _FUNCS
        and not node.keywords
    ):
        return _FUNCS[node.func.id](*(_arith(a) for a in node.args))
    raise ValueError(f"not plain arithmetic: {ast.dump(node)}")


def number(value: Any) -> float:
    """An expected number: a YAML number, or a text ``"= <arithmetic>"``."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.lstrip().startswith("="):
        return float(_arith(ast.parse(value.lstrip()[1:].strip(), mode="eval")))
    raise ValueError(f"expected a number or '= arithmetic', got {value!r}")


def kept(value: float) -> float:
    """A hand-computed score as a score is kept: rounded half up to ``SCORE_DECIMALS`` decimals."""
    unit = Decimal(1).scaleb(-SCORE_DECIMALS)
    return float(Decimal(repr(value)).quantize(unit, rounding=ROUND_HALF_UP))


# how far a ledger's lines (and the events under them) may add up from its score, kept to a millionth
ROUNDED = 0.5 * 10.0**-SCORE_DECIMALS + 1e-9


def _same(actual: float, expected: float, tolerant: bool) -> bool:
    if tolerant:
        return math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-12)
    return actual == expected


def compare(ledger: Ledger, expected: Mapping[str, Any], *, tolerant: bool) -> list[str]:
    """Every difference between a ledger and its expectations, as readable lines (empty when equal)."""
    out: list[str] = []
    for key in ("score", "fit_score", "engagement_score"):
        if key in expected and not _same(getattr(ledger, key), kept(number(expected[key])), tolerant):
            out.append(f"{key}: expected {kept(number(expected[key]))!r}, got {getattr(ledger, key)!r}")
    for key in ("grade", "level", "band"):
        if key in expected and getattr(ledger, key) != expected[key]:
            out.append(f"{key}: expected {expected[key]!r}, got {getattr(ledger, key)!r}")
    if "ledger" in expected:
        lines = {line.rule_id: line for line in ledger.lines}
        want = expected["ledger"] or {}
        if set(lines) != set(want):
            out.append(f"ledger lines: expected {sorted(want)}, got {sorted(lines)}")
        for rule_id, spec in want.items():
            line = lines.get(rule_id)
            if line is None:
                continue
            spec = spec if isinstance(spec, dict) else {"points": spec}
            if "points" in spec and not _same(line.score_points, number(spec["points"]), tolerant):
                out.append(
                    f"{rule_id}.points: expected {number(spec['points'])!r}, got {line.score_points!r}"
                )
            for key in ("matched", "capped"):
                if key in spec and getattr(line, key) != spec[key]:
                    out.append(f"{rule_id}.{key}: expected {spec[key]!r}, got {getattr(line, key)!r}")
            if "decay" in spec and (line.decay is None or not _same(line.decay, number(spec["decay"]), True)):
                out.append(f"{rule_id}.decay: expected {number(spec['decay'])!r}, got {line.decay!r}")
    return out


def explain_case(store: Store, case: Case) -> dict[str, Explanation]:
    """The explanation of every lead of a case already run (``run_case``), by user id."""
    with store.connect() as conn:
        keys = dict(conn.execute(select(leads_table.c.id, leads_table.c.external_id)).all())
        found = explain(conn, case.model, store.sources(), all_leads(case.as_of))
        # one lead at a time (the lead page's path: the statement built once, the lead bound) reads the same
        for x in found:
            alone = explain_lead(conn, case.model, store.sources(), x.ledger.lead_id, case.as_of)
            assert alone == x, (x.ledger.lead_id, alone, x)
    return {str(keys[x.ledger.lead_id]): x for x in found}


def _near(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=1e-9)


def share_problems(explanation: Explanation) -> list[str]:
    """Where an explanation's events do not add up to its ledger lines, or its lines to the score."""
    ledger = explanation.ledger
    lines = {line.rule_id: line for line in ledger.lines}
    out: list[str] = []
    explained = {line.rule_id for line in ledger.lines if line.section == "engagement"}
    for event in explanation.events:
        if event.rule_id not in lines:
            out.append(f"event {event.message_id} counted for {event.rule_id}, which has no line")
        explained |= {line_id for line_id in _line_ids(event) if event.share(line_id) != 0.0}
    for line_id in sorted(explained):
        events = explanation.line_events(line_id)
        more, rest = explanation.line_rest(line_id)
        total = sum(share for _, share in events) + rest
        line = lines.get(line_id)
        want = line.score_points if line else 0.0
        if not _near(total, want):
            out.append(f"events under {line_id} add up to {total!r}, the line is {want!r}")
        if (
            line is not None
            and line.kind in ("each", "once", "threshold", "recency", "ratio")
            and len(events) + more != line.matched
        ):
            out.append(
                f"{line_id}: {len(events)} events listed and {more} not, the line counted {line.matched}"
            )
    total = sum(ln.score_points for ln in ledger.lines if ln.section == "fit")
    total += sum(event.score_points for event in explanation.events)
    total += sum(explanation.line_rest(ln.rule_id)[1] for ln in ledger.lines if ln.section == "engagement")
    if not math.isclose(total, ledger.score, rel_tol=REL, abs_tol=ROUNDED):
        out.append(f"fit lines and event contributions add up to {total!r}, the score is {ledger.score!r}")
    return out


def _line_ids(event: EventShare) -> tuple[str, ...]:
    """Every line an event may have a share of."""
    group = (f"group:{event.group}",) if event.group else ()
    return (event.rule_id, *group, "floor:engagement", "clamp:engagement")


def compare_events(explanation: Explanation, expected: Mapping[str, Any]) -> list[str]:
    """Differences between the events under each named line and the expected shares by message id."""
    out: list[str] = []
    for line_id, spec in expected.items():
        got: dict[str, float] = {}
        for event, share in explanation.line_events(line_id):
            got[event.message_id] = got.get(event.message_id, 0.0) + share
        want = {str(k): number(v) for k, v in spec.items()}
        if set(got) != set(want):
            out.append(f"events under {line_id}: expected {sorted(want)}, got {sorted(got)}")
            continue
        for message_id, share in want.items():
            if not _near(got[message_id], share):
                out.append(f"{line_id} event {message_id}: expected {share!r}, got {got[message_id]!r}")
    return out


def check_case(store: Store, case: Case) -> list[str]:
    """Run a case and list every mismatch, lead by lead; also every lead the case did not expect."""
    ledgers = run_case(store, case)
    explanations = explain_case(store, case)
    problems: list[str] = []
    for user_id, expected in case.expect.items():
        if str(user_id) not in ledgers:
            problems.append(f"{user_id}: no such lead (leads: {sorted(ledgers)})")
            continue
        problems.extend(
            f"{user_id}: {p}" for p in compare(ledgers[str(user_id)], expected, tolerant=case.decays)
        )
        problems.extend(
            f"{user_id}: {p}"
            for p in compare_events(explanations[str(user_id)], expected.get("events") or {})
        )
    for user_id, ledger in ledgers.items():
        explanation = explanations.get(user_id)
        if explanation is None or explanation.ledger != ledger:
            problems.append(f"{user_id}: the explanation's ledger is not the score's ledger")
            continue
        problems.extend(f"{user_id}: {p}" for p in share_problems(explanation))
    unexpected = sorted(set(ledgers) - {str(k) for k in case.expect})
    if unexpected:
        problems.append(f"leads without expectations: {unexpected}")
    return problems
