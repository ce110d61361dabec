"""Two leads found to be one person (an ``alias`` linking two ids that each have a lead) become one.

The kept lead takes the other's person keys (so its events score for the kept lead), the traits by
the rule ``people.upsert_lead`` merges them with (the value observed at the latest time wins; a value
fills a gap), and the rows that record what happened to the person (outcomes, feedback, stage moves,
assignments, messages sent, segment changes). Scores, ledgers and score history are derived from the
events: the merged lead's are computed again by the caller from its whole history, the other's are
deleted with it. The other lead's numeric id keeps resolving to the kept lead (``people.merged_key``, an
identity of the kept lead), and the merge is written to the audit log (``lead.merge``). Every table with
a ``lead_id`` column is accounted for in ``TABLES`` (``tests/test_lead_merge.py`` checks it against the
schema).
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Connection, Executable, Integer, Table, and_, bindparam, delete, exists, select, update

from leadscore.store.audit import audit
from leadscore.store.people import LEAD_COLUMNS, email_domain, link_identity, merge_attributes, merged_key
from leadscore.store.results import lock_leads
from leadscore.store.schema import (
    assignments,
    digest_leads,
    feedback,
    identities,
    lead_stages,
    leads,
    ledger,
    outbox,
    outcomes,
    score_events,
    score_history,
    scores,
    segment_changes,
    segment_members,
    shadow_scores,
    stage_history,
)

# table → the columns that, with lead_id, must stay unique (a row the kept lead has the like of stays
# behind and goes with the other lead); None: derived from the events, deleted and computed again
TABLES: dict[Table, tuple[str, ...] | None] = {
    identities: (),
    outcomes: ("kind", "at_ms"),
    feedback: (),
    stage_history: (),
    assignments: (),
    outbox: (),
    digest_leads: ("outbox_id",),
    segment_changes: (),
    segment_members: ("segment",),
    lead_stages: ("lead_id",),  # the kept lead's stage stands; the other's moves only where it has none
    scores: None,
    ledger: None,
    score_history: None,
    score_events: None,
    shadow_scores: None,
}

_EVER = -(2**62)


@functools.cache
def _moves() -> tuple[Executable, ...]:
    """The statements that move (or delete) the other lead's rows of every table in ``TABLES``, built
    once with ``keep`` and ``gone`` as parameters: built for each merge they cost 8 of its 10 ms
    (SQLAlchemy constructing 38 statements and an alias of each table), so a batch of 500 aliases held
    SQLite's write lock for 5 s."""
    keep, gone = bindparam("keep", type_=Integer), bindparam("gone", type_=Integer)
    statements: list[Executable] = []
    for table, unique in TABLES.items():
        if unique is None:
            statements.append(delete(table).where(table.c.lead_id == gone))
            continue
        moved = update(table).where(table.c.lead_id == gone)
        if unique:
            other = table.alias("kept")
            same = [other.c.lead_id == keep, *(other.c[c] == table.c[c] for c in unique if c != "lead_id")]
            moved = moved.where(~exists(select(other.c.lead_id).where(and_(*same))))
        statements.append(moved.values(lead_id=keep))
        statements.append(delete(table).where(table.c.lead_id == gone))
    return tuple(statements)


def merge_leads(conn: Connection, keep: int, gone: int, now_ms: int, cause: str) -> None:
    """Merge lead ``gone`` into lead ``keep`` and delete ``gone`` (see the module docstring); ``cause``:
    the message id of the alias that said they are one person (audited).

    Both leads' locks first (``results.lock_leads``, as every score save takes them): the merge writes
    ``gone``'s stage row before it deletes its scores, where a save (the clock's tick) writes the scores,
    then holds the stage row (``lifecycle_tables.rescored``); without them the two deadlocked, or the save
    wrote a score for the lead just deleted. A save waiting on them finds the lead gone and leaves it."""
    lock_leads(conn, [keep, gone])
    rows = {
        int(r["id"]): r for r in conn.execute(select(leads).where(leads.c.id.in_([keep, gone]))).mappings()
    }
    changes = merged_values(rows[keep], rows[gone])
    # the unique columns leave the other lead first, so no two rows hold them for a moment
    conn.execute(update(leads).where(leads.c.id == gone).values(email=None, external_id=None))
    conn.execute(update(leads).where(leads.c.id == keep).values(**changes, updated_ms=now_ms))
    for statement in _moves():
        conn.execute(statement, {"keep": keep, "gone": gone})
    conn.execute(delete(leads).where(leads.c.id == gone))
    # a key left by an earlier lead of the same id (SQLite may give a deleted largest id again) is replaced
    conn.execute(delete(identities).where(identities.c.key == merged_key(gone)))
    link_identity(conn, merged_key(gone), keep, now_ms)
    audit(conn, now_ms, "ingest", "lead.merge", f"lead:{gone}", into=keep, message_id=cause)


def merged_values(kept: Any, other: Any) -> dict[str, Any]:
    """The kept lead's columns after the merge: each attribute and name field from the lead that observed
    it last (``attribute_ts``), a removal (``$unset``) included, a value filling a name the kept lead
    never observed; its own e-mail, external id and account unless it has none."""
    kept_ts, other_ts = dict(kept["attribute_ts"] or {}), dict(other["attribute_ts"] or {})
    stored, stamps = dict(kept["attributes"] or {}), dict(kept_ts)
    changes: dict[str, Any] = {}
    others = other["attributes"] or {}
    # a gap is a name the kept lead never observed: one it removed later ($unset) is no gap
    taken = {
        key: value
        for key, value in others.items()
        if (key not in stored and key not in kept_ts) or other_ts.get(key, _EVER) > kept_ts.get(key, _EVER)
    }
    # within the bound of a lead's attributes: merging leads one after another adds up as messages do
    attributes = merge_attributes(stored, taken, f"lead {kept['id']}")
    for key, value in taken.items():
        if key in attributes and attributes[key] == value:
            stamps[key] = other_ts.get(key, stamps.get(key))
    # the other lead's removals (a stamp without a value, no field's) later than the kept lead's value
    for key, stamp in other_ts.items():
        removed = key not in others and key not in LEAD_COLUMNS and stamp is not None
        if removed and stamp > kept_ts.get(key, _EVER):
            attributes.pop(key, None)
            stamps[key] = stamp
    # a name field as an attribute: the latest observation wins, a removal (a stamp without a value) too;
    # a value fills a name the kept lead never observed
    for column in LEAD_COLUMNS[1:]:
        value, later = other[column], other_ts.get(column, _EVER) > kept_ts.get(column, _EVER)
        if value in (None, ""):
            if later and other_ts.get(column) is not None and kept[column] not in (None, ""):
                changes[column], stamps[column] = None, other_ts[column]
            continue
        if (kept[column] in (None, "") and kept_ts.get(column) is None) or later:
            changes[column] = value
            stamps[column] = other_ts.get(column, stamps.get(column))
    changes["attributes"], changes["attribute_ts"] = (
        attributes,
        {k: v for k, v in stamps.items() if v is not None},
    )
    if kept["email"] is None and other["email"] is not None:
        changes["email"], changes["email_domain"] = other["email"], email_domain(other["email"])
    if kept["external_id"] is None and other["external_id"] is not None:
        changes["external_id"] = other["external_id"]
    if kept["account_id"] is None and other["account_id"] is not None:
        changes["account_id"] = other["account_id"]
    return changes
