"""The stored ledger: one ``ledger`` row per lead and named score holding all of that score's ledger lines
(migration 0028), and the one reader of those lines.

A line was a row of its own before (~7 a lead and score, each in two B-trees on SQLite): writing,
deleting and reading them was most of what a further named score cost to save (bench/README.md, issue
#20). The lines of a lead's score are now one JSON array (``orjson``) of arrays in the order of
``PACKED``, in the order the ledger holds them; floats are written as the shortest text that reads back
as the same double (``-0.0`` included), so every value reads back as it was stored (on SQLite -0.0 is
written as 0.0, which is what its float columns gave back). JSON has no NaN or infinity: a score whose
lines hold one is written as ``{"nonfinite": [...]}`` with those floats as text (``"nan"``, ``"inf"``,
``"-inf"``), read back by ``float``. Values of another type than the column's
(an integer for a float column, as SQLite's column types would have turned them) are converted when
written, so a line reads back as the old row read.

``read_lines`` is the only reader: it returns the lines as the old rows read (``LINE_COLUMNS``), by
lead, score name and rule id.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import Any

import orjson
from sqlalchemy import Connection, Text, select

from leadscore.compile import Ledger
from leadscore.compile.ledger import line_rows
from leadscore.store.id_lists import in_list
from leadscore.store.schema import ledger
from leadscore.store.score_names import named

CHUNK = 500

# a ledger line as the readers see it (the columns of the ledger table before migration 0028)
LINE_COLUMNS = ("lead_id", "score_name", "rule_id", "section", "kind", "rule_group", "matched", "raw", "value",
                "decay", "score_points", "note")  # fmt: skip
# a line as stored, in a lead's score's array
PACKED = LINE_COLUMNS[2:]
_FLOATS = tuple(PACKED.index(c) for c in ("raw", "value", "decay", "score_points"))
_MATCHED = PACKED.index("matched")
_POINTS = PACKED.index("score_points")
_RULE = PACKED.index("rule_id")
_NONFINITE = "nonfinite"


STORED = len(PACKED)  # a ``LineRow`` begins with the line's stored values, in the order of ``PACKED``


def pack_lines(ledgers: Sequence[Ledger], *, signed_zero: bool = True) -> list[str]:
    """Each ledger's lines as its stored text (the ``lines`` column); ``signed_zero``: False on SQLite,
    whose float columns read -0.0 back as 0.0, so the lines read back as the rows of a line each did. The
    lines' rows are read (``compile.line_rows``), not their ``LedgerLine`` views: a save of three scores
    packs ~50,000 lines on the 3,000-lead bench."""
    return pack_tuples([[row[:STORED] for row in line_rows(r)] for r in ledgers], signed_zero=signed_zero)


def pack_tuples(per_lead: Sequence[Sequence[tuple[Any, ...]]], *, signed_zero: bool = True) -> list[str]:
    """Each score's lines (tuples in the order of ``PACKED``) as its stored text."""
    flat = list(chain.from_iterable(per_lead))
    if not flat or _plain(flat, signed_zero):
        return [orjson.dumps(lines).decode() for lines in per_lead]
    return [_pack_checked(lines, signed_zero) for lines in per_lead]


def _plain(lines: Sequence[tuple[Any, ...]], signed_zero: bool) -> bool:
    """Whether JSON carries every value as it is: floats finite and of type float (their sum is finite
    only if each is; a sum too large says no too, and those lines take ``_pack_checked``), counts ints,
    and (without ``signed_zero``) no -0.0."""
    cells = list(zip(*lines, strict=True))
    for i in _FLOATS:
        column = cells[i]
        if not set(map(type, column)) <= {float, type(None)} or not math.isfinite(sum(filter(None, column))):
            return False
        zeros = [v for v in column if v == 0.0] if not signed_zero and 0.0 in column else ()
        if any(math.copysign(1.0, v) < 0 for v in zeros):
            return False
    return set(map(type, cells[_MATCHED])) <= {int, type(None)}


def _pack_checked(lines: Sequence[tuple[Any, ...]], signed_zero: bool) -> str:
    """``pack_lines`` of one score's lines value by value: floats and counts converted to their column's
    type, a non-finite float as text under ``"nonfinite"``, -0.0 as 0.0 without ``signed_zero``."""
    out: list[list[Any]] = []
    nonfinite = False
    for values in lines:
        row = list(values)
        for i in _FLOATS:
            if row[i] is not None:
                row[i] = float(row[i])
                if not math.isfinite(row[i]):
                    row[i] = repr(row[i])
                    nonfinite = True
                elif not signed_zero and row[i] == 0.0:
                    row[i] = 0.0
        matched = row[_MATCHED]
        if matched is not None and type(matched) is not int:
            row[_MATCHED] = int(matched) if float(matched).is_integer() else float(matched)
        out.append(row)
    return orjson.dumps({_NONFINITE: out} if nonfinite else out).decode()


def unpack_lines(text: str | bytes) -> list[list[Any]]:
    """A lead's score's stored lines (arrays in the order of ``PACKED``)."""
    found = orjson.loads(text)
    if isinstance(found, dict):
        found = found[_NONFINITE]
        for row in found:
            for i in _FLOATS:
                if isinstance(row[i], str):
                    row[i] = float(row[i])
    return found


def expand(rows: Iterable[Sequence[Any]], *, nonzero: bool = False) -> list[dict[str, Any]]:
    """Stored ``(lead_id, score_name, lines)`` rows as line dicts (``LINE_COLUMNS``) by lead, score name and
    rule id; ``nonzero``: only lines whose ``score_points != 0``."""
    out: list[dict[str, Any]] = []
    for lead_id, score_name, text in sorted(rows, key=lambda row: (row[0], row[1])):
        lines = unpack_lines(text)
        lines.sort(key=lambda line: line[_RULE])
        for line in lines:
            if nonzero and line[_POINTS] == 0:
                continue
            out.append(dict(zip(LINE_COLUMNS, (lead_id, score_name, *line), strict=True)))
    return out


_STORED = (ledger.c.lead_id, ledger.c.score_name, ledger.c.lines)


def read_lines(
    conn: Connection,
    lead_ids: Sequence[int] | None,
    score_names: Sequence[str] | str | None = None,
    *,
    every_score: bool = False,
    nonzero: bool = False,
) -> list[dict[str, Any]]:
    """The ledger lines of ``lead_ids`` (of every lead when None) as ``LINE_COLUMNS`` dicts, by lead, score
    name and rule id, of the score ``score_names`` (the primary when None), of each of several, or
    (``every_score``) of every score; ``nonzero``: only lines whose ``score_points != 0`` (what the gates
    and reasons read)."""
    query = select(*_STORED)
    params: dict[str, Any] = {}
    if not every_score:  # every score's lines: no condition on the name
        if score_names is None or isinstance(score_names, str):
            query = query.where(named(ledger.c.score_name, score_names))
        else:
            query = query.where(in_list(ledger.c.score_name, "names", Text))
            params["names"] = list(score_names)
    if lead_ids is None:
        return expand(conn.execute(query, params).all(), nonzero=nonzero)
    ids = list(lead_ids)
    query = query.where(in_list(ledger.c.lead_id, "ids"))
    found: list[Any] = []
    for start in range(0, len(ids), CHUNK):
        found.extend(conn.execute(query, {**params, "ids": ids[start : start + CHUNK]}).all())
    return expand(found, nonzero=nonzero)
