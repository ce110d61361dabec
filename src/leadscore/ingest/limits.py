"""What the stores can hold, checked per message at the edge: a value that fits no store is refused with
its field path (``properties.a.b``) before the message is acknowledged, instead of failing the commit of
every message grouped with it, or the processor on every retry.

The limits come from the tables (``store/schema.py``): the length of each text column a message field
lands in, 64-bit integers (BIGINT times; JSON integers every store keeps), text without NUL (PostgreSQL
refuses it in text and JSONB) or lone surrogates (not encodable as UTF-8), finite numbers (JSONB has no
NaN), and a nesting depth well inside the JSON libraries' recursion limits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from leadscore.errors import MessageError
from leadscore.ingest.attributes import canonical
from leadscore.ingest.person_names import NameRefused, person_name
from leadscore.ingest.traits import given_names, group_account, split_traits
from leadscore.store.people import email_domain, normalise_email
from leadscore.store.schema import INT64_MAX, INT64_MIN, accounts, column_length, events, leads

MAX_DEPTH = 32  # levels of objects and arrays in a message, the message itself being the first
# the times a message may carry: from the Unix epoch to the last millisecond ISO-8601 text can spell
EARLIEST_MS = 0
LATEST_MS = int(datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC).timestamp() * 1000)
SHOWN_KEY = 40  # characters of an object key shown in a field path (error bodies stay small)
SHOWN_PATH = 200  # characters of a field path shown
# the most characters one row of a CSV file may hold (its quoted line breaks included): a longer row is
# refused as one problem naming it, the rows around it imported, and never held whole in memory, however
# long its line (``csv_import.csv_records``; a JSONL line is bounded by ``segment.MAX_MESSAGE_BYTES``).
# It is the csv module's field limit (its default, 131,072): a field is never longer than its row, so this
# is the one limit a row meets, with one message (a cell that long was refused by that limit before)
MAX_ROW_CHARS = 131_072


# the longest value of each top-level field: the length of the event-log column it is stored in
FIELD_LENGTH = {
    "messageId": column_length(events.c.message_id),
    "userId": column_length(events.c.user_id),
    "anonymousId": column_length(events.c.anonymous_id),
    "groupId": column_length(events.c.group_id),
    "previousId": column_length(events.c.previous_id),
    "event": column_length(events.c.name),
    "name": column_length(events.c.name),
}
LEAD_LENGTH = {name: column_length(leads.c[name]) for name in ("email", "first_name", "last_name", "company")}
EMAIL_DOMAIN_LENGTH = column_length(leads.c.email_domain)
ACCOUNT_DOMAIN_LENGTH = column_length(accounts.c.domain)
ACCOUNT_NAME_LENGTH = column_length(accounts.c.name)
# the page path is indexed with the event's type, time and person (``ix_events_type_ts_path``: the rule
# builder counts the page views under a path from the index alone), and PostgreSQL refuses an index entry
# over about 2,700 bytes: so a path is bounded in bytes of UTF-8, not in characters (1,000 bytes, the
# column's length, beside a person key of at most 300 characters, 1,200 bytes, leaves room to spare). A
# longer path (given, or read from the URL) is refused, as any other value that does not fit its column
PATH_BYTES = column_length(events.c.path)


class _Refused(Exception):
    """A value refused deep in a message; ``parts`` collects its path while the walk unwinds."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.parts: list[str | int] = []


