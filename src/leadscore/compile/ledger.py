"""Read result rows into ledgers: every point of the score traced to a rule or an adjustment.

``score_points`` is each line's contribution to the final 0–100 score, so the lines sum to the score
(within half a millionth: the query keeps the score to six decimals, ``dialects.Quantized``). Adjustments (group cap, floor, clamp at the scale's maximum) are
lines of their own, so nothing is hidden in the arithmetic.

The rows are read a batch at a time, column by column (``read_ledgers``: what every caller fetches, a
result's rows or an Arrow batch, is a set of columns), with what the reading needs of the model derived
once per model object (``_plan``); ``read_ledger`` reads one row the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from operator import attrgetter
from typing import Any, cast

from leadscore.compile import layout
from leadscore.compile.per_model import PerModel
from leadscore.compile.query import half_life_ms
from leadscore.compile.query import scope as scope_of
from leadscore.model import EachRule, OnceRule, RatioRule, RecencyRule, ScoringModel, ThresholdRule

EPS = 1e-12

Columns = Mapping[str, Sequence[Any]]  # a batch of result rows: column name → the rows' values


def columns_of(keys: Sequence[str], rows: Sequence[Sequence[Any]]) -> Columns:
    """Fetched rows (each a sequence in the order of ``keys``) as one sequence of values per column."""
    if not rows:
        return {key: () for key in keys}
    return dict(zip(keys, zip(*rows, strict=True), strict=True))


@dataclass(frozen=True)
class LedgerLine:
    rule_id: str
    name: str
    section: str  # fit | engagement
    kind: str  # fit | each | once | threshold | recency | ratio | group_cap | floor | clamp
    score_points: float
    value: float  # raw points after the rule cap (adjustments: the raw-point change)
    raw: float | None = None  # before the rule cap
    matched: int | None = None  # events counted
    decay: float | None = None  # effective decay factor applied (1 = none)
    capped: bool = False
    group: str | None = None
    note: str = ""


@dataclass(frozen=True)
class Ledger:
    lead_id: int
    as_of: int
    score: float
    fit_score: float
    engagement_score: float
    fit_points: float
    engagement_points: float
    grade: str
    level: int
    band: str
    lines: tuple[LedgerLine, ...] = field(default_factory=tuple)

    @property
    def total(self) -> float:
        return sum(line.score_points for line in self.lines)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# A ledger line as read: its stored values in the order of ``store.ledger_lines.PACKED`` (rule id, section,
# kind, group, matched, raw, value, decay, score points, note), then its name and whether it is capped. The
# one form ``read_ledgers`` builds; a ``LedgerLine`` is a view of it, made only when a ledger's ``lines``
# are read. What saves or bounds a score (the packed lines, the decay bound) reads the rows (``line_rows``):
# a further score saved by a full rescoring builds none of its ~50,000 ``LedgerLine`` objects.
LineRow = tuple[
    str, str, str, str | None, int | None, float | None, float, float | None, float, str, str, bool
]
_ROW_FIELDS = ("rule_id", "section", "kind", "group", "matched", "raw", "value", "decay", "score_points",
               "note", "name", "capped")  # fmt: skip
_ROW_OF = attrgetter(*_ROW_FIELDS)
_ROWS = "_rows"  # a ledger read by ``read_ledgers``: its lines' rows, in its ``__dict__``


def line_of(row: LineRow) -> LedgerLine:
    """The ``LedgerLine`` a row stands for (its view)."""
    line = _new(LedgerLine)
    _set(line, "__dict__", dict(zip(_ROW_FIELDS, row, strict=True)))
    return line


def line_rows(ledger: Ledger) -> Sequence[LineRow]:
    """A ledger's lines as rows (``LineRow``), in its lines' order: those it was read as, or (a ledger
    made otherwise) its lines' values."""
    rows = ledger.__dict__.get(_ROWS)
    if rows is None:
        return [cast(LineRow, _ROW_OF(line)) for line in ledger.lines]
    return cast(Sequence[LineRow], rows)


