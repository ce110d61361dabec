"""How a lead is named when shown: the one rule every surface uses (the dashboard's pages and links, the
CLI's ``explain`` and score tables, the lifecycle's context, webhooks and messages, the privacy report,
the demo). Plain text: whoever puts it in HTML escapes it there.

* ``full_name``: the lead's first and last name, each with its runs of whitespace folded to one space and
  stripped (the rule names arriving follow, ``ingest/person_names.py``; rows written before it, or by
  hand, may hold more), the parts left joined by one space; "" when neither has text.
* ``display_name``: the full name, else the e-mail address, else ``Lead <id>``: never empty, so every
  link to a lead has a text.
"""

from __future__ import annotations

# the lead's columns a display name is made of, in ``display_name``'s order
LEAD_NAMING = ("first_name", "last_name", "email")


def full_name(first: str | None, last: str | None) -> str:
    """ "First Last" from the parts given (None or whitespace only: no part); "" when none has text."""
    return " ".join(word for part in (first, last) if part for word in part.split())


def display_name(first: str | None, last: str | None, email: str | None, lead_id: int | str | None) -> str:
    """The lead's full name, else its e-mail address (``email``: None to leave it out), else
    ``Lead <lead_id>``."""
    return full_name(first, last) or (email or "").strip() or f"Lead {lead_id}"
