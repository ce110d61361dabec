"""What a ``--events`` / ``--leads`` / ``--accounts`` / ``--identities`` / ``--out`` argument names.

store            the leadscore store (``--db``): its events, identities, leads and accounts tables;
                 as ``--out``, the current scores and ledger of the active model version
table:NAME       a table (or view) in the engine: the ``--db`` database for SQLite / PostgreSQL,
                 the ``--duckdb`` file for DuckDB, the session catalog for Spark; as ``--out``,
                 tables NAME (scores) and NAME_ledger
PATH             Parquet: a file, a directory (every ``*.parquet`` below it) or a glob; as ``--out``,
                 a directory that receives ``scores.parquet`` and ``ledger.parquet``
                 (``parquet:PATH`` says the same when PATH could be mistaken for the other forms)
none             only for ``--identities`` (each event's person_key is already its lead's id) and
                 ``--accounts`` (no lead has an account): said out loud, never assumed
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass
from pathlib import Path

from leadscore.errors import InputError, Problem

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


@dataclass(frozen=True)
class StoreLocation:
    def __str__(self) -> str:
        return "store"


@dataclass(frozen=True)
class TableLocation:
    name: str

    @property
    def schema(self) -> str | None:
        return self.name.split(".")[0] if "." in self.name else None

    @property
    def table(self) -> str:
        return self.name.split(".")[-1]

    def __str__(self) -> str:
        return f"table:{self.name}"


@dataclass(frozen=True)
class ParquetLocation:
    path: str

    def files(self) -> list[str]:
        """Every Parquet file the location names, sorted (an error when there is none)."""
        p = Path(self.path)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*.parquet") if f.is_file())
        elif any(ch in self.path for ch in "*?["):
            found = sorted(glob.glob(self.path, recursive=True))
        else:
            found = [self.path] if p.is_file() else []
        if not found:
            raise InputError(Problem(f"no Parquet files at {self.path}"))
        return found

    def __str__(self) -> str:
        return self.path


@dataclass(frozen=True)
class NoLocation:
    """``none``: the relation is deliberately absent (identities and accounts only)."""

    def __str__(self) -> str:
        return "none"


Location = StoreLocation | TableLocation | ParquetLocation
Source = Location | NoLocation  # what --identities and --accounts may name


def parse_location(text: str) -> Source:
    """``store``, ``table:NAME``, ``none`` or a Parquet path (``parquet:PATH`` also accepted)."""
    if text == "store":
        return StoreLocation()
    if text == "none":
        return NoLocation()
    if text.startswith("table:"):
        name = text.removeprefix("table:")
        if not _TABLE_NAME.fullmatch(name):
            raise InputError(
                Problem(f"{text!r}: a table name is letters, digits and _ (optionally schema.table)")
            )
        return TableLocation(name)
    path = text.removeprefix("parquet:")
    if not path:
        raise InputError(Problem("an empty Parquet path"))
    return ParquetLocation(path)