class _Lines:
    """``Ledger.lines`` of a ledger read as rows: its ``LedgerLine`` views, made when first read and kept
    (a ledger made with ``lines`` holds them in its ``__dict__``, which this never overrides)."""

    def __get__(self, ledger: Ledger | None, owner: type[Ledger]) -> Any:
        if ledger is None:
            return self
        lines = tuple(map(line_of, ledger.__dict__.get(_ROWS, ())))
        ledger.__dict__["lines"] = lines
        return lines


setattr(Ledger, "lines", _Lines())  # noqa: B010 (the dataclass field keeps no class attribute)


# A frozen dataclass's __init__ sets each field through object.__setattr__ (about 4 µs for a ledger line,
# the cost of reading a batch); the reader fills the same instances' attribute dict in one step.
_new = object.__new__
_set = object.__setattr__


def factors(model: ScoringModel) -> tuple[float, float]:
    """Score points per raw fit point and per raw engagement point."""
    (fit_n, fit_d), (eng_n, eng_d) = ratios(model)
    return fit_n / fit_d, eng_n / eng_d


def ratios(model: ScoringModel) -> tuple[tuple[float, float], tuple[float, float]]:
    """Score points per raw fit point and per raw engagement point as (numerator, denominator): a line of
    ``raw`` points gives ``raw * numerator / denominator``, multiplied before divided as the query's scores
    are, so a line that is a whole number in decimals is that number (117 of 195 raw points at weight 1 of
    3 are 20 score points; 117 × (100 / 195 / 3) is 19.999999999999996)."""
    s = model.scale
    total = s.weights.fit + s.weights.engagement
    return (100.0 * s.weights.fit, s.fit_max * total), (
        100.0 * s.weights.engagement,
        s.engagement_max * total,
    )


Note = Callable[[Columns, int, int], str]  # (columns, row, events counted) → a rule's note


@dataclass(frozen=True)
class _Engagement:
    """What reading an engagement rule's line needs, derived once per model."""

    count: str
    raw: str
    value: str
    id: str
    name: str
    kind: str
    group: str | None
    decays: bool  # an each or once rule: its line states a decay factor
    half_life: float | None
    per_match: float  # an each rule's points (× matches: the undecayed total); a once rule's
    each: bool
    note: Note | None  # None: the note is empty


@dataclass(frozen=True)
class _Plan:
    fit_factor: tuple[float, float]  # ``ratios``
    engagement_factor: tuple[float, float]
    fit: tuple[tuple[str, str, str], ...]  # (column, rule id, name)
    engagement: tuple[_Engagement, ...]
    groups: tuple[tuple[str, str, str, str, str], ...]  # (value column, sum column, group id, name, note)
    sections: tuple[tuple[str, tuple[float, float], float], ...]  # (section, its ``ratios``, maximum)


def _make_plan(model: ScoringModel) -> _Plan:
    ff, ef = ratios(model)
    return _Plan(
        ff,
        ef,
        tuple((layout.fit_col(r.id), r.id, r.name) for r in model.fit),
        tuple(
            _Engagement(
                layout.count_col(r.id),
                layout.raw_col(r.id),
                layout.value_col(r.id),
                r.id,
                r.name,
                r.kind,
                r.group,
                isinstance(r, EachRule | OnceRule),
                half_life_ms(model, r),
                r.points if isinstance(r, EachRule | OnceRule) else 0.0,
                isinstance(r, EachRule),
                _note_of(r),
            )
            for r in model.engagement
        ),
        tuple(
            (
                layout.group_value_col(g.id),
                layout.group_sum_col(g.id),
                g.id,
                f"Group cap: {g.name}",
                f"cap {g.cap:g}",
            )
            for g in model.groups
        ),
        (("fit", ff, model.scale.fit_max), ("engagement", ef, model.scale.engagement_max)),
    )


_plan = PerModel(_make_plan)


def read_ledger(model: ScoringModel, row: Mapping[str, Any], *, include_zero: bool = False) -> Ledger:
    """One result row as a ledger (``read_ledgers`` of a batch of one)."""
    return read_ledgers(model, {k: (v,) for k, v in row.items()}, include_zero=include_zero)[0]


