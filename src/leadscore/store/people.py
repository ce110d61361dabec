"""Leads, accounts and identities: find or create, merge attributes, link person keys to leads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, Text, bindparam, select, update

from leadscore.errors import NotFoundError
from leadscore.store.id_lists import in_list
from leadscore.store.schema import INT64_MAX, accounts, identities, leads
from leadscore.store.upsert import insert_ignore, insert_ignore_statement

LEAD_COLUMNS = ("email", "first_name", "last_name", "company")


def normalise_email(email: str) -> str:
    """An e-mail address as stored and looked up: trimmed, lower case."""
    return email.strip().lower()


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rsplit("@", 1)[1].strip().lower() or None


def user_key(user_id: str) -> str:
    return f"u:{user_id}"


def anonymous_key(anonymous_id: str) -> str:
    return f"a:{anonymous_id}"


# Statements built once: executed with parameters, SQLAlchemy finds their compiled form by a cache key it
# memoises on the statement, instead of building and keying a new statement per call (ingest runs these
# for every message that names a person).
_LEAD_BY_ID = select(leads.c.id).where(leads.c.id == bindparam("value"))
_LEAD_BY_EXTERNAL_ID = select(leads.c.id).where(leads.c.external_id == bindparam("value"))
_LEAD_BY_EMAIL = select(leads.c.id).where(leads.c.email == bindparam("value"))
_LEAD_BY_KEY = select(identities.c.lead_id).where(identities.c.key == bindparam("value"))
_LEADS_BY_KEYS = select(identities.c.key, identities.c.lead_id).where(
    in_list(identities.c.key, "values", Text)
)
_INSERT_LEAD = leads.insert().returning(leads.c.id)
_ACCOUNT_BY_DOMAIN = select(accounts.c.id).where(accounts.c.domain == bindparam("value"))
_ACCOUNT_BY_NAME = select(accounts.c.id).where(accounts.c.name == bindparam("value"))
# the same searches as ``find_lead``, reading the whole row (``upsert_lead`` merges into it)
_ROW_BY_EXTERNAL_ID = select(leads).where(leads.c.external_id == bindparam("value"))
_ROW_BY_KEY = (
    select(leads)
    .join(identities, identities.c.lead_id == leads.c.id)
    .where(identities.c.key == bindparam("value"))
)
_ROW_BY_EMAIL = select(leads).where(leads.c.email == bindparam("value"))
_ACCOUNT_ROW = select(accounts).where(accounts.c.id == bindparam("value"))
# the columns to set come from each call's parameters (SQLAlchemy compiles one form per set of names)
_UPDATE_LEAD = update(leads).where(leads.c.id == bindparam("row_id"))
_UPDATE_ACCOUNT = update(accounts).where(accounts.c.id == bindparam("row_id"))
_INSERT_ACCOUNT = accounts.insert().returning(accounts.c.id)
_ACCOUNT_FOR_DOMAIN_LEADS = (
    update(leads)
    .where(leads.c.email_domain == bindparam("domain"), leads.c.account_id.is_(None))
    .values(account_id=bindparam("account"), updated_ms=bindparam("now"))
)


def _insert_identities(dialect: str) -> Any:
    return insert_ignore_statement(dialect, identities, ("key",))


def find_lead(
    conn: Connection, *, lead_id: int | None = None, email: str | None = None, external_id: str | None = None
) -> int | None:
    """A lead's id by id, external id or e-mail (case-insensitive), or None."""
    if lead_id is not None:
        return conn.execute(_LEAD_BY_ID, {"value": lead_id}).scalar()
    if external_id is not None:
        found = conn.execute(_LEAD_BY_EXTERNAL_ID, {"value": external_id}).scalar()
        if found is not None:
            return found
        found = conn.execute(_LEAD_BY_KEY, {"value": user_key(external_id)}).scalar()
        if found is not None:
            return found
    if email:
        return conn.execute(_LEAD_BY_EMAIL, {"value": normalise_email(email)}).scalar()
    return None


