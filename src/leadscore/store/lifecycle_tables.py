"""Lifecycle records: current stages and their history, assignments, team cursors, account owners,
sales feedback, segment membership and account stages. The lifecycle package writes only through here."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Collection, Iterable, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    ScalarSelect,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from leadscore.store.id_lists import in_list
from leadscore.store.newest import newest_rows
from leadscore.store.pipelined import Pipeline
from leadscore.store.schema import (
    account_owners,
    account_stage_history,
    account_stages,
    assignments,
    feedback,
    lead_stages,
    leads,
    scores,
    segment_changes,
    segment_members,
    stage_history,
    team_cursors,
)
from leadscore.store.score_names import scores_of
from leadscore.store.upsert import insert_ignore

CHUNK = 500


def start_stages(conn: Connection, initial: str, now_ms: int, limit: int = CHUNK) -> int:
    """Give up to ``limit`` scored leads without a stage the initial one (a history row each)."""
    query = (
        select(leads.c.id, leads.c.created_ms)
        .select_from(
            leads.join(scores, scores_of(leads.c.id)).outerjoin(
                lead_stages, lead_stages.c.lead_id == leads.c.id
            )
        )
        .where(lead_stages.c.lead_id.is_(None))
        .order_by(leads.c.id)
        .limit(limit)
    )
    # a lead starts at its creation, and never after the moment it is first evaluated
    created = {lid: min(int(at), now_ms) for lid, at in conn.execute(query).all()}
    if not created:
        return 0
    insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(lead_stages)
    stmt = insert.on_conflict_do_nothing(index_elements=["lead_id"]).returning(lead_stages.c.lead_id)
    rows = [
        {"lead_id": lid, "stage": initial, "entered_ms": at, "updated_ms": now_ms}
        for lid, at in created.items()
    ]
    mine = [int(lid) for (lid,) in conn.execute(stmt, rows).all()]  # a concurrent runner may have won some
    if mine:
        conn.execute(
            stage_history.insert(),
            [
                _history(lid, None, initial, created[lid], "initial", "initial", "first scored", now_ms)
                for lid in mine
            ],
        )
    return len(mine)


def _history(
    lead_id: int, old: str | None, new: str, at: int, transition: str, cause: str, ref: str, now_ms: int
) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "from_stage": old,
        "to_stage": new,
        "at_ms": at,
        "transition": transition,
        "cause": cause,
        "cause_ref": ref,
        "recorded_ms": now_ms,
    }


def claim_dirty(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Stage rows whose lead was rescored since it was last evaluated, with the current score; claimed
    (row-locked, skipping rows another runner holds) on PostgreSQL."""
    # rescored: any of the lead's named scores (gates may name any), so the newest scoring time of all
    newest = (
        select(func.max(scores.c.scored_ms))
        .where(scores.c.lead_id == lead_stages.c.lead_id)
        .correlate(lead_stages)
        .scalar_subquery()
    )
    query = (
        select(lead_stages, newest.label("scored_ms"))
        .select_from(lead_stages.join(scores, scores_of(lead_stages.c.lead_id)))
        .where(or_(lead_stages.c.seen_scored_ms.is_(None), lead_stages.c.seen_scored_ms != newest))
        .order_by(lead_stages.c.lead_id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=lead_stages)
    return [dict(r) for r in conn.execute(query).mappings()]


def claim_leads(
    conn: Connection, lead_ids: Sequence[int], *, skip_locked: bool = False
) -> list[dict[str, Any]]:
    """Lock and read the stage rows of ``lead_ids`` (in id order, so two lockers cannot deadlock)."""
    query = (
        select(lead_stages).where(lead_stages.c.lead_id.in_(sorted(lead_ids))).order_by(lead_stages.c.lead_id)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=skip_locked)
    return [dict(r) for r in conn.execute(query).mappings()]


def evaluate_again(conn: Connection, lead_ids: Sequence[int]) -> None:
    """Have the runner evaluate these leads' stage rows again (``claim_dirty``), their scores unchanged:
    what it derives from a lead beside its stage (its account's score and stage) has changed."""
    if lead_ids:
        conn.execute(
            update(lead_stages).where(lead_stages.c.lead_id.in_(list(lead_ids))).values(seen_scored_ms=None)
        )


def rescored(pipeline: Pipeline, lead_ids: Sequence[int], scored_ms: int) -> None:
    """The leads' scores were just saved, stamped ``scored_ms``: a stage row that saw a scoring time not
    before it (a save in the millisecond the runner saw, or a clock that stands still or steps back)
    would not tell this save from the one it saw (``claim_dirty``: the lead's newest scoring time is the
    one seen), so it forgets what it saw and is evaluated again. Only such rows are written; a save
    stamped later than every time seen moves the newest scoring time past them by itself.

    On PostgreSQL a runner holds a stage row it claimed (``FOR UPDATE``) while it evaluates the scores it
    read, and marks it seen at its commit: a save committed meanwhile, stamped the millisecond the runner
    read, would find the row not yet seen and leave it, and the runner would then mark it seen unevaluated.
    So the rows are first held (``FOR KEY SHARE``): the save waits for such a runner's commit and the
    write behind reads the row as the runner left it; a runner claiming later skips the rows until this
    save commits (so a crossing the save records next is never passed over for a later one). Other
    savers' holds and writes to the row other than a claim (``evaluate_again``) do not wait for it; a desk
    decision's lock waits for the save as for a runner. SQLite's writers are serial: the runner holds the
    write lock from its claim to its commit."""
    ids = list(lead_ids)
    if pipeline.conn.dialect.name == "postgresql":
        pipeline.returning(_HOLD_STAGES, {"ids": ids})  # its rows are not read: the wait is what it is for
    pipeline.conn.execute(_RESCORED, {"ids": ids, "stamp_ms": scored_ms})


_HOLD_STAGES = (
    select(lead_stages.c.lead_id).where(in_list(lead_stages.c.lead_id, "ids")).with_for_update(key_share=True)
)
_RESCORED = (
    update(lead_stages)
    .where(in_list(lead_stages.c.lead_id, "ids"), lead_stages.c.seen_scored_ms >= bindparam("stamp_ms"))
    .values(seen_scored_ms=None)
)


def mark_seen(conn: Connection, lead_id: int, scored_ms: int | None, crossing_id: int, now_ms: int) -> None:
    conn.execute(
        update(lead_stages)
        .where(lead_stages.c.lead_id == lead_id)
        .values(seen_scored_ms=scored_ms, seen_crossing_id=crossing_id, updated_ms=now_ms)
    )


def move_stage(
    conn: Connection,
    lead_id: int,
    old: str,
    new: str,
    *,
    at_ms: int,
    transition: str,
    cause: str,
    cause_ref: str,
    now_ms: int,
) -> int | None:
    """Move a lead from ``old`` to ``new`` if it is still in ``old``; returns the history row id, or None.
    The move is dated ``at_ms``, or the lead's entry into ``old`` when that is later."""
    # feedback and outcomes carry their own time, and a CRM export may date one before the lead entered
    # the stage it leaves: a move dated earlier would sort before that entry, and the stage as of any
    # time (the newest move at or before it) would no longer be the stage the lead is in
    entered = conn.execute(
        update(lead_stages)
        .where(lead_stages.c.lead_id == lead_id, lead_stages.c.stage == old)
        .values(
            stage=new,
            entered_ms=case((lead_stages.c.entered_ms > at_ms, lead_stages.c.entered_ms), else_=at_ms),
            updated_ms=now_ms,
        )
        .returning(lead_stages.c.entered_ms)
    ).scalar()
    if entered is None:
        return None
    row = _history(lead_id, old, new, int(entered), transition, cause, cause_ref, now_ms)
    return int(conn.execute(stage_history.insert().values(**row).returning(stage_history.c.id)).scalar_one())


def stage_history_rows(
    conn: Connection, lead_id: int, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` of the lead's stage moves, newest first from ``offset``, returned oldest first as
    ``read_stage_history``'s; and the moves there are (a lead a write key bounces in and out of a stage
    has any number)."""
    order = [stage_history.c.at_ms, stage_history.c.id]
    return newest_rows(conn, stage_history, [stage_history.c.lead_id == lead_id], order, limit, offset)


def read_stage_history(conn: Connection, lead_id: int) -> list[dict[str, Any]]:
    query = (
        select(stage_history)
        .where(stage_history.c.lead_id == lead_id)
        .order_by(stage_history.c.at_ms, stage_history.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def stage_as_of(conn: Connection, lead_id: int, at_ms: int) -> dict[str, Any] | None:
    """The history row that put the lead in the stage it was in at ``at_ms`` (None: no stage yet)."""
    query = (
        select(stage_history)
        .where(stage_history.c.lead_id == lead_id, stage_history.c.at_ms <= at_ms)
        .order_by(stage_history.c.at_ms.desc(), stage_history.c.id.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def all_stage_history(conn: Connection) -> list[dict[str, Any]]:
    query = select(stage_history).order_by(stage_history.c.lead_id, stage_history.c.at_ms, stage_history.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def leads_in_stages(conn: Connection, stages: Iterable[str]) -> list[dict[str, Any]]:
    query = select(lead_stages).where(lead_stages.c.stage.in_(list(stages))).order_by(lead_stages.c.lead_id)
    return [dict(r) for r in conn.execute(query).mappings()]


# --- assignment


def seller_key(seller_id: str) -> int:
    """A seller's identity as ``team_cursors.position`` holds it (an integer column, kept without a
    migration): minus one minus the first 31 bits of the SHA-256 of the seller's id, so in [-2**31, -1],
    never one of the non-negative turn counts the column held before (``next_in_rotation``)."""
    return -1 - (int.from_bytes(hashlib.sha256(seller_id.encode()).digest()[:4], "big") >> 1)


def next_in_rotation(conn: Connection, team: str, sellers: Sequence[str], working: Sequence[bool]) -> int:
    """The next turn of a team's round-robin: the index in ``sellers`` (the team's seller ids in the active
    version's order; ``working``, one flag each) of the first seller still working after the last one
    served, cyclically. The cursor keeps who was served last, by identity (``seller_key``), so a version
    that reorders, adds or removes sellers goes on from that seller in the new order; if that seller is
    no longer in the team, from its first seller. A cursor of the earlier kind (a non-negative count of
    places, read as an index into the current list) is read as before and replaced by the seller served.
    A seller who left is passed over; with no seller working every one takes turns. The cursor row is
    locked until commit."""
    size = len(sellers)
    assert size == len(working) and size > 0
    insert_ignore(conn, team_cursors, [{"team": team, "position": 0}], ["team"])
    query = select(team_cursors.c.position).where(team_cursors.c.team == team)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    position = int(conn.execute(query).scalar_one())
    if position >= 0:  # a count of places (the cursor before sellers were kept by identity), or none yet
        start = position % size
    else:  # two sellers of one key (a 2**-31 chance a pair): the first of them stands for both
        last = next((i for i, s in enumerate(sellers) if seller_key(s) == position), None)
        start = last + 1 if last is not None else 0
    turn = next(((start + k) % size for k in range(size) if working[(start + k) % size]), start % size)
    conn.execute(
        update(team_cursors).where(team_cursors.c.team == team).values(position=seller_key(sellers[turn]))
    )
    return turn


def account_owners_in(conn: Connection, account_id: int, teams: Sequence[str]) -> list[dict[str, Any]]:
    """The account's owners in ``teams`` (an owner per account and team), the first one set first."""
    query = (
        select(account_owners)
        .where(account_owners.c.account_id == account_id, account_owners.c.team.in_(list(teams)))
        .order_by(account_owners.c.at_ms, account_owners.c.team)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def set_account_owner(
    conn: Connection, account_id: int, seller: str, team: str, at_ms: int, replacing: str | None = None
) -> None:
    """Make ``seller`` the account's owner in ``team``: when it has none, or in place of ``replacing`` (an
    owner who is no longer a seller of the team). A concurrent runner's owner set meanwhile stands."""
    if replacing is None:
        insert_ignore(
            conn,
            account_owners,
            [{"account_id": account_id, "seller": seller, "team": team, "at_ms": at_ms}],
            ["account_id", "team"],
        )
        return
    conn.execute(
        update(account_owners)
        .where(
            account_owners.c.account_id == account_id,
            account_owners.c.team == team,
            account_owners.c.seller == replacing,
        )
        .values(seller=seller, at_ms=at_ms)
    )


def add_assignment(conn: Connection, row: dict[str, Any]) -> int | None:
    """Record an assignment for a stage move (once per move); returns its id, or None if it existed."""
    if not insert_ignore(conn, assignments, [row], ["stage_move_id"]):
        return None
    return int(
        conn.execute(
            select(assignments.c.id).where(assignments.c.stage_move_id == row["stage_move_id"])
        ).scalar_one()
    )


def assignment_stage(conn: Connection, move_id: int) -> str | None:
    """The stage an assignment was made in: the stage its move entered."""
    found = conn.execute(select(stage_history.c.to_stage).where(stage_history.c.id == move_id)).scalar()
    return None if found is None else str(found)


def current_assignment(conn: Connection, lead_id: int) -> dict[str, Any] | None:
    """The lead's assignment (``current_assignment_id``), None when it has none."""
    query = select(assignments).where(assignments.c.id == current_assignment_id(literal(lead_id)))
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def current_assignment_id(lead_id: ColumnElement[int]) -> ScalarSelect[int]:
    """SQL: the id of the lead's assignment: the newest one a seller still has to act on (``still_open``),
    else its newest. A merged lead holds the other lead's assignments too, made later maybe, but its stay
    is the kept lead's: the desk, the lead page and who may act name the seller the escalation holds to
    it. ``lead_id`` may be a column of an enclosing query (one index probe per lead)."""
    return _of_current_assignment(assignments.c.id, lead_id)


def current_seller(lead_id: ColumnElement[int]) -> ScalarSelect[str]:
    """SQL: the seller of the lead's assignment (``current_assignment_id``), NULL when it has none; read
    in the one subquery, so that ``lead_id`` may be a column of any enclosing query."""
    return _of_current_assignment(assignments.c.seller, lead_id)


def held_by(lead_id: ColumnElement[int], seller: str) -> ColumnElement[bool]:
    """SQL: ``current_seller(lead_id) == seller``, as a semi-join: the lead is one of the leads of
    ``seller``'s assignments that is its lead's assignment (``current_assignment_id``). A query that
    filters by seller then reads that seller's assignments and probes each one's lead once, instead of a
    probe per lead of the query (the leads list's owner filter: most leads have no assignment)."""
    # its own name: ``current_assignment_id`` reads ``assignments`` correlated to this row's lead
    theirs = assignments.alias("sellers_assignment")
    return lead_id.in_(
        select(theirs.c.lead_id).where(
            theirs.c.seller == seller, theirs.c.id == current_assignment_id(theirs.c.lead_id)
        )
    )


def _of_current_assignment(column: ColumnElement[Any], lead_id: ColumnElement[int]) -> ScalarSelect[Any]:
    open_first = case((and_(*still_open()), 0), else_=1)
    return (
        select(column)
        .where(assignments.c.lead_id == lead_id)
        .order_by(open_first, assignments.c.id.desc())
        .limit(1)
        .scalar_subquery()
    )


def list_assignments(
    conn: Connection, open_only: bool = False, limit: int | None = None, offset: int = 0
) -> list[dict[str, Any]]:
    """Every assignment, in the order made; ``open_only``: those a seller still has to act on, as
    ``open_assignment`` and the escalation (``claim_breaches``) read them (``still_open``); rows
    ``offset`` to ``offset + limit`` of them (every row: ``limit`` None), read from SQL as such."""
    query = select(assignments).where(*_open_only(open_only)).order_by(assignments.c.id)
    if limit is not None:
        query = query.limit(limit).offset(offset)
    return [dict(r) for r in conn.execute(query).mappings()]


def count_assignments(conn: Connection, open_only: bool = False) -> int:
    """How many assignments ``list_assignments`` lists."""
    query = select(func.count()).select_from(assignments).where(*_open_only(open_only))
    return int(conn.execute(query).scalar_one())


def _open_only(open_only: bool) -> list[ColumnElement[bool]]:
    return list(still_open()) if open_only else []


def touch_assignment(conn: Connection, lead_id: int, at_ms: int, before_move: int | None = None) -> None:
    """The lead's untouched assignments handled at ``at_ms`` (a seller's decision, an SQL outcome), but
    for the one the decision's own stage move ``before_move`` opened (a move into another assignment
    stage: that assignment's SLA starts now). Called after the move, with the lead's stage row locked
    (the lock order of ``feedback.reassign``: the stage row, then the assignment)."""
    opened_now = [] if before_move is None else [assignments.c.stage_move_id != before_move]
    conn.execute(
        update(assignments)
        .where(assignments.c.lead_id == lead_id, assignments.c.touched_ms.is_(None), *opened_now)
        .values(touched_ms=at_ms)
    )


@functools.cache  # one construct: its four aliases took ~0.9 ms of Python to build, each query anew
def still_in_its_stage() -> ColumnElement[bool]:
    """SQL, correlated to ``assignments``: the assignment's lead is still in the stay its move began (the
    lead's stage row is that move's stage, entered at that move's time). A lead that moved on without
    feedback (it cooled, went quiet, an outcome moved it) is on no seller's desk; its next entry into an
    assignment stage is a new assignment with its own SLA. The stage row, not the newest history row,
    decides: a merged lead's stage is the kept lead's (``lead_merge``), whatever the other lead's moves.

    A stay has one assignment: the newest of the lead's whose move matches it. Two leads that entered the
    stage in the same millisecond and were then merged hold two such moves; the older assignment is no
    longer a seller's to work (before, both were open and the escalation mailed the manager twice)."""
    move = stage_history.alias("assigned_move")
    # its own name: a query of the stage rows that reads this (the desk) must not correlate it away
    stay = lead_stages.alias("stay")
    later = assignments.alias("later_assignment")
    later_move = stage_history.alias("later_move")
    newer_for_the_stay = (
        select(later.c.id)
        .select_from(later.join(later_move, later_move.c.id == later.c.stage_move_id))
        .where(
            later.c.lead_id == assignments.c.lead_id,
            later.c.id > assignments.c.id,
            # the lead's own moves (ix_stage_history_lead_at), not every lead's moves of a round: the leads
            # moved in one round share its time, so (stage, time) alone can match thousands
            later_move.c.lead_id == assignments.c.lead_id,
            later_move.c.to_stage == stay.c.stage,
            later_move.c.at_ms == stay.c.entered_ms,
        )
        .correlate_except(later, later_move)  # the assignment and the stage row two levels up
        .exists()
    )
    return (
        select(stay.c.lead_id)
        .select_from(stay.join(move, move.c.id == assignments.c.stage_move_id))
        .where(
            stay.c.lead_id == assignments.c.lead_id,
            stay.c.stage == move.c.to_stage,
            stay.c.entered_ms == move.c.at_ms,
            ~newer_for_the_stay,
        )
        .exists()
    )


def assignment_waiting(conn: Connection, assignment_id: int) -> bool:
    """Whether the assignment's lead is still in the stay it was assigned in (``still_in_its_stage``)."""
    query = select(still_in_its_stage()).where(assignments.c.id == assignment_id)
    return bool(conn.execute(query).scalar())


def still_open() -> tuple[ColumnElement[bool], ...]:
    """SQL conditions on ``assignments``: one a seller still has to act on (no feedback yet, the lead
    still in the stay it was assigned in). The one definition of an open assignment: a reassignment's,
    the escalation's and ``GET /v1/assignments?open=true``'s."""
    return (assignments.c.touched_ms.is_(None), still_in_its_stage())


def open_assignment(conn: Connection, lead_id: int) -> dict[str, Any] | None:
    """The lead's assignment a seller still has to act on (``still_open``), locked on PostgreSQL until
    commit; None when it has none."""
    query = (
        select(assignments)
        .where(assignments.c.lead_id == lead_id, *still_open())
        .order_by(assignments.c.id.desc())
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=assignments)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def hand_over(
    conn: Connection, assignment_id: int, team: str, seller: str, at_ms: int, due_ms: int | None
) -> None:
    """The assignment given to another seller (``reason`` reassigned): their SLA clock starts at ``at_ms``
    and an escalation of the previous seller's is forgotten."""
    conn.execute(
        update(assignments)
        .where(assignments.c.id == assignment_id)
        .values(team=team, seller=seller, reason="reassigned", at_ms=at_ms, due_ms=due_ms, escalated_ms=None)
    )


def claim_breaches(conn: Connection, now_ms: int, limit: int = CHUNK) -> list[dict[str, Any]]:
    """Untouched assignments past their SLA that were not escalated yet, whose lead is still in the stage
    it was assigned in (claimed on PostgreSQL)."""
    query = (
        select(assignments)
        .where(
            *still_open(),
            assignments.c.escalated_ms.is_(None),
            assignments.c.due_ms.is_not(None),
            assignments.c.due_ms <= now_ms,  # ``lifecycle.sla.overdue``
        )
        .order_by(assignments.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [dict(r) for r in conn.execute(query).mappings()]


def mark_escalated(conn: Connection, assignment_id: int, now_ms: int) -> bool:
    done = conn.execute(
        update(assignments)
        .where(assignments.c.id == assignment_id, assignments.c.escalated_ms.is_(None))
        .values(escalated_ms=now_ms)
    ).rowcount
    return bool(done == 1)


# --- feedback


def add_feedback(conn: Connection, row: dict[str, Any]) -> int:
    return int(conn.execute(feedback.insert().values(**row).returning(feedback.c.id)).scalar_one())


def mql_decisions(
    conn: Connection,
    stages: Collection[str] | None,
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[dict[str, Any]]:
    """Sales decisions on MQLs, oldest first: the feedback given while the lead waited in one of
    ``stages`` (``lifecycle.stages.decision_stages``; None: every row), given at or after ``since_ms`` and
    before ``until_ms``. Every acceptance rate, rejection count and feedback label reads these."""
    query = select(feedback).order_by(feedback.c.at_ms, feedback.c.id)
    if stages is not None:
        query = query.where(feedback.c.stage_from.in_(sorted(stages)))
    if since_ms is not None:
        query = query.where(feedback.c.at_ms >= since_ms)
    if until_ms is not None:
        query = query.where(feedback.c.at_ms < until_ms)
    return [dict(r) for r in conn.execute(query).mappings()]


def read_feedback(conn: Connection, lead_id: int | None = None) -> list[dict[str, Any]]:
    query = select(feedback).order_by(feedback.c.at_ms, feedback.c.id)
    if lead_id is not None:
        query = query.where(feedback.c.lead_id == lead_id)
    return [dict(r) for r in conn.execute(query).mappings()]


# --- segments


def segment_member_ids(conn: Connection, segment: str, lead_ids: Sequence[int] | None = None) -> set[int]:
    query = select(segment_members.c.lead_id).where(segment_members.c.segment == segment)
    if lead_ids is not None:
        query = query.where(segment_members.c.lead_id.in_(list(lead_ids)))
    return set(conn.execute(query).scalars())


def change_membership(
    conn: Connection, segment: str, entered: Sequence[int], left: Sequence[int], at_ms: int
) -> list[dict[str, Any]]:
    """Apply enter/leave changes; returns the change rows written (with ids) for announcements."""
    if entered:
        insert_ignore(
            conn,
            segment_members,
            [{"segment": segment, "lead_id": lid, "entered_ms": at_ms} for lid in entered],
            ["segment", "lead_id"],
        )
    if left:
        conn.execute(
            delete(segment_members).where(
                segment_members.c.segment == segment, segment_members.c.lead_id.in_(list(left))
            )
        )
    out = []
    for change, ids in (("enter", entered), ("leave", left)):
        for lid in ids:
            row = {"segment": segment, "lead_id": lid, "change": change, "at_ms": at_ms}
            row["id"] = int(
                conn.execute(
                    segment_changes.insert().values(**row).returning(segment_changes.c.id)
                ).scalar_one()
            )
            out.append(row)
    return out


def segment_sizes(conn: Connection) -> dict[str, int]:
    query = select(segment_members.c.segment, func.count()).group_by(segment_members.c.segment)
    return {str(s): int(n) for s, n in conn.execute(query).all()}


# --- account stages


def read_account_stages(
    conn: Connection, account_ids: Sequence[int] | None = None
) -> dict[int, dict[str, Any]]:
    query = select(account_stages)
    if account_ids is not None:
        query = query.where(account_stages.c.account_id.in_(list(account_ids)))
    return {int(r["account_id"]): dict(r) for r in conn.execute(query).mappings()}


def emptied_accounts(conn: Connection) -> list[int]:
    """Accounts whose stored committee still counts contacts they no longer have: a committee engagement
    or engaged contacts above 0 with no lead in the account (its last contact moved away)."""
    contact = select(leads.c.id).where(leads.c.account_id == account_stages.c.account_id).exists()
    query = select(account_stages.c.account_id).where(
        or_(account_stages.c.engagement_score != 0, account_stages.c.engaged_contacts != 0), ~contact
    )
    return sorted(int(a) for a in conn.execute(query).scalars())


def save_account_stage(conn: Connection, row: dict[str, Any], previous: dict[str, Any] | None) -> bool:
    """Store an account's score and stage; a stage change is also appended to its history. True if moved."""
    if previous is None:
        conn.execute(account_stages.insert().values(**row))
    else:
        keep = {k: v for k, v in row.items() if k != "entered_ms" or previous["stage"] != row["stage"]}
        conn.execute(
            update(account_stages).where(account_stages.c.account_id == row["account_id"]).values(**keep)
        )
    old = previous["stage"] if previous else None
    if old == row["stage"] or (old is None and row["stage"] == "none"):
        return False
    conn.execute(
        account_stage_history.insert().values(
            account_id=row["account_id"],
            from_stage=old,
            to_stage=row["stage"],
            score=row["score"],
            at_ms=row["updated_ms"],
        )
    )
    return True


def account_history_rows(
    conn: Connection, account_id: int, limit: int, offset: int = 0
) -> tuple[list[dict[str, Any]], int]:
    """``limit`` of the account's stage moves, newest first from ``offset``, returned oldest first as
    ``account_history``'s; and the moves there are."""
    mine = [account_stage_history.c.account_id == account_id]
    return newest_rows(conn, account_stage_history, mine, [account_stage_history.c.id], limit, offset)


def account_history(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (
        select(account_stage_history)
        .where(account_stage_history.c.account_id == account_id)
        .order_by(account_stage_history.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]
