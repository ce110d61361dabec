"""Leads, accounts and identities: find or create, merge attributes, link person keys to leads."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy import Connection, Text, bindparam, select, text, update

from leadscore.errors import NotFoundError
from leadscore.model.text_case import normalise_text
from leadscore.store.bulk import insert_tuples
from leadscore.store.id_lists import in_list
from leadscore.store.schema import INT64_MAX, accounts, fits_id, identities, leads
from leadscore.store.upsert import insert_ignore

LEAD_COLUMNS = ("email", "first_name", "last_name", "company")
# the JSON text a lead's or an account's attributes may take. Each message's traits are bounded (the
# message size), but messages add up: before, 400 identifies of one user id with 600 new trait names each
# grew its attributes to 9 MB (and their stamps to 11 MB), every later message about the person rewrote
# all of it, and the processor's transaction held SQLite's lock long enough to stall every other lead's
# scoring. 256 KiB is eight messages' worth of traits, and many times a real person's
MAX_ATTRIBUTE_BYTES = 256 * 1024
log = logging.getLogger("leadscore.ingest")


def normalise_email(email: str) -> str:
    """An e-mail address as stored, looked up, hashed and compared everywhere: Unicode NFC (a decomposed
    ``é`` and a composed one are one address, one person), surrounding blanks removed, lower case."""
    return normalise_text(email.strip()).lower()


def email_domain(email: str | None) -> str | None:
    """The domain of an address (after its last ``@``), normalised as the address is; None without one."""
    if not email or "@" not in email:
        return None
    return normalise_email(email.rsplit("@", 1)[1]) or None


def user_key(user_id: str) -> str:
    return f"u:{user_id}"


def anonymous_key(anonymous_id: str) -> str:
    return f"a:{anonymous_id}"


def merged_key(lead_id: int) -> str:
    """The person key that keeps a merged-away lead's numeric id (``store/lead_merge.py``) pointing at the
    lead it was merged into: it moves with the other keys if that lead is merged in turn, and goes with
    it if it is erased. No event is stored under it (events are under ``u:`` and ``a:`` keys)."""
    return f"lead:{lead_id}"


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
_INSERT_BARE_LEADS = leads.insert()
_ACCOUNT_BY_DOMAIN = select(accounts.c.id).where(accounts.c.domain == bindparam("value"))
_ACCOUNT_BY_NAME = select(accounts.c.id).where(accounts.c.name == bindparam("value"))
_ACCOUNT_BY_GROUP_KEY = select(accounts.c.id).where(accounts.c.group_key == bindparam("value"))
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


def merge_attributes(stored: Mapping[str, Any], new: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """``stored`` with the values of ``new`` set, name by name in ``new``'s order, as long as the whole
    takes at most ``MAX_ATTRIBUTE_BYTES`` of JSON: a value that would grow it past that is left out (the
    name keeps its stored value, or stays absent) and a warning names ``owner`` (``lead 12``)."""
    merged = {**stored, **new}
    if not new or _json_bytes(merged) <= MAX_ATTRIBUTE_BYTES:  # nearly always
        return merged
    merged, size = dict(stored), _json_bytes(stored)
    left_out = 0
    for name, value in new.items():
        grown = _entry_bytes(name, value) - (_entry_bytes(name, merged[name]) if name in merged else 0)
        if size + grown > MAX_ATTRIBUTE_BYTES:
            left_out += 1
            continue
        merged[name], size = value, size + grown
    log.warning(
        "%s: %d of %d attributes left out; its attributes may take at most %d bytes of JSON",
        owner, left_out, len(new), MAX_ATTRIBUTE_BYTES,
    )  # fmt: skip
    return merged


def _entry_bytes(name: str, value: Any) -> int:
    """The bytes ``"name":value,`` takes in an object's JSON."""
    return _json_bytes(name) + _json_bytes(value) + 2


