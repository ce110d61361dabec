"""Model → relational query: one compiled scoring semantics for every engine and every caller."""

from leadscore.compile.contributions import EventShare, Explanation, compile_contributions, read_explanations

# registers the DuckDB and Spark spellings and CAPABILITIES entries
from leadscore.compile.engines import render_sql
from leadscore.compile.ledger import Ledger, LedgerLine, read_ledger, read_totals
from leadscore.compile.query import compile_model, half_life_ms
from leadscore.compile.sources import Sources

__all__ = [
    "EventShare",
    "Explanation",
    "Ledger",
    "LedgerLine",
    "Sources",
    "compile_contributions",
    "compile_model",
    "half_life_ms",
    "read_explanations",
    "read_ledger",
    "read_totals",
    "render_sql",
]
