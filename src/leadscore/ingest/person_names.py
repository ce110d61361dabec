"""A person's name as it comes in: the one rule that turns a first name, a last name and a full name into
the (first, last) a lead keeps, for every entry point (a CSV import's ``First Name``/``Last Name``/``Name``,
a Segment identify's ``traits.firstName``/``lastName``/``name``, PostHog's ``$set``, which becomes those
traits). docs/ingest.md "Names" states it for users:

* each text is folded: a run of whitespace (any Unicode space, a tab, a line break) is one space, and the
  text is stripped; a text of whitespace only is no name;
* a control character (other than whitespace) or a NUL refuses the field: such a name is no person's;
* a full name of the form "Last, First" (text on both sides of its first comma) is last name, then first
  name, unless what follows the comma is a suffix (Jr., Sr., II, III, IV, PhD, MD, Esq.): then, as any other
  full name, its first word is the first name and the rest (the suffix with it) the last name; one word
  (``Madonna``, ``山田太郎``) is a first name alone;
* a given first or last name wins over that part of a full name, each on its own;
* each part stored fits its column (255 characters), else the field it came from is refused, never cut.
"""

from __future__ import annotations

import unicodedata

from leadscore.store.schema import column_length, leads

FIRST, LAST, FULL = "first_name", "last_name", "name"
# the characters each name column holds (the lead's columns, store/schema.py)
NAME_LENGTH = {FIRST: column_length(leads.c.first_name), LAST: column_length(leads.c.last_name)}
# what may follow the comma of "Smith, Jr." (compared in lower case without its dots)
SUFFIXES = frozenset({"jr", "sr", "ii", "iii", "iv", "phd", "md", "esq"})
_PARTS = {FIRST: "first name", LAST: "last name"}


class NameRefused(Exception):
    """A name field no lead keeps: ``field`` (``first_name``, ``last_name`` or ``name``) and why, to
    follow the field's name in a message (``has a control character (U+001B)``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field = field
        self.reason = reason


# the characters a name may not hold: the controls that are not whitespace, NUL included (every Cc
# character is below U+00A0); the tracking schema states the same (``api.tracking_schema``)
REFUSED_CONTROLS = "".join(
    ch for ch in map(chr, range(0xA0)) if unicodedata.category(ch) == "Cc" and not ch.isspace()
)


def fold_name(text: str, field: str) -> str | None:
    """``text`` with each run of whitespace one space, stripped; None when nothing is left. Raises
    NameRefused (naming ``field``) for a control character that is not whitespace, NUL included."""
    if not text.isprintable():  # most names: nothing to look at
        for ch in text:
            if ch in REFUSED_CONTROLS:
                shown = (
                    "a NUL character (\\u0000)" if ch == "\x00" else f"a control character (U+{ord(ch):04X})"
                )
                raise NameRefused(field, f"has {shown}")
    return " ".join(text.split()) or None


def split_full_name(full: str) -> tuple[str | None, str | None]:
    """A folded full name → (first, last): "Last, First" when both sides of its first comma have text
    and what follows is no suffix; else its first word, and the rest (None when it is one word)."""
    last, comma, first = full.partition(",")
    last, first = last.strip(), first.strip()
    if comma and last and first and first.replace(".", "").lower() not in SUFFIXES:
        return first, last
    if comma and not (last and first):
        full = last or first  # "Madonna,": no "Last, First"
    given, _, rest = full.partition(" ")
    return given or None, rest or None


def person_name(
    first: str | None = None, last: str | None = None, full: str | None = None
) -> tuple[str | None, str | None]:
    """The (first, last) name a lead keeps from the given first, last and full name (None: not given),
    each part None when it has none. Raises NameRefused naming the field refused."""
    given = {FIRST: _folded(first, FIRST), LAST: _folded(last, LAST)}
    parts = (
        dict(zip((FIRST, LAST), split_full_name(folded), strict=True))
        if (folded := _folded(full, FULL))
        else {}
    )
    out: dict[str, str | None] = {}
    for part in (FIRST, LAST):
        value, field = (given[part], part) if given[part] is not None else (parts.get(part), FULL)
        if value is not None and len(value) > (most := NAME_LENGTH[part]):
            raise NameRefused(field, _too_long(field, part, len(value), most))
        out[part] = value
    return out[FIRST], out[LAST]


def _folded(text: str | None, field: str) -> str | None:
    return None if text is None else fold_name(text, field)


def _too_long(field: str, part: str, length: int, most: int) -> str:
    if field == FULL:
        return f"gives a {_PARTS[part]} of {length} characters; at most {most} are allowed"
    return f"is {length} characters long; at most {most} are allowed"