def read_ledgers(model: ScoringModel, columns: Columns, *, include_zero: bool = False) -> list[Ledger]:
    """A batch of result rows of ``model``'s query, given column by column, as ledgers in row order:
    the rules' lines (in model order; a rule that neither matched nor scored has none unless
    ``include_zero``), the consent line, the group caps, then each section's floor and clamp. The lines
    are read as rows (``LineRow``; ``line_rows``), their ``LedgerLine`` views made when ``lines`` is read."""
    plan = _plan(model)
    (fn, fd), (en, ed) = plan.fit_factor, plan.engagement_factor
    rows: list[list[LineRow]] = [[] for _ in columns["lead_id"]]
    for column, rule_id, name in plan.fit:
        # a fit rule gives a lead one of a few values (its points, or none): one row per value, shared by
        # every lead with it (rows are tuples); a zero's sign is its own value (-0.0 == 0.0)
        made: dict[tuple[float, float], LineRow] = {}
        for i, cell in enumerate(columns[column]):
            value = float(cell)
            if value or include_zero:
                key = (value, math.copysign(1.0, value))
                row = made.get(key)
                if row is None:
                    row = made[key] = (rule_id, "fit", "fit", None, int(value != 0), value, value, None,
                                       value * fn / fd, "", name, False)  # fmt: skip
                rows[i].append(row)
    for rule in plan.engagement:
        cells = zip(columns[rule.count], columns[rule.raw], columns[rule.value], strict=True)
        for i, (count, raw_cell, value_cell) in enumerate(cells):
            n = int(count or 0)
            raw = float(raw_cell or 0.0)
            value = float(value_cell or 0.0)
            if not (n or value or include_zero):
                continue
            # the decay factor the rule's points received: decayed total / undecayed total
            decay = None
            if rule.decays and n:
                decay = raw / (rule.per_match * (n if rule.each else 1)) if rule.half_life else 1.0
            rows[i].append(
                (rule.id, "engagement", rule.kind, rule.group, n, raw, value, decay, value * en / ed,
                 "" if rule.note is None else rule.note(columns, i, n), rule.name, abs(raw - value) > EPS)
            )  # fmt: skip
    consent = columns.get(layout.TRACKING)
    if model.engagement and consent is not None:
        for i, allowed in enumerate(consent):
            if not allowed:
                rows[i].append(_NO_CONSENT)
    for value_column, sum_column, group_id, name, note in plan.groups:
        group_cells = zip(columns[value_column], columns[sum_column], strict=True)
        for i, (capped_total, total) in enumerate(group_cells):
            adj = float(capped_total) - float(total)
            if abs(adj) > EPS:
                rows[i].append(
                    (f"group:{group_id}", "engagement", "group_cap", group_id, None, None, adj, None,
                     adj * en / ed, note, name, True)
                )  # fmt: skip
    floors = [columns[f"{section}_floor_adj"] for section, _, _ in plan.sections]
    clamps = [columns[f"{section}_clamp_adj"] for section, _, _ in plan.sections]
    for i, lines in enumerate(rows):
        for (section, (num, den), max_), floor_cells, clamp_cells in zip(
            plan.sections, floors, clamps, strict=True
        ):
            floor = float(floor_cells[i])
            if abs(floor) > EPS:
                lines.append(
                    (f"floor:{section}", section, "floor", None, None, None, floor, None, floor * num / den,
                     "negative total raised to 0", f"Floor at 0 ({section})", False)
                )  # fmt: skip
            clamp = float(clamp_cells[i])
            if abs(clamp) > EPS:
                lines.append(
                    (f"clamp:{section}", section, "clamp", None, None, None, clamp, None, clamp * num / den,
                     f"scale maximum {max_:g}", f"Clamp at {max_:g} points ({section})", True)
                )  # fmt: skip
    return read_totals_of(columns, rows=rows)


_NO_CONSENT: LineRow = ("consent:tracking", "engagement", "consent", None, None, None, 0.0, None, 0.0,
                        "behaviour is not scored without tracking consent", "No tracking consent", False)  # fmt: skip


def read_totals(row: Mapping[Any, Any], lines: tuple[LedgerLine, ...] = ()) -> Ledger:
    """The score columns of one result row as a Ledger, with ``lines`` (``read_totals_of`` of a batch of
    one)."""
    return read_totals_of({k: (row[k],) for k in _TOTALS}, [lines])[0]


