"""Whose leads are whose: the rule behind the seller's desk (``web.data.desk``) and the notifications
to users (``lifecycle.notify``).

A manager is a user with the admin role (every lead) or the manager of a team in the model's lifecycle
(``teams[].manager.email``: that team's leads). A rep sees and acts on the leads assigned to them only.

A rep's accept or reject is their decision on the hand-off they were given. Once its assignment is
handled (accepted, by them or their manager, or converted by an SQL outcome), that decision is made: a
rep no longer rejects the lead (``reject_refused``), not even where the model lets a lead be rejected
from SQL. Turning down a lead sales already took is a later disqualification (``decisions``), which the
team's manager or an admin gives, or the CRM reports as the outcome ``disqualified``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, case

from leadscore.model import Lifecycle
from leadscore.store.people import normalise_email


def managed_teams(lifecycle: Lifecycle, email: str) -> frozenset[str]:
    """Ids of the teams whose manager has this e-mail address."""
    return frozenset(
        t.id
        for t in lifecycle.teams
        if t.manager is not None and normalise_email(t.manager.email) == normalise_email(email)
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
    if seller is not None and normalise_email(seller) == normalise_email(email):
        return True
    return assignment.get("team") in managed_teams(lifecycle, email)


def reject_refused(
    lifecycle: Lifecycle, assignment: dict[str, Any] | None, email: str, role: str
) -> str | None:
    """Why the user, who may act on the lead (``may_act``), may not reject it: its (latest) assignment
    was handled and they are a rep, not its team's manager nor an admin; None when they may."""
    if assignment is None or assignment.get("touched_ms") is None or role == "admin":
        return None
    if assignment.get("team") in managed_teams(lifecycle, email):
        return None
    handled = assignment["touched_ms"]
    day = datetime.fromtimestamp(int(handled) / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")
    return (
        f"this lead's hand-off was already handled on {day} UTC (accepted, or converted by an outcome), "
        "so it is no longer a seller's to reject; to turn it down now, ask the team's manager, or record "
        "the outcome 'disqualified'"
    )


def sellers_of(lifecycle: Lifecycle, email: str) -> frozenset[str]:
    """Ids of the sellers with this e-mail address (``seller_email``): whose leads are this user's own."""
    ids = (s.id for t in lifecycle.teams for s in t.sellers)
    return frozenset(
        i
        for i in ids
        if (found := seller_email(lifecycle, i)) and normalise_email(found) == normalise_email(email)
    )


def whose_rank(
    lifecycle: Lifecycle,
    seller: ColumnElement[Any],
    team: ColumnElement[Any],
    email: str,
    teams: frozenset[str],
) -> ColumnElement[int]:
    """Whose a handoff row (``lifecycle.reports.handoff_query``) is for ``email``, who manages ``teams``,
    in SQL over the query's seller and team columns: 0 their own, 1 their team's, 2 neither (the desk and
    the digest filter, order and page their rows by it)."""
    return case((seller.in_(sellers_of(lifecycle, email)), 0), (team.in_(teams), 1), else_=2)
