"""Inline constants for the DuckDB and Spark renderings, and the JSON path of a JSON-access element.

Both engines read ``0.5`` as DECIMAL, not DOUBLE; the compiler's arithmetic is double precision on every
engine (SQLite REAL, PostgreSQL ``double precision``), so floats are written as doubles explicitly.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.sql.functions import FunctionElement


def finite(value: float) -> str:
    """``repr`` of a finite float (the shortest text that reads back as the same double)."""
    if not math.isfinite(value):
        raise ValueError(f"cannot write {value!r} as a SQL constant")
    return repr(value)


def json_path(element: FunctionElement[Any]) -> tuple[str, ...]:
    """The key path of a JsonText / JsonNumber / JsonBool element (its third argument is ``{"a","b"}``)."""
    path = getattr(element, "path", None)
    if path is not None:
        return tuple(path)
    spelled = list(element.clauses)[2]
    assert isinstance(spelled, BindParameter)
    return tuple(key.strip('"') for key in str(spelled.value).strip("{}").split(","))
