"""Arrow schemas of the four source relations and of the two outputs, and ledgers → Arrow tables.

The scores output has one row per (lead, as_of); the ledger output has one row per ledger line
(``compile.read_ledger``: every rule that matched or scored, and every cap, floor and clamp adjustment).
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from leadscore.compile import Ledger
from leadscore.compile.ledger import line_rows

EVENTS = pa.schema(
    [
        ("message_id", pa.string()),
        ("person_key", pa.string()),
        ("ts", pa.int64()),
        ("type", pa.string()),
        ("name", pa.string()),
        ("path", pa.string()),
        ("url", pa.string()),
        ("properties", pa.string()),  # JSON text
    ]
)
IDENTITIES = pa.schema([("key", pa.string()), ("lead_id", pa.int64())])
LEADS = pa.schema(
    [
        ("id", pa.int64()),
        ("email", pa.string()),
        ("email_domain", pa.string()),
        ("first_name", pa.string()),
        ("last_name", pa.string()),
        ("company", pa.string()),
        ("account_id", pa.int64()),
        ("attributes", pa.string()),  # JSON text
    ]
)
ACCOUNTS = pa.schema(
    [("id", pa.int64()), ("domain", pa.string()), ("name", pa.string()), ("attributes", pa.string())]
)
SOURCES = {"events": EVENTS, "identities": IDENTITIES, "leads": LEADS, "accounts": ACCOUNTS}
JSON_COLUMNS = {"properties", "attributes"}

SCORES = pa.schema(
    [
        ("lead_id", pa.int64()),
        ("as_of", pa.int64()),
        ("score", pa.float64()),
        ("fit_score", pa.float64()),
        ("engagement_score", pa.float64()),
        ("fit_points", pa.float64()),
        ("engagement_points", pa.float64()),
        ("grade", pa.string()),
        ("level", pa.int32()),
        ("band", pa.string()),
    ]
)
LEDGER = pa.schema(
    [
        ("lead_id", pa.int64()),
        ("as_of", pa.int64()),
        ("rule_id", pa.string()),
        ("name", pa.string()),
        ("section", pa.string()),
        ("kind", pa.string()),
        ("rule_group", pa.string()),
        ("matched", pa.int64()),
        ("raw", pa.float64()),
        ("value", pa.float64()),
        ("decay", pa.float64()),
        ("capped", pa.bool_()),
        ("score_points", pa.float64()),
        ("note", pa.string()),
    ]
)


def spark_ddl(schema: pa.Schema) -> str:
    """The schema as a Spark DDL string (``lead_id BIGINT, ...``)."""
    names = {
        pa.int64(): "BIGINT",
        pa.int32(): "INT",
        pa.float64(): "DOUBLE",
        pa.string(): "STRING",
        pa.bool_(): "BOOLEAN",
    }
    return ", ".join(f"`{f.name}` {names[f.type]}" for f in schema)


def scores_table(ledgers: Sequence[Ledger]) -> pa.Table:
    return pa.table(
        {
            "lead_id": [lg.lead_id for lg in ledgers],
            "as_of": [lg.as_of for lg in ledgers],
            "score": [lg.score for lg in ledgers],
            "fit_score": [lg.fit_score for lg in ledgers],
            "engagement_score": [lg.engagement_score for lg in ledgers],
            "fit_points": [lg.fit_points for lg in ledgers],
            "engagement_points": [lg.engagement_points for lg in ledgers],
            "grade": [lg.grade for lg in ledgers],
            "level": [lg.level for lg in ledgers],
            "band": [lg.band for lg in ledgers],
        },
        schema=SCORES,
    )


def ledger_table(ledgers: Sequence[Ledger]) -> pa.Table:
    """Every ledger line of ``ledgers``, one row each (built column by column, no dict a line), from the
    lines' rows (``line_rows``: a ledger read from a scoring statement makes no ``LedgerLine``)."""
    rows = [
        (lg.lead_id, lg.as_of, rule_id, name, section, kind, group, matched, raw, value, decay, capped,
         score_points, note)
        for lg in ledgers
        for rule_id, section, kind, group, matched, raw, value, decay, score_points, note, name, capped
        in line_rows(lg)
    ]  # fmt: skip
    cells = list(zip(*rows, strict=True)) if rows else [() for _ in LEDGER.names]
    return pa.table(dict(zip(LEDGER.names, (list(c) for c in cells), strict=True)), schema=LEDGER)
