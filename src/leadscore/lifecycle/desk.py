"""Whose leads are whose: the rule behind the seller's desk (``web.data.desk``) and the notifications
to users (``lifecycle.notify``).

A manager is a user with the admin role (every lead) or the manager of a team in the model's lifecycle
(``teams[].manager.email``: that team's leads). A rep sees and acts on the leads assigned to them only.
"""

from __future__ import annotations

from typing import Any, Literal

from leadscore.model import Lifecycle

Whose = Literal["mine", "team"]


def managed_teams(lifecycle: Lifecycle, email: str) -> frozenset[str]:
    """Ids of the teams whose manager has this e-mail address."""
    return frozenset(
        t.id for t in lifecycle.teams if t.manager is not None and t.manager.email.lower() == email.lower()
    )


def seller_email(lifecycle: Lifecycle, seller_id: str | None) -> str | None:
    found = lifecycle.seller(seller_id) if seller_id else None
    return found[1].email if found is not None else None


def may_act(lifecycle: Lifecycle, assignment: dict[str, Any] | None, email: str, role: str) -> bool:
    """Whether the user may accept or reject a lead with this (latest) assignment: an admin always; else
    the assigned seller, or the manager of the assigned team. An unassigned lead is a manager's to act on."""
    if role == "admin":
        return True
    if assignment is None:
        return False
    seller = seller_email(lifecycle, assignment.get("seller"))
    if seller is not None and seller.lower() == email.lower():
        return True
    return assignment.get("team") in managed_teams(lifecycle, email)


def whose(lifecycle: Lifecycle, row: dict[str, Any], email: str, teams: frozenset[str]) -> Whose | None:
    """A handoff row (``lifecycle.reports.ready_for_handoff``) seen by ``email``, who manages ``teams``:
    their own, their team's, or neither."""
    owner = seller_email(lifecycle, row.get("seller"))
    if owner is not None and owner.lower() == email.lower():
        return "mine"
    if row.get("team") in teams:
        return "team"
    return None
