"""Conditions of transitions and segments: score, grade, level, band, inactivity (in Python, on the
stored current score) and attribute conditions (compiled to SQL by the scoring compiler, so an attribute
condition means exactly what it means in a fit rule).

``rules_met`` holds when each named rule's line in the lead's ledger gives points (not 0): a product
usage rule (``active_users``) met, whatever the rest of the score, so a gate can combine marketing fit or
engagement (``score_at_least``, ``grade_at_least``) with product usage.

A gate naming a ``score`` tests that named score (one per product line or persona): an MQL for the
analytics team can ask ``{score: analytics, score_at_least: 60, grade_at_least: B}`` while another
transition asks the same of the ``core`` score. The facts carry every named score of the lead.

``new_activity`` holds when the lead has an event newer than its entry into the current stage: a lead
recycled after a rejection or silence needs to show interest again before it is re-qualified.

Hysteresis: a ``score_below: X`` test is ``score < X − hysteresis``. A lead that entered a stage at a
score of X therefore stays until its score falls more than ``hysteresis`` points below X, and a score
hovering around X does not flap between two stages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from sqlalchemy import Connection, func, select

from leadscore.compile.conditions import compile_condition
from leadscore.compile.query import lead_resolver
from leadscore.model import Condition, Gate, ScoringModel, duration_seconds
from leadscore.store.ledger_lines import read_lines
from leadscore.store.schema import accounts, events, identities, leads, scores
from leadscore.store.score_names import primary_score

GRADE_RANK = {"A": 0, "B": 1, "C": 2, "D": 3}


@dataclass(frozen=True)
class Facts:
    """What gates read about one lead: its stored current score, stage entry and last activity."""

    lead_id: int
    score: float
    fit_score: float
    engagement_score: float
    grade: str
    level: int
    band: str
    scored_ms: int
    entered_ms: int
    last_event_ms: int | None
    # rule id → the points its ledger line gives (lines giving none are left out): what rules_met tests
    rule_points: Mapping[str, float] = field(default_factory=dict)
    # every named score of the lead (these facts are the primary's), for gates that name a score
    named: Mapping[str, Facts] = field(default_factory=dict)

    def of_score(self, name: str | None) -> Facts | None:
        """The facts of the named score (these, for None: the primary), or None when the lead has none."""
        if name is None:
            return self
        found = self.named.get(name)
        return None if found is None else found.entering(self.entered_ms)

    def entering(self, at_ms: int) -> Facts:
        """The same facts for a lead that entered its stage at ``at_ms`` (cheaper than ``replace``: the
        backtest asks this for every replayed observation)."""
        if at_ms == self.entered_ms:
            return self
        return Facts(self.lead_id, self.score, self.fit_score, self.engagement_score, self.grade, self.level,
                     self.band, self.scored_ms, at_ms, self.last_event_ms, self.rule_points,
                     self.named)  # fmt: skip


def holds(
    gate: Gate,
    facts: Facts,
    *,
    hysteresis: float,
    attribute_ok: bool,
    now_ms: int,
) -> bool:
    """Whether every test the gate names holds for the lead (``attribute_ok``: its attribute condition), on
    the score the gate names (the primary unless it names one)."""
    named = facts.of_score(gate.score)
    if named is None:
        return False
    facts = named
    if gate.score_at_least is not None and not facts.score >= gate.score_at_least:
        return False
    if gate.score_below is not None and not facts.score < gate.score_below - hysteresis:
        return False
    if gate.grade_at_least is not None and GRADE_RANK[facts.grade] > GRADE_RANK[gate.grade_at_least]:
        return False
    if gate.level_at_least is not None and facts.level > gate.level_at_least:
        return False
    if gate.band_in is not None and facts.band not in gate.band_in:
        return False
    quiet = quiet_until(gate, facts)
    if quiet is not None and now_ms < quiet:
        return False
    if gate.rules_met is not None and not rules_met(facts.rule_points, gate.rules_met):
        return False
    if gate.new_activity and not (facts.last_event_ms is not None and facts.last_event_ms > facts.entered_ms):
        return False
    return not (gate.attributes is not None and not attribute_ok)


def rules_met(rule_points: Mapping[str, float], rules: Iterable[str]) -> bool:
    """Each rule's ledger line gives points (not 0): what ``rules_met`` tests, for a lead's gate and for
    an account's PQA (``lifecycle.accounts``, with the points its contacts' lines give)."""
    return all(rule_points.get(r, 0) != 0 for r in rules)


def quiet_until(gate: Gate, facts: Facts) -> int | None:
    """When the gate's ``inactive_for`` test starts to hold if nothing happens meanwhile (None: no test):
    that long after the later of the lead's last event and its entry into the stage."""
    if gate.inactive_for is None:
        return None
    quiet_since = max(facts.entered_ms, facts.last_event_ms or 0)
    return quiet_since + math.ceil(duration_seconds(gate.inactive_for) * 1000)


def matching(
    conn: Connection, model: ScoringModel, condition: Condition, lead_ids: Sequence[int], label: str
) -> set[int]:
    """Which of ``lead_ids`` satisfy an attribute condition (one query, the compiler's semantics)."""
    if not lead_ids:
        return set()
    resolve = lead_resolver(leads, accounts)
    test = compile_condition(condition, resolve, model, label)
    query = (
        select(leads.c.id)
        .select_from(leads.outerjoin(accounts, accounts.c.id == leads.c.account_id))
        .where(leads.c.id.in_(list(lead_ids)), test)
    )
    return set(conn.execute(query).scalars())


def read_facts(conn: Connection, stage_rows: Iterable[dict[str, object]]) -> dict[int, Facts]:
    """Facts for leads given their stage rows (lead_id, entered_ms): the primary score's, with every named
    score beside them; leads without a primary score are left out. ``scored_ms`` is the latest time any
    of a lead's scores was scored (what the runner marks as seen)."""
    entered = {int(r["lead_id"]): int(r["entered_ms"]) for r in stage_rows}  # type: ignore[call-overload]
    ids = list(entered)
    if not ids:
        return {}
    last = dict(
        conn.execute(
            select(identities.c.lead_id, func.max(events.c.ts))
            .join(events, events.c.person_key == identities.c.key)
            .where(identities.c.lead_id.in_(ids))
            .group_by(identities.c.lead_id)
        ).all()
    )
    points: dict[tuple[int, str], dict[str, float]] = {}
    for line in read_lines(conn, ids, every_score=True, nonzero=True):
        points.setdefault((int(line["lead_id"]), str(line["score_name"])), {})[str(line["rule_id"])] = float(
            line["score_points"]
        )
    primary = primary_score(conn)
    every: dict[int, dict[str, Facts]] = {}
    for r in conn.execute(select(scores).where(scores.c.lead_id.in_(ids))).mappings():
        lid, name = int(r["lead_id"]), str(r["score_name"])
        every.setdefault(lid, {})[name] = Facts(
            lead_id=lid,
            score=float(r["score"]),
            fit_score=float(r["fit_score"]),
            engagement_score=float(r["engagement_score"]),
            grade=str(r["grade"]),
            level=int(r["level"]),
            band=str(r["band"]),
            scored_ms=int(r["scored_ms"]),
            entered_ms=entered[lid],
            last_event_ms=int(last[lid]) if last.get(lid) is not None else None,
            rule_points=points.get((lid, name), {}),
        )
    out: dict[int, Facts] = {}
    for lid, by_name in every.items():
        first = by_name.get(primary)
        if first is None:
            continue
        newest = max(f.scored_ms for f in by_name.values())
        out[lid] = replace(first, scored_ms=newest, named=by_name)
    return out
