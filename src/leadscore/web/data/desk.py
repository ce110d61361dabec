"""The seller's desk: who may act on a lead, and the handoff rows a viewer sees.

Who is a manager and whose lead is whose is ``lifecycle.desk``'s rule (the notifications use it too);
anyone else with the ``feedback`` permission is a rep, who sees and acts on the leads assigned to them
only. The reasons shown per lead are ``lifecycle.reasons`` (the stored ledger's largest lines, the same
lines the lead page explains), the last activity is the lifecycle's own fact (``gates.read_facts``), and
the SLA clock is the assignment's deadline. With a score picked (``lifecycle.score_stages``): that score's
hand-off queue, its score, band and reasons (its own model's rule names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, case, func, select

from leadscore.lifecycle.desk import managed_teams, may_act, reject_refused, whose_rank
from leadscore.lifecycle.gates import read_facts
from leadscore.lifecycle.reasons import rule_names, top_reasons_of
from leadscore.lifecycle.reports import handoff_query, hottest_first
from leadscore.lifecycle.score_stages import ScoreView
from leadscore.lifecycle.stages import triggered
from leadscore.model import Lifecycle, ScoringModel
from leadscore.store.lifecycle_tables import current_assignment
from leadscore.web.data.paging import paging
from leadscore.web.data.stages import seller_label

PAGE_SIZE = 50


def may_act_on(conn: Connection, lifecycle: Lifecycle | None, lead_id: int, email: str, role: str) -> bool:
    if lifecycle is None:
        return role == "admin"
    return may_act(lifecycle, current_assignment(conn, lead_id), email, role)


def reject_refused_on(
    conn: Connection, lifecycle: Lifecycle | None, lead_id: int, email: str, role: str
) -> str | None:
    """``lifecycle.desk.reject_refused`` of the lead's assignment (``current_assignment``)."""
    if lifecycle is None:
        return None
    return reject_refused(lifecycle, current_assignment(conn, lead_id), email, role)


@dataclass
class Desk:
    manager: bool
    mine: list[dict[str, Any]] = field(default_factory=list)
    team: list[dict[str, Any]] = field(default_factory=list)  # others' leads this viewer manages (or reads)
    # paged: the viewer's own rows, then the others' (``PAGE_SIZE`` a page unless told otherwise);
    # ``mine`` and ``team`` hold the rows of page ``page`` only, the totals count both lists whole
    page: int = 1
    pages: int = 1
    total: int = 0
    mine_total: int = 0
    team_total: int = 0


def desk(
    conn: Connection,
    model: ScoringModel,
    lifecycle: Lifecycle,
    email: str,
    role: str,
    can_act: bool,
    page: int = 1,
    page_size: int = PAGE_SIZE,
    view: ScoreView | None = None,
) -> Desk:
    """The leads ready for handoff that this viewer sees: their own first, then (for a manager, or a
    reader who gives no feedback) everyone else's they may see. A rep sees only their own. Page ``page``
    of them (``page_size`` rows; a page past the last is the last). ``model``: the active model of the
    score read (``view.score``; the primary without a view), whose rules name the reasons."""
    teams = managed_teams(lifecycle, email)
    out = Desk(manager=role == "admin" or bool(teams))
    query = handoff_query(lifecycle, view)
    if query is None:
        return out
    columns = query.selected_columns
    rank = whose_rank(lifecycle, columns.seller, columns.team, email, teams)
    if not (role == "admin" or not can_act):  # a rep or a manager: their own and their teams' leads
        query = query.where(rank < 2)
    # counted, filtered, ordered and paged in SQL: only the rows of the page are read
    counted = query.order_by(None).add_columns(rank.label("whose_rank")).subquery("desk")
    totals = select(func.count(), func.coalesce(func.sum(case((counted.c.whose_rank == 0, 1), else_=0)), 0))
    total, mine_total = conn.execute(totals.select_from(counted)).one()
    out.mine_total, out.team_total = int(mine_total), int(total) - int(mine_total)
    out.total = int(total)
    at = paging(out.total, page, page_size)
    out.page, out.pages = at.page, at.pages
    mine_first = case((rank == 0, 0), else_=1)
    shown_query = (
        query.add_columns(rank.label("whose_rank"))
        .order_by(None)
        .order_by(mine_first, *hottest_first())
        .limit(page_size)
        .offset(at.offset)
    )
    names = rule_names(model)
    for found_row in conn.execute(shown_query).mappings():
        row = dict(found_row)
        mine = row.pop("whose_rank") == 0
        assignment = (
            {"team": row.get("team"), "seller": row.get("seller"), "touched_ms": row.get("handled_ms")}
            if row.get("team")
            else None
        )
        row["owner"], _ = seller_label(lifecycle, row.get("seller"))
        acts = can_act and may_act(lifecycle, assignment, email, role)
        row["can_accept"] = acts and triggered(lifecycle, row["stage"], "accepted") is not None
        row["can_reject"] = (
            acts
            and triggered(lifecycle, row["stage"], "rejected") is not None
            and reject_refused(lifecycle, assignment, email, role) is None
        )
        (out.mine if mine else out.team).append(row)
    # the facts and reasons of the rows shown only (a page of the leads ready for handoff)
    shown = [*out.mine, *out.team]
    facts = read_facts(conn, shown)
    score = None if view is None else view.score
    reasons = top_reasons_of(conn, names, [int(row["lead_id"]) for row in shown], score_name=score)
    for row in shown:
        found = facts.get(int(row["lead_id"]))
        row["last_activity_ms"] = found.last_event_ms if found is not None else None
        row["reasons"] = reasons[int(row["lead_id"])]
    return out
