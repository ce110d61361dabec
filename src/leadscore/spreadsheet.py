"""Values written to CSV files that people open in spreadsheets."""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas (CSV injection): text starting with = + - @ (or tab/CR) gets a
    leading ``'``, which spreadsheets show but do not evaluate. Numbers are left as they are."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value
