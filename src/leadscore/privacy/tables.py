"""Which rows of each table are a person's: one rule per table, by exact keys, for export and erasure.

Every table of the schema is accounted for: a table with a ``lead_id`` column holds the lead's rows
there; ``RULES`` says how the others hold a person (by identity key, user id, anonymous id, e-mail,
message id: always whole values, never substrings); ``EVENT_ARRAYS`` names columns holding JSON arrays
of event-log rows (the inbox), from which only the person's events are taken; ``REDACT`` names tables
whose matching rows are kept with the personal parts replaced (the audit log); ``NOT_PERSONAL`` says why
a table holds nobody. ``unaccounted`` lists any other table, and erasure refuses to run while there is
one, so a table added later (a dead-letter table, say) is never silently left out: give it a rule here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import BigInteger, Connection, Table, Text, false, func, inspect, or_, select
from sqlalchemy.sql.elements import ColumnElement

from leadscore.privacy.person import Person, row_addresses
from leadscore.store.dead_letters import OWNER_FIELDS, dead_letter_rows
from leadscore.store.event_log import waiting_rows
from leadscore.store.id_lists import in_values
from leadscore.store.schema import events, metadata

Values = Literal[
    "lead_id",
    "keys",
    "user_ids",
    "anonymous_ids",
    "emails",
    "message_ids",
    "audit_targets",
    "dead_letter_ids",
    "searches",
]

MAX_ADDRESS = 320  # an e-mail address at most (RFC 3696); a longer trait value is searched by no one
NUMBERED = ("lead_id", "dead_letter_ids")  # the values that are row ids, not texts
LOWERED = ("emails", "searches")  # compared ignoring case, as they were entered or searched


@dataclass(frozen=True)
class By:
    """Rows whose ``column`` equals one of the person's ``values`` (e-mails compared normalised); with
    ``key``, the column is a JSON object and its member ``key`` (a path: members within members) is
    compared."""

    column: str
    values: Values
    key: str | tuple[str, ...] | None = None


# what the audit entry of a dead letter's retry or drop keeps of its message's owner (``owner_details``),
# by the kind of her ids each is compared with
OWNER_DETAILS: dict[str, Values] = dict(zip(OWNER_FIELDS, ("keys", "user_ids", "anonymous_ids"), strict=True))
# an event is its person key's (``u:<userId>``, else ``a:<anonymousId>``): one that carries her anonymous id
# beside another user id is that user's (a browser they shared, where she had been first), never hers
EVENT_ROWS = (By("person_key", "keys"), By("user_id", "user_ids"), By("message_id", "message_ids"))
RULES: dict[str, tuple[By, ...]] = {
    "leads": (By("id", "lead_id"),),
    "identities": (By("lead_id", "lead_id"), By("key", "keys")),
    "events": EVENT_ROWS,
    "outbox": (By("lead_id", "lead_id"), By("target", "emails")),
    # the leads a digest tells of; erase.py renders each such digest again without the erased lead first
    "digest_leads": (By("lead_id", "lead_id"),),
    # messages the processor set aside: event-log rows as JSON text, matched by EVENT_ROWS (Ids.of)
    "dead_letters": (By("id", "dead_letter_ids"),),
}
EVENT_ARRAYS = {"inbox": "rows"}  # waiting events; their rows are EVENT_ROWS
# the audit log: entries aimed at her (``target``: her e-mail, ids, ``lead:<id>``, or the id of a message
# of hers, such as a dead letter's retry), and dead-letter entries whose message was hers (its owner's
# ids in ``details``: a dropped letter's message is nowhere else once dropped)
REDACT = {
    "audit_log": (
        By("target", "audit_targets"),
        *(By("details", values, key=column) for column, values in OWNER_DETAILS.items()),
        # a staff member's leads list export searched for her (``leads.export``: its filter's ``q``)
        By("details", "searches", key=("filter", "q")),
    )
}
NOT_PERSONAL = {
    "accounts": "companies, not people",
    "account_owners": "which seller owns an account",
    "account_stages": "account scores, aggregated over their leads",
    "account_stage_history": "account stage moves, aggregated over their leads",
    "model_versions": "scoring models",
    "model_backtests": "aggregate backtest reports",
    "api_keys": "API keys (hashed)",
    "users": "staff accounts of the dashboard, not leads",
    "sessions": "staff sessions",
    "login_attempts": "staff logins",
    "team_cursors": "round-robin positions",
    "mail_suppressions": "peppered hashes only: kept so an unsubscribe outlives the erasure",
    "tracking_suppressions": "peppered hashes only: kept so an erasure with --suppress drops her later events",
    "counters": "running totals of the pipeline",
    "alerts": "health checks of the model, aggregated over all leads",
    "shadow_models": "which model versions are scored in shadow",
    "notification_settings": "what staff users are told about their leads",
    "score_names": "the named scores (one per product line or persona), not leads",
}


@dataclass(frozen=True)
class Ids:
    """A person's exact identifiers by kind, as the rules compare them."""

    values: Mapping[str, tuple[Any, ...]]

    @classmethod
    def of(cls, conn: Connection, person: Person) -> Ids:
        base = cls._base(person, ())
        # her events' ids, and the addresses her own traits gave (a merge keeps one lead's address only)
        stored = conn.execute(
            select(events.c.message_id, events.c.context).where(condition(events, EVENT_ROWS, base))
        ).all()
        given = {a for _, context in stored for a in row_addresses(context)}
        waiting = [row for row in waiting_rows(conn) if base.owns(row)]
        given |= {a for row in waiting for a in row_addresses(row.get("context"))}
        used = {a for a in given if 0 < len(a) <= MAX_ADDRESS}
        letters = [(letter, row) for letter, row in dead_letter_rows(conn) if base.owns(row)]
        lettered = [row["message_id"] for _, row in letters if isinstance(row.get("message_id"), str)]
        return cls._base(
            person,
            (*(m for m, _ in stored), *(row["message_id"] for row in waiting), *lettered),
            [letter for letter, _ in letters],
            sorted(used),
        )

    @classmethod
    def _base(
        cls,
        person: Person,
        message_ids: tuple[str, ...] | list[str],
        letters: list[int] | None = None,
        addresses: list[str] | None = None,
    ) -> Ids:
        audit = {
            *person.emails,
            *person.user_ids,
            *person.anonymous_ids,
            *([person.email] if person.email else []),
            *message_ids,  # a dead letter's retry names its message
            # the ids of leads merged into hers (``lead:<id>`` keys): the merge's entry names one
            *(key for key in person.keys if not key.startswith(("u:", "a:"))),
        }
        if person.lead_id is not None:
            audit.add(f"lead:{person.lead_id}")
        # what a leads list search (``LeadFilter.q``) for her is: an e-mail, a name, an id, her lead's id
        searches = {
            *person.emails,
            *(addresses or ()),  # an export searched by an address she used before: hers too
            *person.user_ids,
            *person.anonymous_ids,
            *([person.name] if person.name else []),
            *([str(person.lead_id)] if person.lead_id is not None else []),
        }
        return cls({
            "lead_id": (person.lead_id,) if person.lead_id is not None else (),
            "keys": person.keys,
            "user_ids": person.user_ids,
            "anonymous_ids": person.anonymous_ids,
            "emails": person.emails,
            # every address of hers (normalised): the lead's, and those her traits gave; ``--suppress``
            # suppresses each
            "addresses": tuple(sorted({*person.emails, *(addresses or ())})),
            "message_ids": tuple(sorted(set(message_ids))),
            "audit_targets": tuple(sorted(audit)),
            "dead_letter_ids": tuple(sorted(letters or ())),
            "searches": tuple(sorted({s.lower() for s in searches})),
        })  # fmt: skip

    def owns(self, row: Mapping[str, Any]) -> bool:
        """Whether an event-log row (stored or waiting) is the person's: ``EVENT_ROWS`` in Python. A dead
        letter's message may lack its ``person_key``: then its anonymous id is its key where it has no
        user id."""
        if any(row.get(by.column) in self.values[by.values] for by in EVENT_ROWS):
            return True
        keyless = not row.get("person_key") and not row.get("user_id")
        return keyless and row.get("anonymous_id") in self.values["anonymous_ids"]