def _json_bytes(value: Any) -> int:
    return len(orjson.dumps(value, default=str))  # default: a CSV import's value of another type


def find_lead(
    conn: Connection, *, lead_id: int | None = None, email: str | None = None, external_id: str | None = None
) -> int | None:
    """A lead's id by id, external id or e-mail (case-insensitive), or None."""
    if lead_id is not None:
        return conn.execute(_LEAD_BY_ID, {"value": lead_id}).scalar() if fits_id(lead_id) else None
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


def _find_lead_row(
    conn: Connection, *, email: str | None, external_id: str | None, cache: PeopleCache | None = None
) -> Any:
    """The row of the lead ``find_lead`` finds by external id or (normalised) e-mail, or None."""
    if cache is not None:
        return cache.find_row(conn, email=email, external_id=external_id)
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


def _lead_row(conn: Connection, lead_id: int) -> Any:
    return conn.execute(select(leads).where(leads.c.id == lead_id)).mappings().one()


def lead_by_id(conn: Connection, lead_id: int) -> int | None:
    """The lead with the id ``lead_id`` or, merged into another by an alias, that one (its id is a key of
    the lead it went to: ``merged_key``); None: no such lead."""
    found = find_lead(conn, lead_id=lead_id)
    if found is None:
        found = lead_for_key(conn, merged_key(lead_id))
    return found