def _find_lead_row(conn: Connection, *, email: str | None, external_id: str | None) -> Any:
    """The row of the lead ``find_lead`` finds by external id or (normalised) e-mail, or None."""
    searches = []
    if external_id is not None:
        searches += [(_ROW_BY_EXTERNAL_ID, external_id), (_ROW_BY_KEY, user_key(external_id))]
    if email:
        searches.append((_ROW_BY_EMAIL, email))
    for statement, value in searches:
        row = conn.execute(statement, {"value": value}).mappings().first()
        if row is not None:
            return row
    return None


def resolve_lead_ref(conn: Connection, ref: str) -> int:
    """A lead by reference: its numeric id, its e-mail, or its external (user) id.

    Raises NotFoundError naming the reference. Only ASCII digits up to ``INT64_MAX`` are an id ("³7".isdigit()
    is true; 99999999999999999999999 cannot be bound). A reference no store could hold (a NUL character,
    which PostgreSQL refuses in any text) names no lead.
    """
    lead_id: int | None = None
    if "\x00" not in ref:
        if ref.isascii() and ref.isdigit() and len(ref) <= 19 and int(ref) <= INT64_MAX:
            lead_id = find_lead(conn, lead_id=int(ref))
        if lead_id is None and "@" in ref:
            lead_id = find_lead(conn, email=ref)
        if lead_id is None:
            lead_id = find_lead(conn, external_id=ref)
    if lead_id is None:
        raise NotFoundError(f"no lead {ref!r} (give an id, e-mail or user id)")
    return lead_id


def upsert_lead(
    conn: Connection,
    *,
    now_ms: int,
    email: str | None = None,
    external_id: str | None = None,
    fields: dict[str, Any] | None = None,
    attributes: dict[str, Any] | None = None,
    at_ms: int | None = None,
    link_user_key: bool = True,
    once: tuple[str | None, dict[str, Any], dict[str, Any]] | None = None,
) -> tuple[int, bool]:
    """Find the lead by external id or e-mail and merge ``fields``/``attributes`` into it, or create it.

    Returns (lead id, created). Values merge key by key, and the value observed at the latest time
    (``at_ms``, default ``now_ms``) wins, so messages applied out of order leave the same lead. ``once``
    is (e-mail, fields, attributes) set only where the lead has no value yet (PostHog's ``$set_once``):
    a value stored before, or set by this same call, stays. The
    external id's ``u:`` key is then linked to the lead (first link wins), unless ``link_user_key`` is
    false: the caller links it next (ingest, whose key lookup knows which keys are linked already).
    """
    at_ms = now_ms if at_ms is None else at_ms
    email = normalise_email(email) if email else None
    fields = {k: v for k, v in (fields or {}).items() if k in LEAD_COLUMNS and v not in (None, "")}
    attributes = {k: v for k, v in (attributes or {}).items() if v not in (None, "")}
    once_email, once_fields, once_attributes = _once_values(once)
    row = _find_lead_row(conn, email=email, external_id=external_id)
    if row is None:
        if email is None and once_email and find_lead(conn, email=once_email) is None:
            email = once_email
        fields = {**once_fields, **fields}
        attributes = {**once_attributes, **attributes}
        values: dict[str, Any] = {
            "external_id": external_id,
            "email": email,
            "email_domain": email_domain(email),
            "attributes": attributes,
            "attribute_ts": dict.fromkeys([*attributes, *fields], at_ms),
            "created_ms": now_ms,
            "updated_ms": now_ms,
            **fields,
        }
        values["account_id"] = _account_for_domain(conn, values["email_domain"])
        lead_id = int(conn.execute(_INSERT_LEAD, values).scalar_one())
        created = True
    else:
        lead_id = int(row["id"])
        stored = row["attributes"] or {}
        # a set-once value fills a gap only: no stored value and none set by this call
        fields = {**{k: v for k, v in once_fields.items() if row[k] in (None, "")}, **fields}
        attributes = {
            **{k: v for k, v in once_attributes.items() if stored.get(k) in (None, "")},
            **attributes,
        }
        if email is None and once_email and row["email"] is None:
            email = once_email
        seen = dict(row["attribute_ts"] or {})
        newer = {k for k in [*fields, *attributes] if at_ms >= seen.get(k, at_ms)}
        changes: dict[str, Any] = {k: v for k, v in fields.items() if k in newer and row[k] != v}
        merged = {**(row["attributes"] or {}), **{k: v for k, v in attributes.items() if k in newer}}
        if merged != row["attributes"]:
            changes["attributes"] = merged
        stamps = {**seen, **dict.fromkeys(newer, at_ms)}
        if stamps != seen:
            changes["attribute_ts"] = stamps
        if email and row["email"] != email and find_lead(conn, email=email) is None:
            changes["email"], changes["email_domain"] = email, email_domain(email)
        if external_id and not row["external_id"]:
            changes["external_id"] = external_id
        if row["account_id"] is None and (domain := changes.get("email_domain", row["email_domain"])):
            account_id = _account_for_domain(conn, domain)
            if account_id is not None:
                changes["account_id"] = account_id
        if changes:
            conn.execute(_UPDATE_LEAD, {**changes, "updated_ms": now_ms, "row_id": lead_id})
        created = False
    if external_id and link_user_key:
        link_identity(conn, user_key(external_id), lead_id, now_ms)
    return lead_id, created


