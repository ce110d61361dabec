"""Attribute names: one canonical snake_case spelling for CSV headers, Segment traits and API fields.

HubSpot- and Salesforce-style export headers ("Job Title", "Company Name", "Number of Employees",
"Annual Revenue", "Email Address", ...) map to the names the model language uses. Letters and digits
beyond ASCII are kept, NFKC-normalised and folded as rule values are (``"Größe"`` → ``"größe"``,
``"名前"`` → ``"名前"``); an ASCII name reads as it always has (docs/ingest.md, "Attribute names").
"""

from __future__ import annotations

import math
import re
import unicodedata
from functools import lru_cache

from leadscore.model.names import is_name_char
from leadscore.model.text_case import fold_case
from leadscore.store.schema import INT64_MAX, INT64_MIN

ALIASES = {
    "email": "email",
    "email_address": "email",
    "e_mail": "email",
    "first_name": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "surname": "last_name",
    "family_name": "last_name",
    "full_name": "name",
    "company": "company",
    "company_name": "company",
    "account_name": "company",
    "organization": "company",
    "organisation": "company",
    "job_title": "job_title",
    "title": "job_title",
    "jobtitle": "job_title",
    "role": "job_title",
    "number_of_employees": "employees",
    "employees": "employees",
    "employee_count": "employees",
    "no_of_employees": "employees",
    "company_size": "employees",
    "numberofemployees": "employees",
    "annual_revenue": "annual_revenue",
    "annualrevenue": "annual_revenue",
    "revenue": "annual_revenue",
    "industry": "industry",
    "country": "country",
    "country_region": "country",
    "mailing_country": "country",
    "billing_country": "country",
    "lead_source": "lead_source",
    "leadsource": "lead_source",
    "original_source": "lead_source",
    "website": "website",
    "website_url": "website",
    "company_website": "website",
    "company_domain_name": "domain",
    "domain": "domain",
    "company_domain": "domain",
    "consent_tracking": "consent_tracking",
    "tracking_consent": "consent_tracking",
    "consent_email": "consent_email",
    "email_consent": "consent_email",
    "marketing_consent": "consent_email",
    "marketing_email_consent": "consent_email",
    "consent_marketing_email": "consent_email",
    "user_id": "user_id",
    "userid": "user_id",
    "external_id": "user_id",
    "record_id": "user_id",
    "contact_id": "user_id",
    "lead_id": "user_id",
    "id": "user_id",
}

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_NON_WORD = re.compile(r"[^a-z0-9]+")


def snake(name: str) -> str:
    """``"Job Title"``, ``"jobTitle"``, ``"job-title"`` → ``"job_title"``; ``"Größe"`` → ``"größe"``."""
    if name.isascii():
        return _NON_WORD.sub("_", _CAMEL.sub("_", name.strip()).lower()).strip("_")
    # NFKC first: a full-width "Ｊｏｂ Ｔｉｔｌｅ" is "Job Title", "ﬁ" is "fi", a decomposed "ö" is one letter
    text = unicodedata.normalize("NFKC", name.strip())
    if text.isascii():
        return snake(text)
    out: list[str] = []
    gap = False  # a run of characters that are no letter or digit, written as one "_"
    previous = ""
    for ch in text:
        if unicodedata.category(ch) == "Cf":
            continue  # invisible (a zero-width space, a soft hyphen, a byte-order mark): dropped, as before
        # a mark on no letter or digit (a combining accent leading the name or a word) is no name character:
        # a name of marks only has no letter or digit, and is refused as "#" is
        if not is_name_char(ch) or (not previous and unicodedata.category(ch)[0] == "M"):
            gap, previous = True, ""
            continue
        # the camel-case break of the ASCII rule, for every script that has case ("größeKlasse")
        if (gap or ((previous.islower() or previous.isdecimal()) and (ch.isupper() or ch.istitle()))) and out:
            out.append("_")
        gap, previous = False, ch
        out.append(fold_case(ch))
    return unicodedata.normalize("NFKC", "".join(out))


def canonical(name: str) -> str:
    """The canonical attribute name for a header or trait."""
    if len(name) <= _CACHED_NAME:
        return _canonical(name)
    key = snake(name)
    return ALIASES.get(key, key)


# trait keys repeat across messages (``email``, ``firstName``, ...): each is read by two regular
# expressions once, not in every message (an identify's traits are split 3 times on its way in). Only
# short names are kept, so a hostile message's long keys cannot fill memory.
_CACHED_NAME = 64


@lru_cache(maxsize=4096)
def _canonical(name: str) -> str:
    key = snake(name)
    return ALIASES.get(key, key)


# "02134" (a zip code, an id) stays text; ASCII digits only, as in JSON: Python's \d (and int()) also read
# other scripts' digits, and "1٠" (a 1 and an Arabic-Indic zero) must not become the number 10
_NUMBER = re.compile(r"^-?(0|[1-9][0-9]*)(\.[0-9]+)?$", re.ASCII)


CONSENT = ("consent_tracking", "consent_email")
_YES = {"true", "yes", "y", "1", "opt-in", "opted in", "granted"}
_NO = {"false", "no", "n", "0", "opt-out", "opted out", "withdrawn", "denied"}


def consent_value(value: object) -> bool | None:
    """A consent flag from a trait or CSV cell: true/false, yes/no, 1/0, opt-in/opt-out; else None."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _YES else False if text in _NO else None


def consent_traits(traits: dict[str, object]) -> dict[str, bool]:
    """Consent from Segment-style traits: ``consent: {tracking, marketing_email}``, flat consent keys, or
    ``unsubscribed: true`` (withdraws e-mail consent)."""
    out: dict[str, bool] = {}
    nested = traits.get("consent")
    if isinstance(nested, dict):
        for key, value in nested.items():
            name = canonical(f"consent_{key}")
            if name in CONSENT and (flag := consent_value(value)) is not None:
                out[name] = flag
    for key, value in traits.items():
        name = canonical(key)
        if name in CONSENT and (flag := consent_value(value)) is not None:
            out[name] = flag
        elif name == "unsubscribed" and consent_value(value) is True:
            out["consent_email"] = False
    return out


def coerce(value: object) -> object:
    """Texts that are plain numbers become numbers (so numeric rules apply); blanks become None. A number
    no store can hold as one (an integer beyond 64 bits, a decimal beyond a double's range) stays text."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if _NUMBER.match(text):
            if "." in text:
                number = float(text)
                return number if math.isfinite(number) else text
            whole = int(text) if len(text) <= 20 else None  # int() of a long digit run is slow
            return whole if whole is not None and INT64_MIN <= whole <= INT64_MAX else text
        return text
    return value


def normalise_domain(text: str) -> str:
    """``https://www.Acme.io/about`` → ``acme.io`` (scheme, ``www.``, port, path and query dropped)."""
    host = text.strip().lower()
    host = host.split("://", 1)[1] if "://" in host else host.removeprefix("//")
    host = re.split(r"[/?#]", host, maxsplit=1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    return host.removeprefix("www.").rstrip(".")
