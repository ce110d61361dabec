"""A lead's place in the lifecycle as the lead and handoff pages show it: stage, stage history, owner,
SLA, feedback (with notes), and whether a seller can accept or reject it now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from leadscore.lifecycle.stages import triggered
from leadscore.model import Lifecycle
from leadscore.store.lifecycle_tables import (
    assignment_waiting,
    current_assignment,
    read_feedback,
    stage_history_rows,
)
from leadscore.store.schema import lead_stages
from leadscore.web.data.paging import Paging, paged_rows, paging

MOVES_PAGE = 50  # stage moves listed a page (a lead bounced in and out of a stage has any number)


@dataclass
class StageView:
    stage: str | None
    stage_name: str | None
    entered_ms: int | None = None  # when the lead entered its stage (the stay its accept / reject is for)
    history: list[dict[str, Any]] = field(default_factory=list)  # the page ``history_at``, oldest first
    history_at: Paging = field(default_factory=lambda: paging(0, 1, MOVES_PAGE))  # newest first, from 1
    owner: str | None = None  # seller name (team)
    owner_email: str | None = None
    due_ms: int | None = None
    touched_ms: int | None = None
    feedback: list[dict[str, Any]] = field(default_factory=list)
    can_accept: bool = False
    can_reject: bool = False
    reasons: tuple[str, ...] = ()


def seller_label(lifecycle: Lifecycle, seller_id: str | None) -> tuple[str | None, str | None]:
    """(name (team), e-mail) of a seller id from the model's teams."""
    found = lifecycle.seller(seller_id) if seller_id else None
    if found is None:
        return seller_id, None
    team, seller = found
    return f"{seller.name} ({team.name})", seller.email


def stage_view(conn: Connection, lifecycle: Lifecycle, lead_id: int, history_page: int = 1) -> StageView:
    """The lead's stage, owner and feedback, and page ``history_page`` of its stage moves (``MOVES_PAGE``
    a page, the newest first; past the last: the last)."""
    row = conn.execute(
        select(lead_stages.c.stage, lead_stages.c.entered_ms).where(lead_stages.c.lead_id == lead_id)
    ).first()
    stage, entered = (row[0], row[1]) if row is not None else (None, None)
    names = {s.id: s.name for s in lifecycle.stages}
    view = StageView(
        stage, names.get(stage, stage) if stage else None, entered, reasons=lifecycle.rejection_reasons
    )
    moves, view.history_at = paged_rows(
        lambda limit, offset: stage_history_rows(conn, lead_id, limit, offset), history_page, MOVES_PAGE
    )
    view.history = [{**h, "to_name": names.get(h["to_stage"], h["to_stage"])} for h in moves]
    assignment = current_assignment(conn, lead_id)
    if assignment is not None:
        view.owner, view.owner_email = seller_label(lifecycle, assignment["seller"])
        # the SLA of a lead that left its assignment stage untouched (it cooled, went quiet) has no clock
        # left: no one is to work it, and it is not escalated (``claim_breaches``)
        if assignment["touched_ms"] is not None or assignment_waiting(conn, int(assignment["id"])):
            view.due_ms, view.touched_ms = assignment["due_ms"], assignment["touched_ms"]
    view.feedback = read_feedback(conn, lead_id)
    if stage is not None:
        view.can_accept = triggered(lifecycle, stage, "accepted") is not None
        view.can_reject = triggered(lifecycle, stage, "rejected") is not None
    return view