def _once_values(
    once: tuple[str | None, dict[str, Any], dict[str, Any]] | None,
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    if once is None:
        return None, {}, {}
    email, fields, attributes = once
    return (
        normalise_email(email) if email else None,
        {k: v for k, v in fields.items() if k in LEAD_COLUMNS and v not in (None, "")},
        {k: v for k, v in attributes.items() if v not in (None, "")},
    )


_LEADS_BY_EXTERNAL_IDS = select(leads.c.external_id, leads.c.id).where(
    in_list(leads.c.external_id, "values", Text)
)


def create_bare_leads(conn: Connection, first_seen: dict[str, int]) -> tuple[dict[str, int], set[int]]:
    """The lead of each user id in ``first_seen`` (user id → time first seen), none of which has an
    identity yet: found by external id, else created with nothing but that id, as ``upsert_lead`` does
    for a user seen without traits (user ids with an ``@`` are left to ``upsert_lead``: they may name an
    e-mail). In a few statements for a whole batch instead of five per lead; links each ``u:`` key.

    Returns (user id → lead id, ids of the leads created).
    """
    wanted = [u for u in first_seen if "@" not in u]
    found = _lead_ids(conn, _LEADS_BY_EXTERNAL_IDS, wanted)
    missing = [u for u in wanted if u not in found]
    created: set[int] = set()
    if missing:
        rows: list[dict[str, Any]] = [
            {
                "external_id": u,
                "email": None,
                "email_domain": None,
                "attributes": {},
                "attribute_ts": {},
                "created_ms": first_seen[u],
                "updated_ms": first_seen[u],
                "account_id": None,
            }
            for u in missing
        ]
        made = conn.execute(
            leads.insert().returning(leads.c.external_id, leads.c.id, sort_by_parameter_order=True), rows
        ).all()
        for external_id, lead_id in made:
            found[external_id] = int(lead_id)
            created.add(int(lead_id))
    links = [
        {"key": user_key(u), "lead_id": lead_id, "created_ms": first_seen[u]} for u, lead_id in found.items()
    ]
    if links:
        conn.execute(_insert_identities(conn.dialect.name), links)
    return found, created


def link_identity(conn: Connection, key: str, lead_id: int, now_ms: int) -> bool:
    """Map a person key to a lead (first link wins: a key never moves to another lead)."""
    return (
        insert_ignore(conn, identities, [{"key": key, "lead_id": lead_id, "created_ms": now_ms}], ["key"])
        == 1
    )


def link_identities(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Map person keys to leads (rows of key, lead_id, created_ms) in one statement, first link winning;
    returns how many were linked."""
    return insert_ignore(conn, identities, rows, ["key"])


def lead_for_key(conn: Connection, key: str) -> int | None:
    return conn.execute(_LEAD_BY_KEY, {"value": key}).scalar()


def leads_for_keys(conn: Connection, keys: Iterable[str]) -> dict[str, int]:
    """The lead of each person key that has one (keys without a lead are left out)."""
    return _lead_ids(conn, _LEADS_BY_KEYS, list(dict.fromkeys(keys)))


_ME, _MATE = leads.alias("me"), leads.alias("mate")
_COLLEAGUES = (
    select(_ME.c.id, _MATE.c.id)
    .select_from(_ME.join(_MATE, _MATE.c.account_id == _ME.c.account_id))
    .where(in_list(_ME.c.id, "ids"), _MATE.c.id != _ME.c.id)
)


def account_colleagues(conn: Connection, lead_ids: Iterable[int]) -> list[tuple[int, int]]:
    """(lead, colleague) for every other lead of the account of each of ``lead_ids`` that has one."""
    ids = sorted(set(lead_ids))
    if not ids:
        return []
    return [(int(a), int(b)) for a, b in conn.execute(_COLLEAGUES, {"ids": ids}).all()]


def _lead_ids(conn: Connection, statement: Any, values: list[str]) -> dict[str, int]:
    """value → lead id from a (value, lead id) statement over a list bound as one parameter (no limit
    on its length, see ``id_lists``)."""
    if not values:
        return {}
    return {value: int(lead_id) for value, lead_id in conn.execute(statement, {"values": values}).all()}


def _account_for_domain(conn: Connection, domain: str | None) -> int | None:
    if not domain:
        return None
    return conn.execute(_ACCOUNT_BY_DOMAIN, {"value": domain}).scalar()


def upsert_account(
    conn: Connection,
    *,
    now_ms: int,
    domain: str | None,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> tuple[int, bool]:
    """Find the account by domain (else by exact name) and merge into it, or create it; link its leads."""
    domain = domain.strip().lower().removeprefix("www.") if domain else None
    attributes = {k: v for k, v in (attributes or {}).items() if v not in (None, "")}
    account_id = _account_for_domain(conn, domain)
    if account_id is None and name and not domain:
        account_id = conn.execute(_ACCOUNT_BY_NAME, {"value": name}).scalar()
    if account_id is None:
        values = {"domain": domain, "name": name, "attributes": attributes}
        account_id = int(
            conn.execute(_INSERT_ACCOUNT, {**values, "created_ms": now_ms, "updated_ms": now_ms}).scalar_one()
        )
        created = True
    else:
        row = conn.execute(_ACCOUNT_ROW, {"value": account_id}).mappings().one()
        merged = {**(row["attributes"] or {}), **attributes}
        changes: dict[str, Any] = {}
        if merged != row["attributes"]:
            changes["attributes"] = merged
        if name and row["name"] != name:
            changes["name"] = name
        if changes:
            conn.execute(_UPDATE_ACCOUNT, {**changes, "updated_ms": now_ms, "row_id": account_id})
        created = False
    if domain:
        conn.execute(_ACCOUNT_FOR_DOMAIN_LEADS, {"domain": domain, "account": account_id, "now": now_ms})
    return account_id, created


def set_lead_account(conn: Connection, lead_id: int, account_id: int, now_ms: int) -> None:
    conn.execute(_UPDATE_LEAD, {"account_id": account_id, "updated_ms": now_ms, "row_id": lead_id})