def resolve_lead_ref(conn: Connection, ref: str) -> int:
    """A lead by reference: its numeric id (a lead merged into another by an alias: the one it was merged
    into), its e-mail, or its external (user) id.

    Raises NotFoundError naming the reference. Only ASCII digits up to ``INT64_MAX`` are an id ("³7".isdigit()
    is true; 99999999999999999999999 cannot be bound). A reference no store could hold (a NUL character,
    which PostgreSQL refuses in any text) names no lead.
    """
    lead_id: int | None = None
    if "\x00" not in ref:
        if ref.isascii() and ref.isdigit() and len(ref) <= 19 and int(ref) <= INT64_MAX:
            lead_id = lead_by_id(conn, int(ref))
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
    cache: PeopleCache | None = None,
    lead_id: int | None = None,
    unset: Collection[str] = (),
) -> tuple[int, bool]:
    """Find the lead by external id or e-mail and merge ``fields``/``attributes`` into it, or create it.

    Returns (lead id, created). Values merge key by key, and the value observed at the latest time
    (``at_ms``, default ``now_ms``) wins, so messages applied out of order leave the same lead. ``once``
    is (e-mail, fields, attributes) set only where the lead has no value yet (PostHog's ``$set_once``):
    a value stored before, or set by this same call, stays. The
    external id's ``u:`` key is then linked to the lead (first link wins), unless ``link_user_key`` is
    false: the caller links it next (ingest, whose key lookup knows which keys are linked already).
    ``cache``: a batch's ``PeopleCache``, which answers the searches and learns the writes. ``lead_id``:
    merge into that lead (which must exist) instead of the one found by external id or e-mail.
    ``unset``: attribute and name-field names removed at ``at_ms`` (PostHog's ``$unset``), after this call's
    own values: a removal is an observation like a value, stamped, so the latest by time wins (a value
    observed before it, arriving later, stays out). A stamp without its value is a removal
    (``scoring.as_known.Known``); the e-mail is never removed (it finds the person).
    """
    at_ms = now_ms if at_ms is None else at_ms
    email = normalise_email(email) if email else None
    fields = {k: v for k, v in (fields or {}).items() if k in LEAD_COLUMNS and v not in (None, "")}
    attributes = {k: v for k, v in (attributes or {}).items() if v not in (None, "")}
    once_email, once_fields, once_attributes = _once_values(once)
    gone = [k for k in dict.fromkeys(unset) if k != "email"]
    if gone:  # removed after this call's own values (PostHog applies $set, then $unset)
        fields = {k: v for k, v in fields.items() if k not in gone}
        attributes = {k: v for k, v in attributes.items() if k not in gone}
        once_fields = {k: v for k, v in once_fields.items() if k not in gone}
        once_attributes = {k: v for k, v in once_attributes.items() if k not in gone}
    if lead_id is not None:
        row = cache.row(conn, lead_id) if cache is not None else _lead_row(conn, lead_id)
    else:
        row = _find_lead_row(conn, email=email, external_id=external_id, cache=cache)
    if row is None:
        if email is None and once_email and _email_lead(conn, once_email, cache) is None:
            email = once_email
        fields = {**once_fields, **fields}
        attributes = merge_attributes({}, {**once_attributes, **attributes}, "a new lead")
        values: dict[str, Any] = {
            "external_id": external_id,
            "email": email,
            "email_domain": email_domain(email),
            "attributes": attributes,
            "attribute_ts": dict.fromkeys([*attributes, *fields, *gone], at_ms),
            "created_ms": now_ms,
            "updated_ms": now_ms,
            **fields,
        }
        values["account_id"] = _account_for_domain(conn, values["email_domain"], cache)
        if cache is not None and email is not None and cache.moved:
            # an address this batch moved off a lead is still on that lead's stored row (the change is
            # held): write the held changes first, or the new lead's insert breaks the unique e-mail
            cache.flush(conn)
        lead_id = int(conn.execute(_INSERT_LEAD, values).scalar_one())
        created = True
        if cache is not None:
            cache.inserted(lead_id, values)
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
        # in the message's order, not a set's: the stamps' JSON is then the same text in every process
        newer = dict.fromkeys(k for k in [*fields, *attributes] if at_ms >= seen.get(k, at_ms))
        changes: dict[str, Any] = {k: v for k, v in fields.items() if k in newer and row[k] != v}
        set_now = {k: v for k, v in attributes.items() if k in newer}
        merged = merge_attributes(stored, set_now, f"lead {lead_id}")
        # a value left out is not observed: its stamp stays
        newer = {k: None for k in newer if k not in set_now or merged.get(k) == set_now[k]}
        removed = [k for k in gone if at_ms >= seen.get(k, at_ms)]  # newer than its value, or the first word
        if removed:
            merged = {k: v for k, v in merged.items() if k not in removed}
            changes.update({k: None for k in removed if k in LEAD_COLUMNS and row[k] is not None})
            newer.update(dict.fromkeys(removed))
        if merged != row["attributes"]:
            changes["attributes"] = merged
        stamps = {**seen, **dict.fromkeys(newer, at_ms)}
        if stamps != seen:
            changes["attribute_ts"] = stamps
        if email and row["email"] != email and _email_lead(conn, email, cache) is None:
            changes["email"], changes["email_domain"] = email, email_domain(email)
        if external_id and not row["external_id"]:
            changes["external_id"] = external_id
        if row["account_id"] is None and (domain := changes.get("email_domain", row["email_domain"])):
            account_id = _account_for_domain(conn, domain, cache)
            if account_id is not None:
                changes["account_id"] = account_id
        if changes and cache is not None:
            cache.update(lead_id, changes, now_ms)
        elif changes:
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


