"""How the dashboard names a lead wherever it lists or links one (the leads list, the hand-off desk,
getting warmer, an account's contacts, the lead page's title)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leadscore.store.lead_names import display_name


def lead_name(row: Mapping[str, Any]) -> str:
    """The lead's display name (``store.lead_names.display_name``: "First Last", else the e-mail address,
    else "Lead <id>"). ``row``: a lead's ``first_name``, ``last_name``, ``email`` and its id as ``lead_id``
    or ``id``."""
    lead_id = row["lead_id"] if row.get("lead_id") is not None else row.get("id")
    return display_name(row.get("first_name"), row.get("last_name"), row.get("email"), lead_id)
