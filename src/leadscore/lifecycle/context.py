"""What templates and webhook payloads see about a lead: its fields and attributes, current score, top
scoring reasons (``lifecycle.reasons``: the largest ledger lines), recent pages, and the people involved.
The score and reasons are those of one named score: the one the message is about (the team's whose
stage the lead is in, the score a crossing names: ``lifecycle.actions``), the primary unless named."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, func, select

from leadscore.lifecycle.reasons import rule_names, top_reasons
from leadscore.model import ScoringModel
from leadscore.scoring.pipeline import active_model
from leadscore.scoring.shown import cut
from leadscore.settings import Settings
from leadscore.store.lead_names import display_name
from leadscore.store.people import normalise_email
from leadscore.store.schema import accounts, events, identities, lead_stages, leads, scores
from leadscore.store.score_names import scores_of

PAGES = 5


def unsubscribe_token(secret: str, email: str) -> str:
    return hmac.new(
        secret.encode(), f"unsubscribe:{normalise_email(email)}".encode(), hashlib.sha256
    ).hexdigest()[:40]


def unsubscribe_url(settings: Settings, email: str | None) -> str:
    if not email:
        return ""
    query = urlencode({"email": email, "token": unsubscribe_token(settings.webhook.secret, email)})
    return f"{settings.lifecycle.public_url.rstrip('/')}/v1/unsubscribe?{query}"


def lead_context(
    conn: Connection, model: ScoringModel, lead_id: int, settings: Settings, score_name: str | None = None
) -> dict[str, Any]:
    """The context of lead ``lead_id`` on the score ``score_name`` (the primary when None; ``model``:
    the primary's)."""
    row = (
        conn.execute(
            select(leads, accounts.c.name.label("account_name"), lead_stages.c.stage, scores)
            .select_from(
                leads.outerjoin(accounts, accounts.c.id == leads.c.account_id)
                .outerjoin(scores, scores_of(leads.c.id, score_name))
                .outerjoin(lead_stages, lead_stages.c.lead_id == leads.c.id)
            )
            .where(leads.c.id == lead_id)
        )
        .mappings()
        .one()
    )
    name = display_name(row["first_name"], row["last_name"], row["email"], lead_id)
    lead = {
        "id": lead_id,
        "external_id": row["external_id"],
        "email": row["email"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "name": name,
        "company": row["account_name"] or row["company"],
        "account_id": row["account_id"],
        "attributes": dict(row["attributes"] or {}),
        "stage": row["stage"],
        "score": None if row["score"] is None else cut(row["score"]),
        "fit_score": None if row["fit_score"] is None else cut(row["fit_score"]),
        "engagement_score": None if row["engagement_score"] is None else cut(row["engagement_score"]),
        "grade": row["grade"],
        "level": row["level"],
        "band": row["band"],
        "score_name": row["score_name"],  # the named score the fields above are of
    }
    return {
        "lead": lead,
        "reasons": _reasons(conn, reason_names(conn, model, score_name), lead_id, score_name),
        "pages": _pages(conn, lead_id),
        "unsubscribe_url": unsubscribe_url(settings, row["email"]),
    }


def reason_names(conn: Connection, model: ScoringModel, score_name: str | None) -> dict[str, str]:
    """The rule names of the score ``score_name``'s active model (``model``, the primary's, when None)."""
    if score_name is None:
        return rule_names(model)
    active = active_model(conn, score_name)
    return rule_names(active.model) if active is not None else {}


def _reasons(
    conn: Connection, names: dict[str, str], lead_id: int, score_name: str | None
) -> list[dict[str, Any]]:
    """The lead's top reasons on that score (``lifecycle.reasons``), points rounded for templates."""
    found = top_reasons(conn, names, lead_id, score_name=score_name)
    return [{**r, "points": round(r["points"], 1)} for r in found]


def _pages(conn: Connection, lead_id: int) -> list[str]:
    """The lead's most recently viewed distinct page paths."""
    query = (
        select(events.c.path, func.max(events.c.ts).label("last"))
        .join(identities, identities.c.key == events.c.person_key)
        .where(identities.c.lead_id == lead_id, events.c.type == "page", events.c.path.is_not(None))
        .group_by(events.c.path)
        .order_by(func.max(events.c.ts).desc(), events.c.path)
        .limit(PAGES)
    )
    return [str(p) for p, _ in conn.execute(query).all()]
