"""Everything stored about a person, as JSON: portability, and the explanation of their score.

The rows are found by the same per-table rules as erasure (``privacy/tables.py``): a person without a
lead (anonymous events only, or events still waiting in the inbox) is exported too.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from leadscore.compile import Sources
from leadscore.model import ScoringModel
from leadscore.privacy.person import Person
from leadscore.privacy.tables import Ids, condition, present_tables, rules_for
from leadscore.scoring.run import score_leads
from leadscore.store.event_log import waiting_rows
from leadscore.store.ledger_lines import expand
from leadscore.store.schema import accounts, events, leads

SKIP = {"leads", "events"}  # shown as "lead" and "events" above the per-table lists


def export_person(
    conn: Connection, person: Person, sources: Sources, model: ScoringModel | None, as_of: int
) -> dict[str, Any]:
    ids = Ids.of(conn, person)
    lead = None
    if person.lead_id is not None:
        lead = dict(conn.execute(select(leads).where(leads.c.id == person.lead_id)).mappings().one())
    account = None
    if lead is not None and lead["account_id"] is not None:
        account = dict(
            conn.execute(select(accounts).where(accounts.c.id == lead["account_id"])).mappings().one()
        )
    stored = (
        select(events)
        .where(condition(events, rules_for(events) or (), ids))
        .order_by(events.c.ts, events.c.id)
    )
    out: dict[str, Any] = {
        "person": {"lead_id": person.lead_id, "identity_keys": list(person.keys)},
        "lead": lead,
        "account": account,
        "events": [dict(r) for r in conn.execute(stored).mappings()],
        # acknowledged but not processed yet: they reach the event log (and the score) shortly
        "waiting_events": [row for row in waiting_rows(conn) if ids.owns(row)],
    }
    for table in present_tables(conn):
        picks = rules_for(table)
        if picks is not None and table.name not in SKIP:
            rows = conn.execute(select(table).where(condition(table, picks, ids)))
            if table.name == "ledger":  # a row a score, holding its lines: shown a line a row
                out[table.name] = expand((r.lead_id, r.score_name, r.lines) for r in rows)
            else:
                out[table.name] = [dict(r) for r in rows.mappings()]
    if model is not None and person.lead_id is not None:
        (ledger,) = score_leads(conn, model, sources, [person.lead_id], as_of)
        rules = {r.id: r for r in (*model.fit, *model.engagement)}
        out["score_explanation"] = {
            "model": model.model,
            "as_of_ms": as_of,
            "score": ledger.score,
            "fit_score": ledger.fit_score,
            "engagement_score": ledger.engagement_score,
            "grade": ledger.grade,
            "band": ledger.band,
            "how_it_is_computed": (
                "Each rule below added the listed points because of your attributes or your recorded "
                "activity; the points add up to the score."
            ),
            "lines": [
                {
                    "rule": line.rule_id,
                    "name": line.name,
                    "description": getattr(rules.get(line.rule_id), "description", ""),
                    "points": line.score_points,
                    "events_counted": line.matched,
                }
                for line in ledger.lines
            ],
        }
    return out
