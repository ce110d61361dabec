"""Product usage as the lead and account pages show it (docs/dashboard.md, Product usage).

A **product event** is one a product-analytics client sent: an event (track, page or screen; not the
identify, group and alias messages that only say who someone is) stored from PostHog's capture routes
(``events.source = 'posthog'``, ``api.posthog``). Website and marketing activity (the Segment routes, the
tag, imports) is the rest of the journey. Of a lead's product events this module counts, as of a time:
the events of the last 14 and 30 days, the distinct UTC days with one (30 days), the features adopted
(distinct values of the ``feature`` property in 30 days, case ignored, as ``count: {distinct: {property}}``
compares them) and the last one's time. These are descriptions of the log, not scores.

What the model makes of product usage is its own: the **product rules** are the rules a lifecycle gate
names in ``rules_met`` (what makes a PQL), and the pages show their lines of the stored ledger
(``ledger`` table, written with the score by the compiled query), never a recount.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, distinct, func, select

from leadscore.compile.dialects import DayNumber
from leadscore.compile.query import folded_property
from leadscore.model import ScoringModel
from leadscore.store.id_lists import in_values
from leadscore.store.schema import events, identities
from leadscore.web.data.paging import Paging, paging

PRODUCT_SOURCE = "posthog"
WINDOWS_DAYS = (14, 30)
DAY_MS = 86_400_000
FEATURE_PROPERTY = "feature"
EVENT_TYPES = ("track", "page", "screen")
QUALIFIED_PAGE = 50  # an account's product-qualified contacts listed a page (``account_usage``)


@dataclass
class Usage:
    """One lead's product events as of a time."""

    events: dict[int, int] = field(default_factory=lambda: dict.fromkeys(WINDOWS_DAYS, 0))
    active_days: int = 0  # distinct UTC days with a product event in the last 30 days
    features: int = 0  # distinct values of properties.feature in the last 30 days
    last_seen_ms: int | None = None

    @property
    def active(self) -> bool:
        """A product event within the shortest window (an active user)."""
        return self.events[WINDOWS_DAYS[0]] > 0


def usage(conn: Connection, lead_ids: Sequence[int], now_ms: int) -> dict[int, Usage]:
    """Each lead's product usage as of ``now_ms`` (every lead of ``lead_ids`` has an entry), counted in the
    database: a write key can send a person a million product events, which the page never reads. The
    days are UTC days and the features the ``feature`` property's values as a distinct count compares
    them (``compile.query.DayNumber``, ``folded_property``)."""
    out = {int(lead): Usage() for lead in lead_ids}
    if not out:
        return out
    person = identities.c.key == events.c.person_key
    mine = (
        in_values(identities.c.lead_id, sorted(out)),  # one parameter, however many contacts
        events.c.source == PRODUCT_SOURCE,
        events.c.type.in_(EVENT_TYPES),
        events.c.ts <= now_ms,
    )
    last = select(identities.c.lead_id, func.max(events.c.ts)).join(identities, person).where(*mine)
    for lead_id, ts in conn.execute(last.group_by(identities.c.lead_id)).all():
        out[int(lead_id)].last_seen_ms = int(ts)
    since = now_ms - max(WINDOWS_DAYS) * DAY_MS
    feature = folded_property(events, FEATURE_PROPERTY)
    within = [func.count().filter(events.c.ts > now_ms - days * DAY_MS) for days in WINDOWS_DAYS]
    counted = (
        select(
            identities.c.lead_id,
            *within,
            func.count(distinct(DayNumber(events.c.ts))),
            func.count(distinct(feature)),
        )
        .join(identities, person)
        .where(*mine, events.c.ts > since)
        .group_by(identities.c.lead_id)
    )
    for lead_id, *counts, days, features in conn.execute(counted).all():
        u = out[int(lead_id)]
        u.events = {days_: int(n) for days_, n in zip(WINDOWS_DAYS, counts, strict=True)}
        u.active_days, u.features = int(days), int(features)
    return out


def product_rules(model: ScoringModel | None) -> tuple[str, ...]:
    """The rule ids the lifecycle's gates name in ``rules_met``, in the model's rule order."""
    if model is None or model.lifecycle is None:
        return ()
    named = {r for t in model.lifecycle.transitions for r in (t.when.rules_met or ())}
    return tuple(r.id for r in (*model.fit, *model.engagement) if r.id in named)


def product_stages(model: ScoringModel | None) -> dict[str, str]:
    """Stage id → name of the stages a transition gated by ``rules_met`` leads to (the PQL stages)."""
    if model is None or model.lifecycle is None:
        return {}
    names = {s.id: s.name for s in model.lifecycle.stages}
    return {t.to: names[t.to] for t in model.lifecycle.transitions if t.when.rules_met}


def product_lines(model: ScoringModel | None, ledger: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The product rules' lines of a lead's ledger (as the lead page reads it), in the model's order; a
    product rule without a line is listed with none."""
    if model is None:
        return []
    lines = {line["rule_id"]: line for line in ledger}
    names = {r.id: r.name for r in (*model.fit, *model.engagement)}
    return [
        lines.get(r, {"rule_id": r, "name": names[r], "score_points": None}) for r in product_rules(model)
    ]


@dataclass
class AccountUsage:
    """An account's product usage: its contacts' product events summed, and its PQL contacts."""

    active_users: int
    seats: float | None  # the account attribute ``seats``, when it is a number
    seat_share: float | None  # active users / seats
    events_30d: int
    last_seen_ms: int | None
    stages: list[str]  # names of the PQL stages (empty: the model has none)
    qualified: list[dict[str, Any]]  # the page ``qualified_at`` of the contacts in one (id, name)
    qualified_at: Paging  # where they sit among all of them (``QUALIFIED_PAGE`` a page)


def account_usage(
    conn: Connection,
    model: ScoringModel | None,
    account: dict[str, Any],
    contacts: Sequence[dict[str, Any]],
    now_ms: int,
    qualified_page: int = 1,
) -> AccountUsage:
    """``contacts`` as ``web.data.account.members_of`` lists them (id, name, stage), every one; the
    product-qualified ones listed a page at a time (page ``qualified_page``, from 1, in ``contacts``'
    order; a page past the last is the last): a write key can put 20,000 people in one account."""
    each = usage(conn, [int(c["id"]) for c in contacts], now_ms)
    active = sum(1 for u in each.values() if u.active)
    seats = (account.get("attributes") or {}).get("seats")
    seats = (
        float(seats) if isinstance(seats, int | float) and not isinstance(seats, bool) and seats > 0 else None
    )
    stages = product_stages(model)
    qualified = [c for c in contacts if c.get("stage") in stages]
    at = paging(len(qualified), qualified_page, QUALIFIED_PAGE)
    return AccountUsage(
        active_users=active,
        seats=seats,
        seat_share=active / seats if seats else None,
        events_30d=sum(u.events[max(WINDOWS_DAYS)] for u in each.values()),
        last_seen_ms=max((u.last_seen_ms for u in each.values() if u.last_seen_ms), default=None),
        stages=list(dict.fromkeys(stages.values())),
        qualified=[{"id": c["id"], "name": c["name"]} for c in qualified[at.offset : at.offset + at.size]],
        qualified_at=at,
    )