def condition(table: Table, rules: tuple[By, ...], ids: Ids) -> ColumnElement[bool]:
    """The rows of ``table`` the rules pick for this person, as one SQL condition."""
    parts: list[ColumnElement[bool]] = []
    for by in rules:
        values = ids.values[by.values]
        if not values:
            continue
        column = table.c[by.column] if by.key is None else table.c[by.column][by.key].as_string()
        # one parameter a list: a person's message ids are as many as her events (65,535 at most a statement
        # on PostgreSQL, one parameter each in an expanding IN)
        element = BigInteger if by.values in NUMBERED else Text
        parts.append(in_values(func.lower(column) if by.values in LOWERED else column, values, element))
    return or_(*parts) if parts else false()


def rules_for(table: Table) -> tuple[By, ...] | None:
    """How ``table``'s rows belong to a person (None: through its event arrays, or not at all)."""
    if table.name in RULES:
        return RULES[table.name]
    if "lead_id" in table.c and table.name not in NOT_PERSONAL:
        return (By("lead_id", "lead_id"),)
    return None


def present_tables(conn: Connection) -> list[Table]:
    """The schema's tables that exist in this database, parents before children."""
    present = set(inspect(conn).get_table_names())
    return [t for t in metadata.sorted_tables if t.name in present]


def unaccounted(conn: Connection) -> list[str]:
    """Tables in the database that no rule here covers (metadata and the database itself)."""
    known = {*RULES, *EVENT_ARRAYS, *REDACT, *NOT_PERSONAL, "alembic_version"}
    names = {t.name for t in metadata.sorted_tables} | set(inspect(conn).get_table_names())
    return sorted(
        n
        for n in names
        if n not in known and not (n in metadata.tables and "lead_id" in metadata.tables[n].c)
    )
