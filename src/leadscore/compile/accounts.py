"""Account fit through the one compiled query: the model's account-only fit rules, with each account
standing in as a lead of itself, so an account's fit is floored, clamped at ``scale.fit_max`` and
scaled to 0–100 by exactly the arithmetic that gives a lead its fit score.

A fit rule is about the account alone when every field it compares is ``account.*``; only those say
anything about an account without a contact (docs/lifecycle.md, Accounts).
"""

from __future__ import annotations

from sqlalchemy import JSON, String, cast, null, select

from leadscore.compile.sources import Sources
from leadscore.model import FitRule, ScoringModel, walk


def account_rules(model: ScoringModel) -> tuple[FitRule, ...]:
    """Fit rules about the account alone (every field they compare is ``account.*``)."""
    return tuple(r for r in model.fit if all(c.field.startswith("account.") for c in walk(r.when)))


def account_model(model: ScoringModel) -> ScoringModel:
    """The model reduced to its account-only fit rules (same lists and scale; no engagement, no lifecycle).

    Its ``fit_score`` for a target whose ``lead_id`` is an account id (over ``account_sources``) is the
    account's fit.
    """
    return model.model_copy(
        update={"fit": account_rules(model), "engagement": (), "groups": (), "lifecycle": None}
    )


def account_sources(sources: Sources) -> Sources:
    """``sources`` with the leads relation replaced by one row per account (``id`` and ``account_id``
    both the account's id, every lead field empty): account rules then read the account itself."""
    a = sources.accounts
    as_leads = select(
        a.c.id.label("id"),
        cast(null(), String).label("email"),
        cast(null(), String).label("email_domain"),
        cast(null(), String).label("first_name"),
        cast(null(), String).label("last_name"),
        cast(null(), String).label("company"),
        a.c.id.label("account_id"),
        cast(null(), JSON).label("attributes"),
    ).subquery("account_leads")
    return Sources(events=sources.events, identities=sources.identities, leads=as_leads, accounts=a)


__all__ = ["account_model", "account_rules", "account_sources"]
