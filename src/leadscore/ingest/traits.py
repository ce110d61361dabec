"""Traits → what they set: a lead's e-mail, fields and attributes (any message), an account (group).

Applying a message (``ingest.apply``) and checking that a message fits the store (``ingest.limits``) both
read traits through these functions, so the value checked at the edge is the value stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leadscore.ingest.attributes import CONSENT, canonical, coerce, consent_traits, normalise_domain
from leadscore.ingest.person_names import FIRST, FULL, LAST, NameRefused, person_name
from leadscore.model.text_case import normalise_values
from leadscore.store.people import normalise_email

LEAD_FIELDS = ("first_name", "last_name", "company")
NAME_TRAITS = (FIRST, LAST, FULL)  # the traits a lead's name is read from (``person_name``)


def split_traits(
    traits: dict[str, Any], *, names: bool = True
) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """Traits → (email, lead fields, attributes) under canonical names; the person's first and last name
    read from the name traits (``person_name``) unless not ``names``: a group message's traits, whose
    ``name`` is its account's (``group_account``), never its sender's."""
    email: str | None = None
    fields: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    traits = normalise_values(traits)  # texts in NFC, as rules' literals are (model.text_case)
    attributes.update(consent_traits(traits))
    for key, value in traits.items():
        name = canonical(key)
        if name in CONSENT or name == "consent" or name in NAME_TRAITS:
            continue
        if name == "company" and isinstance(value, dict):
            if value.get("name"):
                fields["company"] = str(value["name"])
            continue
        value = coerce(value) if not isinstance(value, dict | list) else value
        if value is None:
            continue
        if name == "email":
            email = str(value)
        elif name in LEAD_FIELDS:
            fields[name] = str(value)
        elif name != "user_id":
            attributes[name] = value
    try:
        first, last = (
            person_name(*(text for _, text in given_names(traits).values())) if names else (None, None)
        )
    except NameRefused:  # refused at the edge (``limits.check_traits``): a message acknowledged before
        first = last = None  # that refusal, applied now, sets no name
    fields.update({k: v for k, v in ((FIRST, first), (LAST, last)) if v is not None})
    return email, fields, attributes


def given_names(traits: dict[str, Any]) -> dict[str, tuple[str | None, str | None]]:
    """The name traits (first, last and full name, in ``NAME_TRAITS``' order) → (the key read, its text),
    (None, None) for one not given; of two keys of one name (``firstName``, ``first_name``) the last
    not blank. A value that is no text is read as its text (``limits.check_traits`` refuses one that is
    not a number)."""
    given: dict[str, tuple[str | None, str | None]] = dict.fromkeys(NAME_TRAITS, (None, None))
    for key, value in traits.items():
        name = canonical(key)
        if name in given and value is not None:
            text = value if isinstance(value, str) else str(value)
            if text.strip():
                given[name] = (key, text)
    return given


def addresses(traits: Any, context: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The e-mail addresses a message gives, normalised: its traits' (an identify's, or an event's
    ``context.traits``) and its set-once traits' (``context.traits_once``), as finding or making its lead
    reads them (``split_traits``)."""
    found: list[str] = []
    for given in (traits, context.get("traits_once") if context else None):
        if isinstance(given, dict) and given and (email := split_traits(given)[0]):
            found.append(normalise_email(email))
    return tuple(dict.fromkeys(found))


def removed_names(context: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The attribute and field names an identify removes (``context.traits_unset``, what PostHog's
    ``$unset`` maps to), canonical as ``split_traits`` names what it sets; () for none."""
    names = context.get("traits_unset") if context else None
    return tuple(dict.fromkeys(canonical(n) for n in names)) if isinstance(names, list) and names else ()


def group_account(
    traits: dict[str, Any], group_id: str | None
) -> tuple[str | None, str | None, dict[str, Any]]:
    """A group message's traits → its account's (domain, name, attributes); the name None when the
    traits give none (the account keeps its own: a group call updates the traits it gives; a new account
    is named by its group id, ``store.people.upsert_account``'s ``unnamed``)."""
    named = {canonical(k): v for k, v in normalise_values(traits).items()}
    website = named.get("domain") or named.get("website")
    named.pop("domain", None)
    domain = normalise_domain(str(website)) if website else None
    name = str(named.pop("company", "") or named.pop("name", "") or "") or None
    attributes = {k: coerce(v) for k, v in named.items() if not isinstance(v, dict | list)}
    if group_id:
        attributes.setdefault("group_id", group_id)
    return domain, name, attributes


def restamped_since(
    before: Mapping[str, Any] | None, after: Mapping[str, Any], attributes: Mapping[str, Any]
) -> int | None:
    """The earliest time whose attributes as known (``scoring.as_known.Known.attributes``) a change of a lead's observation
    stamps (``attribute_ts``, ``before`` → ``after``; ``before`` None: a new lead) may alter, or None when
    no stamp of one of its ``attributes`` moved (the other stamps are of fields, read as they are now).
    An attribute observed again later stops counting from its old stamp: until the new one, the latest
    identify before each time shows instead (an anonymous id's identify, linked since, may say
    otherwise), so the lead's history may change from the old stamp on. One observed for the first time
    changes it from the new stamp. A stamp of a name that is no field and has no value is a removal
    (``$unset``): it moves as a value's does. Every path that applies messages (real time, backfill)
    reopens the lead's history from here."""
    before = before or {}
    moved = [
        int(stamp) if before.get(key) is None else min(int(before[key]), int(stamp))
        for key, stamp in after.items()
        if (key in attributes or key not in LEAD_FIELDS) and stamp is not None and before.get(key) != stamp
    ]
    return min(moved, default=None)
