"""Attribute values as they come in: numbers, consent, domains. Their names, one canonical snake_case
spelling for CSV headers, Segment traits and API fields (``canonical``), are ``model.names``': a model's
rule must name an attribute as it is kept, and its validation says so (``model.yaml_io.stored_spellings``).
"""

from __future__ import annotations

import math
import re

# the names themselves (``canonical``, ``snake``, ``ALIASES``) are the model's: a rule names what is kept
from leadscore.model.names import ALIASES as ALIASES
from leadscore.model.names import canonical as canonical
from leadscore.model.names import snake as snake
from leadscore.model.text_case import normalise_text
from leadscore.store.schema import INT64_MAX, INT64_MIN

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
    host = normalise_text(text.strip()).lower()
    host = host.split("://", 1)[1] if "://" in host else host.removeprefix("//")
    host = re.split(r"[/?#]", host, maxsplit=1)[0].rsplit("@", 1)[-1].split(":", 1)[0]
    return host.removeprefix("www.").rstrip(".")