def field_path(parts: list[str | int]) -> str:
    """``["properties", "a b", "list", 2]`` → ``properties["a b"].list[2]`` (long keys shortened)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        shown = part if len(part) <= SHOWN_KEY else part[:SHOWN_KEY] + "..."
        if shown.isidentifier() and shown.isascii():
            out += f".{shown}" if out else shown
        else:
            out += f"[{json.dumps(shown)}]"  # escaped: NUL and lone surrogates never reach the answer
    return out if len(out) <= SHOWN_PATH else out[:SHOWN_PATH] + "..."


def check_values(raw: dict[str, Any]) -> None:
    """Raise MessageError naming the first value in ``raw`` (a whole message) that no store can hold: a
    string with NUL or a lone surrogate (keys too), an integer beyond 64 bits, NaN or an infinity, or
    objects and arrays nested more than ``MAX_DEPTH`` levels deep."""
    if _surely_storable(raw):
        return
    try:
        _walk(raw.items(), 1)
    except _Refused as refused:
        path = field_path(refused.parts[::-1])
        raise MessageError(path, f"{path} {refused.reason}") from None


def _surely_storable(raw: dict[str, Any]) -> bool:
    """True for a message that holds none of the values ``check_values`` refuses, decided from its JSON
    text in a fraction of the walk's time (the walk then finds the value when this is False).

    orjson refuses lone surrogates, integers beyond 53 bits (``OPT_STRICT_INTEGER``; the walk decides
    on 64) and deep nesting; NUL shows as ``\\u0000``; the depth is at most the number of brackets; NaN
    and the infinities are written as ``null``, so a text with ``null`` in it is walked."""
    try:
        text = orjson.dumps(raw, option=orjson.OPT_STRICT_INTEGER)
    except TypeError:
        return False
    if b"\\" in text and b"\\u0000" in text:  # most texts have no escape at all: one memchr
        return False
    return b"null" not in text and text.count(b"{") + text.count(b"[") <= MAX_DEPTH


def _walk(items: Iterable[tuple[str | int, Any]], depth: int) -> None:
    """Check the (key or index, value) pairs of one object or array at nesting level ``depth``."""
    if depth > MAX_DEPTH:
        raise _Refused(f"nests objects and arrays more than {MAX_DEPTH} levels deep")
    for key, value in items:
        try:
            if key.__class__ is str and ("\x00" in key or not key.isascii()):
                _check_text(key, " in its name")
            kind = value.__class__
            if kind is str:
                if "\x00" in value or not value.isascii():
                    _check_text(value, "")
            elif kind is dict:
                _walk(value.items(), depth + 1)
            elif kind is list or kind is tuple:
                _walk(enumerate(value), depth + 1)
            elif kind is int:
                if not INT64_MIN <= value <= INT64_MAX:
                    raise _Refused("is an integer beyond the 64-bit range")
            elif kind is float and not math.isfinite(value):
                raise _Refused("is not a finite number")
        except _Refused as refused:
            refused.parts.append(key)
            raise


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise _Refused(f"has a NUL character (\\u0000){where}")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _Refused(f"has a lone surrogate (not UTF-8){where}") from None


def check_message_size(item: Any, limit: int, what: str = "message") -> None:
    """Raise MessageError when ``item``, one message of a batch (a Segment message, a PostHog event: its
    ``what``), written as JSON is over ``limit`` bytes (``max_message_bytes``): the one per-message size
    limit of every route, which refuses that message alone. One orjson cannot write (nested too deep, an
    integer beyond 64 bits) passes: ``normalise`` names its field."""
    try:
        size = len(orjson.dumps(item))
    except TypeError:
        return
    if size > limit:
        raise MessageError(None, f"{what} is larger than {limit} bytes")


def check_length(field: str, value: str, limit: int) -> None:
    if len(value) > limit:
        raise MessageError(field, f"{field} is {len(value)} characters long; at most {limit} are allowed")


def email_refusal(email: str) -> str | None:
    """Why the e-mail address ``email`` (as sent) cannot be stored, to follow its field's name; None when it
    can. It is stored normalised (``normalise_email``: in lower case, where "İ" is two characters), so that
    form must fit the column, and its domain the domain's: the refusal tells the length sent, and the
    lower case's when that is what is too long. The one check of an address's length, for messages'
    traits and CSV imports alike."""
    stored, most = normalise_email(email), LEAD_LENGTH["email"]
    if len(stored) > most:
        lower = f", {len(stored)} in lower case as it is stored" if len(stored) > len(email) else ""
        return f"is {len(email)} characters long{lower}; at most {most} are allowed"
    domain = email_domain(stored)
    if domain is not None and len(domain) > EMAIL_DOMAIN_LENGTH:
        return f"has a domain of {len(domain)} characters; at most {EMAIL_DOMAIN_LENGTH} are allowed"
    return None


def check_path(field: str, path: str) -> None:
    """A page path fits ``events.path``: at most ``PATH_BYTES`` bytes of UTF-8 (see ``PATH_BYTES``)."""
    if len(path) * 4 <= PATH_BYTES:  # most paths: no character is more than 4 bytes, nothing to encode
        return
    size = len(path.encode())  # check_values has refused lone surrogates
    if size > PATH_BYTES:
        raise MessageError(
            field, f"{field} is {size:,} bytes long in UTF-8; a page path may have at most {PATH_BYTES:,}"
        )


def cut_path(path: str | None) -> str | None:
    """``path`` cut to its longest prefix of at most ``PATH_BYTES`` bytes of UTF-8, at a character's
    boundary (as migration 0025c cuts a stored one): for an event acknowledged before ingestion bounded
    paths, still in the inbox or a dead letter when the processor moves it into the log."""
    if path is None or len(path) * 4 <= PATH_BYTES:  # no character is more than 4 bytes
        return path
    return path.encode()[:PATH_BYTES].decode(errors="ignore")


def check_time(field: str, ms: int) -> int:
    """``ms`` when it lies between 1970 and the year 9999, else MessageError."""
    if not EARLIEST_MS <= ms <= LATEST_MS:
        raise MessageError(field, f"{field} is not a time between 1970-01-01 and 9999-12-31 (UTC)")
    return ms


def check_traits(traits: dict[str, Any], where: str, *, names: bool = True) -> None:
    """The lead fields the traits set (e-mail, names, company) fit their columns; ``where`` is the
    traits' path (``traits`` or ``context.traits``); a trait of no letter or digit names no attribute.
    ``names``: whether the traits name their person (not a group message's: ``split_traits``)."""
    keys = _trait_keys(traits)
    # a trait of no letter or digit was stored under the empty name: refused, as such a CSV header is
    if "" in keys:
        field = _trait_path(where, keys[""])
        raise MessageError(field, f"{field} has no letter or digit to name an attribute by")
    _texts_only(traits, keys, ("email", "first_name", "last_name", "company", "name"), where, lead=True)
    email, fields, _ = split_traits(traits)
    if email is not None and (why := email_refusal(email)) is not None:
        field = _trait_path(where, keys.get("email", "email"))
        raise MessageError(field, f"{field} {why}")
    if "company" in fields:
        key = keys.get("company", "company")
        inner = ["name"] if isinstance(traits.get(key), dict) else []
        check_length(_trait_path(where, key, *inner), fields["company"], LEAD_LENGTH["company"])
    given = given_names(traits) if names else {}
    try:
        person_name(*(text for _, text in given.values()))
    except NameRefused as refused:
        field = _trait_path(where, given[refused.field][0] or refused.field)
        raise MessageError(field, f"{field} {refused.reason}") from None


def check_unset(names: Any, where: str) -> None:
    """The names an identify removes (``context.traits_unset``, PostHog's ``$unset``): a list of texts,
    each naming an attribute (a name of no letter or digit names none); ``where`` is its path."""
    if not isinstance(names, list):
        raise MessageError(where, f"{where} must be a list of names")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not canonical(name):
            field = f"{where}[{index}]"
            raise MessageError(field, f"{field} must be the name of a trait, not {json.dumps(name)[:60]}")


def check_group(traits: dict[str, Any], group_id: str | None, where: str) -> None:
    """The account a group message sets (domain, name) fits its columns."""
    keys = _trait_keys(traits)
    _texts_only(traits, keys, ("domain", "website", "company", "name"), where, lead=False)
    domain, name, _ = group_account(traits, group_id)
    if domain is not None:
        key = keys.get("domain") or keys.get("website", "website")
        check_length(_trait_path(where, key), domain, ACCOUNT_DOMAIN_LENGTH)
    if name is not None:
        key = keys.get("company") or keys.get("name", "company")
        check_length(_trait_path(where, key), name, ACCOUNT_NAME_LENGTH)


def _texts_only(
    traits: dict[str, Any], keys: dict[str, str], names: tuple[str, ...], where: str, *, lead: bool
) -> None:
    """The traits that become a lead's or account's text columns are texts or numbers: a list, an object
    or a boolean would be stored as its Python repr (an e-mail "['a@b.com']"). A lead's company may be an
    object (``split_traits``): its ``name`` is the text."""
    for name in names:
        key = keys.get(name)
        if key is None:
            continue
        value, path = traits[key], [key]
        if lead and name == "company" and isinstance(value, dict):
            value, path = value.get("name"), [key, "name"]
        if isinstance(value, bool | list | dict):
            field = _trait_path(where, *path)
            raise MessageError(field, f"{field} must be a text, not {type(value).__name__}")


def _trait_keys(traits: dict[str, Any]) -> dict[str, str]:
    """Canonical name → the trait key it was read from (the last one, as ``split_traits`` reads them)."""
    return {canonical(key): key for key in traits}


def _trait_path(where: str, *keys: str) -> str:
    return field_path([*where.split("."), *keys])
