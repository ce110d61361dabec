"""How the dashboard names a lead wherever it lists or links one (the leads list, the hand-off desk,
getting warmer, an account's contacts, the lead page's title)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def lead_name(row: Mapping[str, Any]) -> str:
    """ "First Last", else the e-mail address, else "Lead <id>" (a visitor known by a user id only): never
    empty, so every link to a lead has a text. ``row``: a lead's ``first_name``, ``last_name``, ``email``
    and its id as ``lead_id`` or ``id``."""
    name = " ".join(p for p in (row.get("first_name"), row.get("last_name")) if p).strip()
    lead_id = row["lead_id"] if row.get("lead_id") is not None else row.get("id")
    return name or row.get("email") or f"Lead {lead_id}"