# PostgreSQL: ``create_bare_leads``' leads in one statement of one text (the rows as two arrays) that
# returns their ids. SQLAlchemy's many-values insert renders a new text for every number of rows (parsed
# and planned afresh each time) and the ids took a second statement: in batches of 60 new people, 5 and
# 4.7 ms of a processor's batch, and 12 ms for the identities' insert (bench/README.md, sixteenth session)
_INSERT_BARE_LEADS_PG = text(
    "INSERT INTO leads (external_id, attributes, attribute_ts, created_ms, updated_ms)"
    " SELECT u, '{}', '{}', t, t FROM unnest(CAST(:users AS TEXT[]), CAST(:times AS BIGINT[])) AS n(u, t)"
    " RETURNING external_id, id"
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
    made: dict[str, int] = {}
    if missing and conn.dialect.name == "postgresql":
        params = {"users": missing, "times": [first_seen[u] for u in missing]}
        made = {str(u): int(lead_id) for u, lead_id in conn.execute(_INSERT_BARE_LEADS_PG, params)}
    elif missing:
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
        # inserted, then their ids read by external id (unique): an insert returning its rows in
        # parameter order is one statement per row on SQLite (SQLAlchemy cannot batch it there)
        conn.execute(_INSERT_BARE_LEADS, rows)
        made = _lead_ids(conn, _LEADS_BY_EXTERNAL_IDS, missing)
    found.update(made)
    # the store's bulk insert (PostgreSQL: arrays, one statement text whatever the number of rows)
    keys = [(user_key(u), lead_id, first_seen[u]) for u, lead_id in found.items()]
    insert_tuples(conn, identities, ("key", "lead_id", "created_ms"), keys, ignore=("key",))
    return found, set(made.values())


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


_ACCOUNTS_OF = select(leads.c.id, leads.c.account_id).where(in_list(leads.c.id, "ids"))


def lead_accounts(conn: Connection, lead_ids: Iterable[int]) -> dict[int, int | None]:
    """The account of each of ``lead_ids`` (None: it has none; a lead not stored is left out)."""
    ids = sorted(set(lead_ids))
    if not ids:
        return {}
    return {int(lead): account for lead, account in conn.execute(_ACCOUNTS_OF, {"ids": ids}).all()}


_MEMBERS = (
    select(leads.c.account_id, leads.c.id)
    .where(in_list(leads.c.account_id, "ids"))
    .order_by(leads.c.account_id, leads.c.id)
)


def account_members(conn: Connection, account_ids: Iterable[int]) -> dict[int, list[int]]:
    """The leads of each account (in id order; an account without leads is left out): each account's
    once, where ``account_colleagues`` gives a pair per lead and colleague."""
    ids = sorted(set(account_ids))
    out: dict[int, list[int]] = {}
    if ids:
        for account, lead in conn.execute(_MEMBERS, {"ids": ids}).all():
            out.setdefault(int(account), []).append(int(lead))
    return out


def colleagues_left(conn: Connection, lead_id: int, account_after: int | None) -> list[int]:
    """The other leads of ``lead_id``'s account (as the database holds it) when the lead moves to
    ``account_after``: the move takes its events, of any age, out of their account (a ``group`` call
    naming another account, or an alias merging it into a lead that stays in another one). None when it
    has no account or stays in it (``account_after`` None: it keeps its own, as a merged-away lead's
    account passes to a kept lead that has none)."""
    account = conn.execute(select(leads.c.account_id).where(leads.c.id == lead_id)).scalar()
    if account is None or account_after in (None, account):
        return []
    others = (
        select(leads.c.id).where(leads.c.account_id == account, leads.c.id != lead_id).order_by(leads.c.id)
    )
    return [int(colleague) for colleague in conn.execute(others).scalars()]


def _lead_ids(conn: Connection, statement: Any, values: list[str]) -> dict[str, int]:
    """value → lead id from a (value, lead id) statement over a list bound as one parameter (no limit
    on its length, see ``id_lists``)."""
    if not values:
        return {}
    return {value: int(lead_id) for value, lead_id in conn.execute(statement, {"values": values}).all()}


def _account_for_domain(conn: Connection, domain: str | None, cache: PeopleCache | None = None) -> int | None:
    if not domain:
        return None
    if cache is not None:
        return cache.account_for_domain(conn, domain)
    return conn.execute(_ACCOUNT_BY_DOMAIN, {"value": domain}).scalar()


def _email_lead(conn: Connection, email: str, cache: PeopleCache | None) -> int | None:
    """``find_lead(email=...)``, through the batch's cache when there is one."""
    return (
        find_lead(conn, email=email) if cache is None else cache.lead_by_email(conn, normalise_email(email))
    )


def upsert_account(
    conn: Connection,
    *,
    now_ms: int,
    domain: str | None,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
    cache: PeopleCache | None = None,
    group_key: str | None = None,
    unnamed: str | None = None,
) -> tuple[int, bool]:
    """Find the account by its group key (``group_key``: the id a tracking client gives it), else by
    domain, else (no key, no domain) by exact name, and merge into it, or create it; link its leads.
    An account found by domain without a group key takes this one. ``cache``: as for ``upsert_lead``.
    ``name`` None leaves a found account's name as it is; ``unnamed`` names an account that has none (a
    group message's group id)."""
    domain = account_domain(domain)
    attributes = {k: v for k, v in (attributes or {}).items() if v not in (None, "")}
    account_id = account_for_group(conn, group_key, cache) if group_key else None
    keyed = account_id is not None
    if account_id is None:
        account_id = _account_for_domain(conn, domain, cache)
    if account_id is None and name and not domain and not group_key:
        account_id = conn.execute(_ACCOUNT_BY_NAME, {"value": name}).scalar()
    if account_id is None:
        attributes = merge_attributes({}, attributes, "a new account")
        values = {"domain": domain, "name": name or unnamed, "attributes": attributes, "group_key": group_key}
        account_id = int(
            conn.execute(_INSERT_ACCOUNT, {**values, "created_ms": now_ms, "updated_ms": now_ms}).scalar_one()
        )
        created = True
        if cache is not None:
            cache.account_inserted(account_id, values)
    else:
        row = (
            conn.execute(_ACCOUNT_ROW, {"value": account_id}).mappings().one()
            if cache is None
            else cache.account_row(conn, account_id)
        )
        merged = merge_attributes(row["attributes"] or {}, attributes, f"account {account_id}")
        changes: dict[str, Any] = {}
        if merged != row["attributes"]:
            changes["attributes"] = merged
        if name and row["name"] != name:
            changes["name"] = name
        elif not name and unnamed and not row["name"]:
            changes["name"] = unnamed
        if group_key and not keyed and row.get("group_key") is None:
            changes["group_key"] = group_key
        if changes:
            conn.execute(_UPDATE_ACCOUNT, {**changes, "updated_ms": now_ms, "row_id": account_id})
            if cache is not None:
                cache.account_updated(account_id, changes)
        created = False
    if domain:
        if cache is None or domain not in cache.covered:
            if cache is not None:  # the statement reads leads: the held changes go first
                cache.flush(conn)
            conn.execute(_ACCOUNT_FOR_DOMAIN_LEADS, {"domain": domain, "account": account_id, "now": now_ms})
        if cache is not None:
            cache.domain_linked(domain, account_id, now_ms)
    return account_id, created


def account_for_group(conn: Connection, group_key: str, cache: PeopleCache | None = None) -> int | None:
    """The account whose group key is ``group_key`` (one search of ``ix_accounts_group_key``), or None."""
    if cache is not None:
        return cache.account_for_group(conn, group_key)
    return conn.execute(_ACCOUNT_BY_GROUP_KEY, {"value": group_key}).scalar()


def account_domain(domain: str | None) -> str | None:
    """A domain as an account stores and is found by: trimmed, lower case, without ``www.``."""
    return domain.strip().lower().removeprefix("www.") if domain else None


def set_lead_account(
    conn: Connection, lead_id: int, account_id: int, now_ms: int, cache: PeopleCache | None = None
) -> None:
    if cache is not None:
        cache.row(conn, lead_id)
        cache.update(lead_id, {"account_id": account_id}, now_ms)
    else:
        conn.execute(_UPDATE_LEAD, {"account_id": account_id, "updated_ms": now_ms, "row_id": lead_id})


# what ``upsert_lead`` reads of a lead's row and what its writes change (the cache keeps these, current)
_ROW_COLUMNS = ("id", "external_id", "email", "email_domain", *LEAD_COLUMNS[1:], "account_id", "attributes",
                "attribute_ts", "updated_ms")  # fmt: skip


@lru_cache(maxsize=64)
def _write_columns(columns: tuple[str, ...]) -> Any:
    """``UPDATE leads SET <columns> WHERE id`` for the held changes of kept leads (one statement per set
    of columns changed: leads are written in the columns the batch changed, no others)."""
    return (
        update(leads)
        .where(leads.c.id == bindparam("row_id"))
        .values({c: bindparam(f"v_{c}") for c in columns})
    )


_CLEAR_EMAIL = update(leads).where(leads.c.id == bindparam("row_id")).values(email=None)
_ROWS_BY_IDS = select(*(leads.c[c] for c in _ROW_COLUMNS)).where(in_list(leads.c.id, "values"))
_ROWS_BY_EXTERNAL_IDS = select(*(leads.c[c] for c in _ROW_COLUMNS)).where(
    in_list(leads.c.external_id, "values", Text)
)
_ROWS_BY_EMAILS = select(*(leads.c[c] for c in _ROW_COLUMNS)).where(in_list(leads.c.email, "values", Text))
_UNLINKED_BY_DOMAINS = select(*(leads.c[c] for c in _ROW_COLUMNS)).where(
    in_list(leads.c.email_domain, "values", Text), leads.c.account_id.is_(None)
)
_ACCOUNT_COLUMNS = (
    accounts.c.id,
    accounts.c.domain,
    accounts.c.name,
    accounts.c.attributes,
    accounts.c.group_key,
)
_ACCOUNTS_BY_DOMAINS = select(*_ACCOUNT_COLUMNS).where(in_list(accounts.c.domain, "values", Text))
_ACCOUNTS_BY_GROUP_KEYS = select(*_ACCOUNT_COLUMNS).where(in_list(accounts.c.group_key, "values", Text))


class PeopleCache:
    """The lead and account rows one batch of messages names, read in four statements up front and kept
    current by the batch's own writes (``upsert_lead``, ``upsert_account`` and ``set_lead_account`` given
    the cache): a search it can answer costs no statement, and what it was not asked for is searched in
    the database as without it (then kept too). Exact only while every write to leads and accounts in the
    transaction goes through those functions with the cache, as applying a batch does.

    Changes to kept leads are held here and written by ``flush``, one statement for the batch instead of
    one or two per identify or group message: nothing reads a kept lead from the database meanwhile
    (the searches are answered here). An account links the leads of its e-mail domain in the cache
    when the cache holds every lead it could link (the domains of the batch's group messages, read up
    front), else by its statement, after the held changes are written, and in the cache too. A lead is
    written in the columns the batch changed only.

    ``key_lead`` answers which lead a ``u:`` key is linked to (the batch's key lookup, which knows the
    links it makes). ``domains``: of the accounts to find; ``linking``: of the accounts the batch's group
    messages upsert."""

    def __init__(
        self,
        conn: Connection,
        key_lead: Callable[[str], int | None],
        *,
        lead_ids: Iterable[int],
        external_ids: Iterable[str],
        emails: Iterable[str],
        domains: Iterable[str],
        linking: Iterable[str] = (),
        groups: Iterable[str] = (),
    ) -> None:
        self.key_lead = key_lead
        self.rows: dict[int, dict[str, Any]] = {}
        # value -> lead or account id; None: known to name none
        self.by_external: dict[str, int | None] = dict.fromkeys(external_ids)
        self.by_email: dict[str, int | None] = dict.fromkeys(emails)
        self.covered = set(linking)
        self.by_domain: dict[str, int | None] = dict.fromkeys([*domains, *self.covered])
        self.accounts: dict[int, dict[str, Any]] = {}
        self.by_group: dict[str, int | None] = dict.fromkeys(groups)
        # kept leads whose row is changed here, not yet in the database: the columns changed
        self.dirty: dict[int, set[str]] = {}
        self.moved: set[int] = set()  # of those, the leads whose e-mail changed from another one
        # e-mail domain -> kept leads that had no account when kept (checked again when used)
        self.unlinked: dict[str, set[int]] = {}
        ids = sorted(set(lead_ids))
        # the leads an account of these domains would link (``_ACCOUNT_FOR_DOMAIN_LEADS``): kept, so the
        # cache links them itself, without the statement (every lead that could match one later in the
        # batch is kept by then: its e-mail or account can only change through the cache)
        for statement, values in (
            (_ROWS_BY_IDS, ids),
            (_ROWS_BY_EXTERNAL_IDS, list(self.by_external)),
            (_ROWS_BY_EMAILS, list(self.by_email)),
            (_UNLINKED_BY_DOMAINS, list(self.covered)),
        ):
            if values:
                for row in conn.execute(statement, {"values": values}).mappings():
                    self._keep(dict(row))
        for statement, found in (
            (_ACCOUNTS_BY_DOMAINS, self.by_domain),
            (_ACCOUNTS_BY_GROUP_KEYS, self.by_group),
        ):
            if found:
                for account in conn.execute(statement, {"values": list(found)}).mappings():
                    self._keep_account(dict(account))

    def _keep_account(self, account: dict[str, Any]) -> None:
        account_id = int(account["id"])
        if account["domain"] is not None:
            self.by_domain[account["domain"]] = account_id
        if account["group_key"] is not None:
            self.by_group[account["group_key"]] = account_id
        self.accounts[account_id] = {k: account[k] for k in ("name", "attributes", "group_key")}

    def _keep(self, row: dict[str, Any]) -> dict[str, Any]:
        lead_id = row["id"] = int(row["id"])
        self.rows[lead_id] = row
        if row["external_id"] is not None:
            self.by_external[row["external_id"]] = lead_id
        if row["email"] is not None:
            self.by_email[row["email"]] = lead_id
        if row["account_id"] is None and row["email_domain"] is not None:
            self.unlinked.setdefault(row["email_domain"], set()).add(lead_id)
        return row

    def row(self, conn: Connection, lead_id: int) -> dict[str, Any]:
        found = self.rows.get(lead_id)
        if found is None:
            found = self._keep(dict(conn.execute(_ROWS_BY_IDS, {"values": [lead_id]}).mappings().one()))
        return found

    def find_row(self, conn: Connection, *, email: str | None, external_id: str | None) -> Any:
        """``_find_lead_row``: by external id, by its ``u:`` key, by e-mail."""
        if external_id is not None:
            lead_id = self.lead_by_external(conn, external_id)
            if lead_id is None:
                lead_id = self.key_lead(user_key(external_id))
            if lead_id is not None:
                return self.row(conn, lead_id)
        if email:
            lead_id = self.lead_by_email(conn, email)
            if lead_id is not None:
                return self.row(conn, lead_id)
        return None

    def forget(self, conn: Connection, gone: int, keep: int) -> None:
        """Lead ``gone`` was merged into ``keep`` and deleted (``store.lead_merge``; the held changes were
        written first): searches that found either are searched again, and ``keep``'s row is read again."""
        self.rows.pop(gone, None)
        self.rows.pop(keep, None)
        for found in (self.by_external, self.by_email):
            for value in [v for v, lead_id in found.items() if lead_id in (gone, keep)]:
                del found[value]
        for domain_leads in self.unlinked.values():
            domain_leads.difference_update((gone, keep))
        self.row(conn, keep)

    def lead_by_external(self, conn: Connection, external_id: str) -> int | None:
        if external_id not in self.by_external:
            self.by_external[external_id] = conn.execute(
                _LEAD_BY_EXTERNAL_ID, {"value": external_id}
            ).scalar()
        return self.by_external[external_id]

    def lead_by_email(self, conn: Connection, email: str) -> int | None:
        if email not in self.by_email:
            self.by_email[email] = conn.execute(_LEAD_BY_EMAIL, {"value": email}).scalar()
        return self.by_email[email]

    def inserted(self, lead_id: int, values: dict[str, Any]) -> None:
        self._keep({"id": lead_id, **{c: values.get(c) for c in _ROW_COLUMNS[1:]}})

    def update(self, lead_id: int, changes: dict[str, Any], now_ms: int) -> None:
        """Change a kept lead (``_UPDATE_LEAD``'s changes, at ``now_ms``), written by ``flush``."""
        row = self.rows[lead_id]
        if "email" in changes and row["email"] is not None and row["email"] != changes["email"]:
            self.moved.add(lead_id)
            self.by_email[row["email"]] = None  # unique: no other lead holds it
        row.update(changes)
        row["updated_ms"] = now_ms
        self.dirty.setdefault(lead_id, set()).update(changes, ("updated_ms",))
        self._keep(row)

    def flush(self, conn: Connection) -> None:
        """Write the changed leads' rows. E-mails moved between leads are cleared first, so no lead holds
        another's e-mail for a moment (the column is unique)."""
        if self.moved:
            conn.execute(_CLEAR_EMAIL, [{"row_id": lid} for lid in sorted(self.moved)])
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for lead_id, changed in sorted(self.dirty.items()):
            row, columns = self.rows[lead_id], tuple(sorted(changed))
            by_columns.setdefault(columns, []).append(
                {"row_id": lead_id, **{f"v_{c}": row[c] for c in columns}}
            )
        for columns, params in by_columns.items():
            conn.execute(_write_columns(columns), params)
        self.dirty, self.moved = {}, set()

    def account_for_domain(self, conn: Connection, domain: str) -> int | None:
        if domain not in self.by_domain:
            self.by_domain[domain] = conn.execute(_ACCOUNT_BY_DOMAIN, {"value": domain}).scalar()
        return self.by_domain[domain]

    def account_for_group(self, conn: Connection, group_key: str) -> int | None:
        if group_key not in self.by_group:
            self.by_group[group_key] = conn.execute(_ACCOUNT_BY_GROUP_KEY, {"value": group_key}).scalar()
        return self.by_group[group_key]

    def account_row(self, conn: Connection, account_id: int) -> dict[str, Any]:
        if account_id not in self.accounts:
            row = conn.execute(_ACCOUNT_ROW, {"value": account_id}).mappings().one()
            self.accounts[account_id] = {k: row[k] for k in ("name", "attributes", "group_key")}
        return self.accounts[account_id]

    def account_inserted(self, account_id: int, values: dict[str, Any]) -> None:
        self.accounts[account_id] = {k: values.get(k) for k in ("name", "attributes", "group_key")}
        if values["domain"]:
            self.by_domain[values["domain"]] = account_id
        if values.get("group_key"):
            self.by_group[values["group_key"]] = account_id

    def account_updated(self, account_id: int, changes: dict[str, Any]) -> None:
        if account_id in self.accounts:
            self.accounts[account_id].update(
                (k, v) for k, v in changes.items() if k in ("name", "attributes", "group_key")
            )
        if changes.get("group_key"):
            self.by_group[changes["group_key"]] = account_id

    def domain_linked(self, domain: str, account_id: int, now_ms: int) -> None:
        """``_ACCOUNT_FOR_DOMAIN_LEADS`` ran: the kept leads of that e-mail domain without an account
        have this one now."""
        for lead_id in self.unlinked.pop(domain, ()):
            row = self.rows[lead_id]
            if row["email_domain"] == domain and row["account_id"] is None:
                self.update(lead_id, {"account_id": account_id}, now_ms)
