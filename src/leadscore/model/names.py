"""Names: the canonical spelling an attribute is kept under (``canonical``: HubSpot- and Salesforce-style
export headers such as "Job Title", "Number of Employees", "Email Address" map to the names the model
language uses, docs/ingest.md "Attribute names"), and the characters of a name: what an attribute name
keeps and what a model's attribute or property name may hold (``is_field_name``).

ASCII letters and digits, and every letter, mark and digit beyond ASCII (Unicode categories L, M and N:
``ß``, ``名``, the vowel signs of Devanagari, Arabic-Indic digits), NFKC-normalised and folded as rule
values are (``"Größe"`` → ``"größe"``). Python's ``\\w`` leaves out the marks (``नाम`` is a letter, a mark
and a letter) and reads ``_``, so the test is by category.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from leadscore.model.text_case import fold_case

_ASCII_NAME = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def is_name_char(ch: str) -> bool:
    """A letter or digit (ASCII), or a letter, mark or digit beyond ASCII."""
    if ch.isascii():
        return ch in _ASCII_NAME
    return unicodedata.category(ch)[0] in "LMN"


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


FIELD_NAME_WORDS = "letters, digits, _ and -, dot-separated for nesting"
MAX_FIELD_PARTS = 6
MAX_FIELD_PART = 100


def is_field_name(text: object) -> bool:
    """A model's attribute or property name: 1 to 6 dot-separated parts (``account.größe``), each of 1 to
    100 letters, digits (``is_name_char``), ``_`` or ``-``: nothing a JSON path, a PostgreSQL array
    literal or a Spark schema would read as syntax (quotes, dots, commas, braces, backticks, spaces)."""
    if not isinstance(text, str):
        return False
    parts = text.split(".")
    return len(parts) <= MAX_FIELD_PARTS and all(
        0 < len(part) <= MAX_FIELD_PART and all(ch in "_-" or is_name_char(ch) for ch in part)
        for part in parts
    )
