"""The relations a compiled model reads, and the columns each must have.

The compiler never imports the store: callers hand it any four SQLAlchemy selectables (the store's
tables, Parquet views, engine tables) with these columns. ``ts`` and ``as_of`` are epoch milliseconds.

    events      message_id, person_key, ts, type, name, path, url, properties (JSON)
    identities  key, lead_id                      (which person keys belong to which lead)
    leads       id, email, email_domain, first_name, last_name, company, account_id, attributes (JSON)
    accounts    id, domain, name, attributes (JSON)
    targets     lead_id, as_of                    (the (lead, time) pairs to score)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import FromClause, func
from sqlalchemy.sql.elements import ColumnElement

EVENT_COLUMNS = ("message_id", "person_key", "ts", "type", "name", "path", "url", "properties")
IDENTITY_COLUMNS = ("key", "lead_id")
LEAD_COLUMNS = (
    "id",
    "email",
    "email_domain",
    "first_name",
    "last_name",
    "company",
    "account_id",
    "attributes",
)
ACCOUNT_COLUMNS = ("id", "domain", "name", "attributes")

# Fields that are columns rather than keys inside the JSON column.
LEAD_FIELDS = ("email", "email_domain", "first_name", "last_name")
ACCOUNT_FIELDS = ("domain", "name")
EVENT_FIELDS = ("type", "name", "path", "url")


def lead_company(leads: Any, accounts: Any) -> ColumnElement[Any]:
    """A lead's company, as rules read it and every surface shows and searches it: its account's name,
    else the company the lead gave (``leads`` and ``accounts``: the relations, outer-joined by account)."""
    return func.coalesce(accounts.c.name, leads.c.company)


@dataclass(frozen=True)
class Sources:
    events: FromClause
    identities: FromClause
    leads: FromClause
    accounts: FromClause

    def check(self) -> None:
        for name, cols in (
            ("events", EVENT_COLUMNS),
            ("identities", IDENTITY_COLUMNS),
            ("leads", LEAD_COLUMNS),
            ("accounts", ACCOUNT_COLUMNS),
        ):
            have = set(getattr(self, name).c.keys())
            missing = [c for c in cols if c not in have]
            if missing:
                raise ValueError(f"source {name} lacks columns {', '.join(missing)}")
