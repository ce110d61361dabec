"""The seller's desk: who may act on a lead, and the handoff rows a viewer sees.

A manager is a signed-in user with the admin role (every lead) or the manager of a team in the active
model's lifecycle (``teams[].manager.email``: that team's leads). Anyone else with the ``feedback``
permission is a rep, who sees and acts on the leads assigned to them only. The reasons shown per lead are
the stored ledger's largest lines (the same lines the lead page explains), the last activity is the
lifecycle's own fact (``gates.read_facts``), and the SLA clock is the assignment's deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from leadscore.lifecycle.gates import read_facts
from leadscore.lifecycle.reports import ready_for_handoff
from leadscore.lifecycle.stages import triggered
from leadscore.model import Lifecycle, ScoringModel
from leadscore.store.lifecycle_tables import current_assignment
from leadscore.store.results import read_current
from leadscore.web.data.lead import rule_names
from leadscore.web.data.stages import seller_label

REASONS = 3


def managed_teams(lifecycle: Lifecycle, email: str) -> frozenset[str]:
    """Ids of the teams whose manager has this e-mail address."""
    return frozenset(
        t.id for t in lifecycle.teams if t.manager is not None and t.manager.email.lower() == email.lower()
    )


def _seller_email(lifecycle: Lifecycle, seller_id: str | None) -> str | None:
    return seller_label(lifecycle, seller_id)[1] if seller_id else None


def may_act(lifecycle: Lifecycle, assignment: dict[str, Any] | None, email: str, role: str) -> bool:
    """Whether the user may accept or reject a lead with this (latest) assignment: an admin always; else
    the assigned seller, or the manager of the assigned team. An unassigned lead is a manager's to act on."""
    if role == "admin":
        return True
    if assignment is None:
        return False
    seller = _seller_email(lifecycle, assignment.get("seller"))
    if seller is not None and seller.lower() == email.lower():
        return True
    return assignment.get("team") in managed_teams(lifecycle, email)


def may_act_on(conn: Connection, lifecycle: Lifecycle | None, lead_id: int, email: str, role: str) -> bool:
    if lifecycle is None:
        return role == "admin"
    return may_act(lifecycle, current_assignment(conn, lead_id), email, role)


@dataclass
class Desk:
    manager: bool
    mine: list[dict[str, Any]] = field(default_factory=list)
    team: list[dict[str, Any]] = field(default_factory=list)  # others' leads this viewer manages (or reads)


def _reasons(conn: Connection, names: dict[str, tuple[str, str]], lead_id: int) -> list[dict[str, Any]]:
    _, lines = read_current(conn, lead_id)
    lines = [ln for ln in lines if float(ln["score_points"]) != 0]
    lines.sort(key=lambda ln: (-abs(float(ln["score_points"])), ln["rule_id"]))
    return [
        {"name": names.get(ln["rule_id"], (ln["rule_id"], ""))[0], "points": float(ln["score_points"])}
        for ln in lines[:REASONS]
    ]


def desk(
    conn: Connection, model: ScoringModel, lifecycle: Lifecycle, email: str, role: str, can_act: bool
) -> Desk:
    """The leads ready for handoff that this viewer sees: their own first, then (for a manager, or a
    reader who gives no feedback) everyone else's they may see. A rep sees only their own."""
    teams = managed_teams(lifecycle, email)
    out = Desk(manager=role == "admin" or bool(teams))
    rows = ready_for_handoff(conn, lifecycle)
    facts = read_facts(conn, rows)
    names = rule_names(model)
    for row in rows:
        assignment = {"team": row.get("team"), "seller": row.get("seller")} if row.get("team") else None
        row["owner"], owner_email = seller_label(lifecycle, row.get("seller"))
        found = facts.get(int(row["lead_id"]))
        row["last_activity_ms"] = found.last_event_ms if found is not None else None
        acts = can_act and may_act(lifecycle, assignment, email, role)
        row["can_accept"] = acts and triggered(lifecycle, row["stage"], "accepted") is not None
        row["can_reject"] = acts and triggered(lifecycle, row["stage"], "rejected") is not None
        if owner_email is not None and owner_email.lower() == email.lower():
            target = out.mine
        elif (out.manager and (role == "admin" or row.get("team") in teams)) or not can_act:
            target = out.team
        else:
            continue
        row["reasons"] = _reasons(conn, names, int(row["lead_id"]))
        target.append(row)
    return out
