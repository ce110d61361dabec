"""Durations as written in models: a number and a unit (``90s``, ``30m``, ``12h``, ``30d``, ``2w``).

A bare number is an error: "30" could mean seconds or days, and a window that silently means the wrong
one scores every lead wrong.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated

from pydantic import BeforeValidator

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_SECONDS = 10_000 * 366 * 86400
_PATTERN = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")


def parse_duration(text: object) -> str:
    """Validate a duration and return it in canonical form (``"30d"``)."""
    if not isinstance(text, str):
        raise ValueError(f"duration {text!r} needs a unit: write e.g. '30d' (s, m, h, d or w)")
    match = _PATTERN.match(text.strip())
    if not match:
        raise ValueError(
            f"duration {text!r} is not a number followed by a unit (s, m, h, d or w), e.g. '30d'"
        )
    amount = float(match.group(1))
    if amount <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    if amount * UNIT_SECONDS[match.group(2)] > MAX_SECONDS:
        # events lie between 1970 and 9999: a longer one means nothing, and its milliseconds no store binds
        raise ValueError(f"duration {text!r} is longer than 10000 years")
    number = match.group(1)
    return f"{number}{match.group(2)}"


@functools.lru_cache(maxsize=1024)
def duration_seconds(text: str) -> float:
    """Seconds in a canonical duration string (kept per string: a ledger asks once per line)."""
    match = _PATTERN.match(text)
    assert match, text
    return float(match.group(1)) * UNIT_SECONDS[match.group(2)]


Duration = Annotated[str, BeforeValidator(parse_duration)]
