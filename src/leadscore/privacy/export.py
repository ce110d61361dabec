"""Everything stored about a person, as JSON: portability, and the explanation of their score."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, inspect, select

from leadscore.compile import Sources
from leadscore.model import ScoringModel
from leadscore.privacy.person import Person
from leadscore.scoring.run import score_leads
from leadscore.store.schema import accounts, events, leads, metadata

SKIP = {"leads", "identities"}


def export_person(
    conn: Connection, person: Person, sources: Sources, model: ScoringModel | None, as_of: int
) -> dict[str, Any]:
    lead = dict(conn.execute(select(leads).where(leads.c.id == person.lead_id)).mappings().one())
    account = None
    if lead["account_id"] is not None:
        account = dict(
            conn.execute(select(accounts).where(accounts.c.id == lead["account_id"])).mappings().one()
        )
    out: dict[str, Any] = {
        "person": {"lead_id": person.lead_id, "identity_keys": list(person.keys)},
        "lead": lead,
        "account": account,
        "events": [
            dict(r)
            for r in conn.execute(
                select(events).where(events.c.person_key.in_(person.keys)).order_by(events.c.ts)
            ).mappings()
        ],
    }
    present = set(inspect(conn).get_table_names())
    for table in metadata.sorted_tables:
        if "lead_id" in table.c and table.name not in SKIP and table.name in present:
            rows = conn.execute(select(table).where(table.c.lead_id == person.lead_id)).mappings()
            out[table.name] = [dict(r) for r in rows]
    if model is not None:
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
