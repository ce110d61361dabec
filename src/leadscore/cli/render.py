"""Rendering scores, ledgers and history for the terminal (rich), CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from leadscore.cli.options import fmt_time
from leadscore.scoring.shown import cut, cut_text, shown_change, shown_lines
from leadscore.spreadsheet import csv_safe

if TYPE_CHECKING:
    from leadscore.compile import Ledger, LedgerLine

# Piped output (CI logs, files) gets room for whole tables instead of 80 columns.
console = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
SCORE_FIELDS = (
    "lead_id",
    "email",
    "name",
    "company",
    "score",
    "fit_score",
    "engagement_score",
    "grade",
    "level",
    "band",
    "top_reasons",
)


def reasons(lines: Iterable[LedgerLine]) -> str:
    """The lead's top reasons (``lifecycle.reasons.top_lines``, the desk's and the webhooks'), e.g.
    ``Pricing page +12.5, Group cap: Website -5.0, Webinar +10.0``."""
    from leadscore.lifecycle.reasons import top_lines  # the store's modules: not for ``--help``

    return ", ".join(f"{line.name} {points:+.1f}" for line, points in top_lines(lines))


def score_rows(ledgers: Sequence[Ledger], people: Mapping[int, Mapping[str, Any]]) -> list[dict[str, Any]]:
    from leadscore.store.lead_names import full_name  # here: the store package loads SQLAlchemy

    rows = []
    for lg in ledgers:
        who = people.get(lg.lead_id, {})
        name = full_name(who.get("first_name"), who.get("last_name"))
        rows.append(
            {
                "lead_id": lg.lead_id,
                "email": who.get("email") or "",
                "name": name,
                "company": who.get("company") or "",
                "score": cut(lg.score, 2),
                "fit_score": cut(lg.fit_score, 2),
                "engagement_score": cut(lg.engagement_score, 2),
                "grade": lg.grade,
                "level": lg.level,
                "band": lg.band,
                "top_reasons": reasons(lg.lines),
            }
        )
    return rows


def print_rows(
    rows: list[dict[str, Any]], fmt: str, title: str = "", fields: Sequence[str] = SCORE_FIELDS
) -> None:
    """``rows`` as a table, CSV or JSON; ``fields`` heads the CSV of no rows."""
    if fmt == "json":
        print(json.dumps(rows, indent=2, default=str))
    elif fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else list(fields))
        writer.writeheader()
        writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)
        print(out.getvalue(), end="")
    else:
        table = Table(title=title or None)
        for key in rows[0] if rows else SCORE_FIELDS:
            table.add_column(key.replace("_", " "), justify="right" if key.endswith("score") else "left")
        for row in rows:
            table.add_row(*(cut_text(v) if isinstance(v, float) else str(v) for v in row.values()))
        console.print(table)


def print_more(shown: int, total: int, offset: int, fmt: str, what: str = "") -> None:
    """After a page of ``shown`` rows from ``offset`` of ``total``: how many more there are and the
    ``--offset`` that lists them ("150 more: --offset 100"; ``what`` names the list where a command pages
    several), on stderr with --format csv or json, so the output stays one document."""
    more = total - offset - shown
    if more <= 0:
        return
    line = f"{more:,} more{' ' + what if what else ''}: --offset {offset + shown}"
    if fmt == "table":
        console.print(line, highlight=False)
    else:
        print(line, file=sys.stderr)


def _num(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}".rstrip("0").rstrip(".") or "0"


def ledger_table(ledger: Ledger, title: str) -> Table:
    table = Table(title=title, show_footer=True)
    table.add_column("section")
    table.add_column("rule", footer="total")
    table.add_column("kind")
    table.add_column("matched", justify="right")
    table.add_column("decay", justify="right")
    table.add_column("raw points", justify="right")
    table.add_column("after caps", justify="right")
    table.add_column("score points", justify="right", footer=cut_text(ledger.score, 2))
    table.add_column("why")
    for line, shown in zip(ledger.lines, shown_lines(ledger), strict=True):
        table.add_row(
            line.section,
            f"{line.name} [dim]({line.rule_id})[/dim]",
            line.kind,
            "" if line.matched is None else str(line.matched),
            _num(line.decay, 3),
            _num(line.raw),
            _num(line.value),
            f"{shown:+.2f}",
            _why(line),
        )
    return table


def ledger_rows(ledger: Ledger) -> list[dict[str, Any]]:
    """The ledger's lines as ``ledger_table`` shows them, a row each (``explain -f csv``): the score points
    as shown, adding up to the score (``shown_lines``)."""
    return [
        {
            "section": line.section,
            "rule_id": line.rule_id,
            "rule": line.name,
            "kind": line.kind,
            "matched": line.matched,
            "decay": line.decay,
            "raw_points": line.raw,
            "after_caps": line.value,
            "score_points": shown,
            "why": _why(line),
        }
        for line, shown in zip(ledger.lines, shown_lines(ledger), strict=True)
    ]


def _why(line: LedgerLine) -> str:
    parts = [line.note] if line.note else []
    if line.capped and line.kind in ("each",):
        parts.append("rule cap applied")
    if line.group and line.kind != "group_cap":
        parts.append(f"group {line.group}")
    return "; ".join(parts)


def history_table(rows: Sequence[Mapping[str, Any]], labels: Mapping[int, str]) -> Table:
    table = Table(title="Score history")
    for col in ("when", "score", "change", "fit", "engagement", "grade", "level", "band", "model", "cause"):
        table.add_column(col, justify="right" if col in ("score", "change", "fit", "engagement") else "left")
    prev: float | None = None
    for row in rows:
        change = "" if prev is None else f"{shown_change(row['score'], prev):+.1f}"
        prev = row["score"]
        table.add_row(
            fmt_time(row["at_ms"]),
            cut_text(row["score"]),
            change,
            cut_text(row["fit_score"]),
            cut_text(row["engagement_score"]),
            row["grade"],
            str(row["level"]),
            row["band"],
            labels.get(row["model_version_id"], str(row["model_version_id"])),
            f"{row['cause']}: {row['cause_ref']}",
        )
    return table