_TOTALS = (
    "lead_id",
    "as_of",
    "score",
    "fit_score",
    "engagement_score",
    "fit_points",
    "engagement_points",
    "grade",
    "level",
    "band",
)


def read_totals_of(
    columns: Columns,
    lines: Sequence[tuple[LedgerLine, ...]] | None = None,
    *,
    rows: Sequence[Sequence[LineRow]] | None = None,
) -> list[Ledger]:
    """The score columns of a batch of result rows as Ledgers, row ``i`` with ``lines[i]``, or with the
    lines whose rows are ``rows[i]`` (``read_ledgers``; neither: for what needs only the totals, such as
    score history rows, at a fraction of ``read_ledgers``' cost)."""
    out: list[Ledger] = []
    append = out.append
    cells = zip(*(columns[name] for name in _TOTALS), strict=True)
    for i, (
        lead_id,
        as_of,
        score,
        fit_score,
        engagement_score,
        fit_points,
        engagement_points,
        grade,
        level,
        band,
    ) in enumerate(cells):
        ledger = _new(Ledger)
        values = {
            "lead_id": int(lead_id),
            "as_of": int(as_of),
            "score": float(score),
            "fit_score": float(fit_score),
            "engagement_score": float(engagement_score),
            "fit_points": float(fit_points),
            "engagement_points": float(engagement_points),
            "grade": str(grade),
            "level": int(level),
            "band": str(band),
        }
        if rows is None:
            values["lines"] = () if lines is None else lines[i]
        else:
            values[_ROWS] = rows[i]
        _set(ledger, "__dict__", values)
        append(ledger)
    return out


DISTINCT_WORDS = {"day": "days", "session": "sessions", "person": "people"}


def _cell(columns: Columns, name: str, i: int) -> Any:
    """Row ``i``'s value of a column the query may leave out (None then)."""
    cells = columns.get(name)
    return None if cells is None else cells[i]


def _note_of(rule: Any) -> Note | None:
    """How a count or recency rule's ledger line says what it counted, in words (None: no note)."""
    if not isinstance(rule, ThresholdRule | RatioRule | RecencyRule):
        return None
    scope = " in the account" if scope_of(rule) == "account" else ""
    if isinstance(rule, ThresholdRule | RatioRule) and rule.count is not None:
        d = rule.count.distinct
        what = DISTINCT_WORDS[d] if isinstance(d, str) else f"values of {d.property}"
        unit = f"distinct {what}"
    else:
        unit = "events"
    if isinstance(rule, ThresholdRule):
        distinct = layout.distinct_col(rule.id) if rule.count is not None else None
        share = rule.share
        share_column = layout.share_col(rule.id)

        def threshold(columns: Columns, i: int, n: int) -> str:
            count = int(_cell(columns, distinct, i) or 0) if distinct is not None else n
            if share is not None:
                of = _cell(columns, share_column, i)
                need = f"{share.at_least:g} × {share.of} ({'missing' if of is None else f'{of:g}'})"
                return f"{count} {unit}{scope} of {need} needed within {rule.within}"
            return f"{count} {unit}{scope} of {rule.at_least} needed within {rule.within}"

        return threshold
    if isinstance(rule, RatioRule):
        recent_column, before_column = layout.recent_col(rule.id), layout.before_col(rule.id)
        bound = f"at least {rule.at_least:g}" if rule.at_least is not None else f"at most {rule.at_most:g}"

        def ratio(columns: Columns, i: int, n: int) -> str:
            recent = int(_cell(columns, recent_column, i) or 0)
            before = int(_cell(columns, before_column, i) or 0)
            return f"{recent} {unit}{scope} in the last {rule.within} against {before} before (ratio {bound})"

        return ratio
    last_column, never = layout.last_col(rule.id), f"no match within {rule.steps[-1].within}"

    def recency(columns: Columns, i: int, n: int) -> str:
        last = _cell(columns, last_column, i)
        if last is None:
            return never
        age_ms = int(columns["as_of"][i]) - int(last)
        return f"newest match {age_ms / 86_400_000:.1f} days before as-of"

    return recency
