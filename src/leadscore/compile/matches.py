"""How many leads a fit condition matches, and how many events an engagement rule's event and condition
match in a recent span: the rule builder's live counts.

Both are the scoring query's own pieces: a fit condition through ``compile_condition`` with the lead
resolver the scoring query reads attributes with (``query.lead_resolver``), an event through
``query.kind_match`` (type, name and ``where``, exactly as the scoring query matches an event to a rule).
So a count can never disagree with what the rule scores; only the window is the builder's (the last
``days`` days), and the count is one aggregate statement the database answers from its indexes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, and_, func, select

from leadscore.compile.conditions import compile_condition
from leadscore.compile.query import kind_match, lead_resolver
from leadscore.compile.sources import Sources
from leadscore.model import Condition, EventRule, ScoringModel, walk

DAY_MS = 86_400_000


def lead_matches(
    model: ScoringModel, condition: Condition, sources: Sources, rule_id: str = "draft"
) -> Select[Any]:
    """One row: the number of leads the fit condition is true for."""
    leads, accounts = sources.leads, sources.accounts
    test = compile_condition(condition, lead_resolver(leads, accounts), model, rule_id)
    reads_account = any(c.field == "company" or c.field.startswith("account.") for c in walk(condition))
    joined = leads.outerjoin(accounts, accounts.c.id == leads.c.account_id) if reads_account else leads
    return select(func.count().label("leads")).select_from(joined).where(test)


def event_matches(
    model: ScoringModel, rule: EventRule, sources: Sources, as_of: int, days: int = 90
) -> Select[int, int]:
    """One row: the events the rule's event and ``where`` match with ``as_of - days < ts <= as_of``, and
    the distinct leads they belong to."""
    events, identities = sources.events, sources.identities
    recent = and_(events.c.ts > as_of - days * DAY_MS, events.c.ts <= as_of)
    # the matching events counted per person first (the ``type, ts`` index narrows to the type and span),
    # then each distinct person's lead looked up once: a person has many events, and a lookup per event
    # cost more than the scan; events of an unknown person drop out of the join, as in the scoring query
    per_person = (
        select(events.c.person_key, func.count().label("n"))
        .where(kind_match(model, rule, events), recent)
        .group_by(events.c.person_key)
        .subquery("per_person")
    )
    return select(
        func.coalesce(func.sum(per_person.c.n), 0).label("events"),
        func.count(identities.c.lead_id.distinct()).label("leads"),
    ).select_from(per_person.join(identities, identities.c.key == per_person.c.person_key))
