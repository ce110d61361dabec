"""Who works a lead that enters an assignment (hand-off) stage: the owner of its account in a team the stage
routes to (stickiness, an owner per account and team: ``Assignment.teams_for``), else
a team chosen by the first territory rule that applies to the stage entered and matches the lead (country,
industry, company size, any attribute condition), or the default team, and within the team the next seller
in round-robin order. Each assignment stage may be a team's (its score's MQL stage, docs/named-scores.md):
a territory limited to ``stages`` routes only the leads entering those.

The rotation position is a row per team, locked while a seller is picked, so concurrent runners never
give two leads the same turn and a team's sellers differ in assigned leads by at most one. It holds the
seller served last, by identity, so a version that reorders, adds or removes sellers goes on from them
(``store.lifecycle_tables.next_in_rotation``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from leadscore.lifecycle.gates import matching
from leadscore.lifecycle.sla import sla_due
from leadscore.model import ScoringModel
from leadscore.model.lifecycle import Seller
from leadscore.store.lifecycle_tables import (
    account_owners_in,
    add_assignment,
    next_in_rotation,
    set_account_owner,
)
from leadscore.store.people import normalise_email
from leadscore.store.schema import leads
from leadscore.store.users import disabled_emails


@dataclass(frozen=True)
class Assigned:
    id: int
    team: str
    seller: str
    reason: str
    due_ms: int | None


def assign(
    conn: Connection, model: ScoringModel, lead_id: int, move_id: int, stage: str, now_ms: int
) -> Assigned | None:
    """Assign the lead for the stage move ``move_id`` into the assignment stage ``stage`` (once per move);
    None if it was already assigned."""
    lifecycle = model.lifecycle
    assert lifecycle is not None and lifecycle.assignment is not None
    rules = lifecycle.assignment
    account_id = conn.execute(select(leads.c.account_id).where(leads.c.id == lead_id)).scalar()
    team_id = seller_id = None
    reason = "default"
    # the owners in the teams this stage routes to: each team (each score's stage) keeps its own owner
    owners = []
    if rules.sticky_accounts and account_id is not None:
        owners = account_owners_in(conn, account_id, rules.teams_for(stage))
    gone = disabled_emails(conn)  # sellers whose dashboard user was disabled: they left

    def working(seller: Seller) -> bool:
        return not has_left(seller, gone)

    for owner in owners:
        found = lifecycle.seller(owner["seller"])
        # still a seller of that team, and not one whose user was disabled
        if found is not None and found[0].id == owner["team"] and working(found[1]):
            team_id, seller_id, reason = found[0].id, found[1].id, "account_owner"
            break
    if seller_id is None:
        team_id = rules.default_team
        for i, territory in enumerate(rules.territories):
            if not territory.applies(stage):
                continue
            if territory.when is None or matching(conn, model, territory.when, [lead_id], f"territory_{i}"):
                team_id, reason = territory.team, "territory"
                break
        team = lifecycle.team(team_id)
        # a disabled seller takes no turn; a team whose sellers are all disabled still gets its leads
        # (its manager's SLA escalation is then what moves them)
        turn = next_in_rotation(
            conn, team.id, [s.id for s in team.sellers], [working(s) for s in team.sellers]
        )
        seller_id = team.sellers[turn].id
        if rules.sticky_accounts and account_id is not None:
            # an owner who left the team (a version without them, or disabled) hands the account over
            left = next((o["seller"] for o in owners if o["team"] == team.id), None)
            set_account_owner(conn, account_id, seller_id, team.id, now_ms, replacing=left)
    assert team_id is not None
    due = sla_due(lifecycle, stage, team_id, now_ms)
    row: dict[str, Any] = {
        "lead_id": lead_id,
        "stage_move_id": move_id,
        "team": team_id,
        "seller": seller_id,
        "reason": reason,
        "at_ms": now_ms,
        "due_ms": due,
    }
    assignment_id = add_assignment(conn, row)
    if assignment_id is None:
        return None
    return Assigned(assignment_id, team_id, seller_id, reason, due)


def people(model: ScoringModel, team_id: str | None, seller_id: str | None) -> dict[str, Any]:
    """Template context for the assignment: team, seller and manager (empty dicts when unknown)."""
    lifecycle = model.lifecycle
    if lifecycle is None or team_id is None:
        return {"team": {}, "seller": {}, "manager": {}}
    team = next((t for t in lifecycle.teams if t.id == team_id), None)
    found = lifecycle.seller(seller_id) if seller_id else None
    seller = found[1].model_dump() if found else {}
    manager = team.manager.model_dump() if team and team.manager else {}
    return {
        "team": {"id": team_id, "name": team.name if team else team_id},
        "seller": seller,
        "manager": manager,
    }


def has_left(seller: Seller, gone: frozenset[str]) -> bool:
    """Whether the seller has left: their dashboard user is disabled (``gone``:
    ``store.users.disabled_emails``). They take no turn in the rotation, own no account and are given no
    lead by a reassignment."""
    return normalise_email(seller.email) in gone
