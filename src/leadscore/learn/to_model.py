"""A fitted scorecard as a normal scoring model: every bin worth points becomes a rule.

- an attribute bin becomes a fit rule (``lt``/``gte`` for intervals, ``in``/``not_in`` for categories,
  ``missing`` or a placeholder for the missing bin);
- an event count's bins become ``threshold`` rules, one per bin edge, worth the step in points there;
- a recency's bins become ``once`` rules: one for "ever", one per edge with that window;
- a ratio's bins become a ``threshold`` rule for any event in its two windows (the lowest bin against
  none) and a ``ratio`` rule per edge (``at_least`` the edge's factor), worth the step there;
- a pair's cells become fit rules ``all: [bin of one, bin of the other]``; the cells of a pair worth the
  same points share one rule (``any`` of them). A cell may be worth negative points.

Each fit feature's worst bin is worth 0 (fit totals below 0, possible only through a pair's negative
cells, are raised to 0 by the model language, and by ``Scorecard`` alike), and the scale makes the 0–100
score ``100 × points / (fit_max + engagement_max)``, so the compiled model scores exactly what
``Scorecard.score_100`` computes.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import yaml

from leadscore.learn.checks import NothingLearnedError
from leadscore.learn.features import (
    Attribute,
    EventCount,
    EventRatio,
    EventRecency,
    Feature,
    TitleWords,
    slug,
)
from leadscore.learn.scorecard import BinRow, CellRow, Scorecard
from leadscore.model import ScoringModel, dump_model, loads_model

MAX_NAME_ITEMS = 4
MAX_NAME = 200  # the model language's longest rule name
MAX_NAME_ITEM = 60  # a category's value in a name, shortened beyond


def _fmt(value: Any) -> str:
    """A number as the rule compares with it: a whole one in digits (``2500000``, never ``2.5e+06``),
    another as the YAML writes it (the shortest spelling that reads back the same float, never rounded
    to fewer digits); a category's value with its control characters spelt out and at most
    ``MAX_NAME_ITEM`` characters."""
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    return _shorten(_spelt(str(value)), MAX_NAME_ITEM, word=False)


def _spelt(text: str) -> str:
    """``text`` with each character a terminal or a reader would not show as itself (a newline, ESC,
    BEL, NUL) spelt as Python spells it (``\\n``, ``\\x1b``)."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _shorten(text: str, limit: int, word: bool = True) -> str:
    """``text``, or as much of it as ``limit`` characters hold with "…" saying it was cut (``word``:
    after its last whole word)."""
    if len(text) <= limit:
        return text
    if not word:
        return text[: limit - 1] + "…"
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > 0 else cut[: limit - 2]) + " …"


def _name(text: str) -> str:
    """A rule's name: control characters spelt out, at most the language's ``MAX_NAME`` characters."""
    return _shorten(_spelt(text), MAX_NAME)


def _yaml_number(value: float) -> int | float:
    """A whole number as an integer (``gte: 500``), unless beyond 64 bits (1e308 is an edge a column of
    huge numbers can have), which the model language refuses as an integer: then as a float."""
    whole = float(value).is_integer() and -(2**63) <= value < 2**63
    return int(value) if whole else float(value)


def _items(values: tuple[Any, ...]) -> str:
    shown = ", ".join(_fmt(v) for v in values[:MAX_NAME_ITEMS])
    more = len(values) - MAX_NAME_ITEMS
    return f"{shown} and {more} more" if more > 0 else shown


def _numeric_bin(
    sc: Scorecard, feature: Feature, index: int, edges: tuple[float, ...]
) -> tuple[dict[str, Any], str]:
    field, name = feature.source.field, feature.name  # type: ignore[union-attr]
    # a number is either below or at/above any anchor: "not a number" needs no operator of its own
    anchor = _yaml_number(edges[0]) if edges else 0
    is_number = {"any": [{"attribute": field, "lt": anchor}, {"attribute": field, "gte": anchor}]}
    if index == len(edges) + 1:
        return {"not": is_number}, f"{name} missing or not a number"
    if not edges:
        return is_number, f"{name} is a number"
    if index == 0:
        return {"attribute": field, "lt": _yaml_number(edges[0])}, f"{name} < {_fmt(edges[0])}"
    if index == len(edges):
        return {"attribute": field, "gte": _yaml_number(edges[-1])}, f"{name} ≥ {_fmt(edges[-1])}"
    low, high = edges[index - 1], edges[index]
    cond = {
        "all": [
            {"attribute": field, "gte": _yaml_number(low)},
            {"attribute": field, "lt": _yaml_number(high)},
        ]
    }
    return cond, f"{_fmt(low)} ≤ {name} < {_fmt(high)}"


def _category_condition(field: str, values: tuple[Any, ...], negate: bool) -> dict[str, Any]:
    listed = [_yaml_number(v) if isinstance(v, float) else v for v in values if not isinstance(v, bool)]
    flags = [v for v in values if isinstance(v, bool)]
    parts: list[dict[str, Any]] = [{"attribute": field, "equals": flag} for flag in flags]
    if listed:
        parts.append({"attribute": field, "not_in" if negate and not flags else "in": listed})
    if negate and flags:
        return {"all": [{"attribute": field, "exists": True}, {"not": {"any": parts}}]}
    if negate and not listed:
        return {"attribute": field, "exists": True}
    return parts[0] if len(parts) == 1 else {"any": parts}


def _categorical_bin(sc: Scorecard, feature: Feature, index: int) -> tuple[dict[str, Any], str]:
    field, name = feature.source.field, feature.name  # type: ignore[union-attr]
    b = sc.bins_[sc.features_.index(feature)]
    if index == b.missing:
        cond: dict[str, Any] = {"attribute": field, "missing": True}
        if sc.placeholders:
            cond = {"any": [cond, {"attribute": field, "in": list(sc.placeholders)}]}
        return cond, f"{name} missing or a placeholder ({_items(sc.placeholders)})"
    if index == b.other:
        others = tuple(v for i, g in enumerate(b.groups) if i != b.other for v in g) + sc.placeholders
        label = (
            f"{name}: {_items(b.groups[index])} or any other value"
            if b.groups[index]
            else f"{name}: any other value"
        )
        return _category_condition(field, others, negate=True), label
    values = b.groups[index]
    return _category_condition(field, values, negate=False), f"{name}: {_items(values)}"


def _bin_condition(sc: Scorecard, feature: Feature, index: int) -> tuple[dict[str, Any], str]:
    b = sc.bins_[sc.features_.index(feature)]
    src = feature.source
    if isinstance(src, TitleWords):
        return _words_bin(sc, feature, src, index)
    if b.kind == "numeric":
        cond, name = _numeric_bin(sc, feature, index, b.edges)
    else:
        cond, name = _categorical_bin(sc, feature, index)
    if isinstance(src, Attribute) and src.fallback is not None:
        cond = _else(cond, src.field, src.fallback)
    return cond, name


def _else(cond: dict[str, Any], field: str, fallback: str) -> dict[str, Any]:
    """A condition on ``field`` read as a condition on "``field`` where present, else ``fallback``": every
    comparison holds for the field, or for the fallback where the field is missing (both missing for
    ``missing``)."""
    if "all" in cond or "any" in cond:
        key = "all" if "all" in cond else "any"
        return {key: [_else(c, field, fallback) for c in cond[key]]}
    if "not" in cond:
        return {"not": _else(cond["not"], field, fallback)}
    if cond.get("attribute") != field:
        return cond
    other = {**cond, "attribute": fallback}
    if cond.get("missing"):
        return {"all": [cond, other]}
    return {"any": [cond, {"all": [{"attribute": field, "missing": True}, other]}]}


def _words_bin(sc: Scorecard, feature: Feature, src: TitleWords, index: int) -> tuple[dict[str, Any], str]:
    """A bin of "the text mentions one of the words": True, False, both, or missing."""
    b = sc.bins_[sc.features_.index(feature)]
    if index == b.missing:
        return _categorical_bin(sc, feature, index)
    mentions: dict[str, Any] = {"attribute": src.field, "regex": src.pattern}
    placeholder = {"attribute": src.field, "in": list(src.placeholders)} if src.placeholders else None
    if placeholder is not None:
        mentions = {"all": [mentions, {"not": placeholder}]}
    present: list[dict[str, Any]] = [{"attribute": src.field, "exists": True}]
    if placeholder is not None:
        present.append({"not": placeholder})
    says_not = {"all": [*present, {"not": mentions}]}
    said = set(b.groups[index])
    if index == b.other:
        said |= {True, False} - {v for i, g in enumerate(b.groups) if i != index for v in g}
    title = src.field.replace("_", " ").capitalize()
    if said == {True, False}:
        return {"all": present}, f"{title} given"
    if said == {True}:
        return mentions, f"{title} mentions {src.label}"
    if said == {False}:
        return says_not, f"{title} does not mention {src.label}"
    return {"all": [mentions, says_not]}, f"{title}: no value"  # a bin no row can fall in


def _cell_rules(sc: Scorecard, used: set[str]) -> list[dict[str, Any]]:
    """A pair's cells worth the same points share one rule: ``any`` of the cells, each ``all`` of two bins."""
    out = []
    for cells in _by_pair(sc.cells()):
        first, second = cells[0].features
        pair = Feature(f"{first.name} x {second.name}", "categorical")
        for k, points in enumerate(sorted({c.points for c in cells if c.points}, reverse=True), start=1):
            mine = [c for c in cells if c.points == points]
            conditions, names = [], []
            for c in mine:
                (cond_a, name_a), (cond_b, name_b) = (
                    _bin_condition(sc, first, c.first),
                    _bin_condition(sc, second, c.second),
                )
                conditions.append({"all": [cond_a, cond_b]})
                names.append(f"{name_a} and {name_b}")
            leads, converted = sum(c.count for c in mine), sum(c.events for c in mine)
            name = names[0] if len(names) == 1 else f"{len(names)} cells: " + "; ".join(names)
            out.append({
                "id": _rule_id(pair, k, used),
                "name": _name(name),
                "description": f"{first.name} × {second.name}: {leads} leads in training, {converted} "
                f"converted ({100 * converted / leads:.1f} %), {'more' if points > 0 else 'fewer'} than "
                "the two features' own points predict",
                "when": conditions[0] if len(conditions) == 1 else {"any": conditions},
                "points": points,
            })  # fmt: skip
    return out


def _by_pair(rows: list[CellRow]) -> list[list[CellRow]]:
    groups: dict[tuple[Feature, Feature], list[CellRow]] = {}
    for row in rows:
        groups.setdefault(row.features, []).append(row)
    return list(groups.values())


def _stats(row: BinRow) -> str:
    return (
        f"{row.count} leads in training, {row.events} converted ({100 * row.rate:.1f} %)"
        if row.count
        else "no training leads"
    )


def _no_row_can_fall_in(sc: Scorecard, feature: Feature, index: int) -> bool:
    """A free text's bin for a value training never saw: a text mentions the words or it does not, so
    where both were seen no lead can fall in it (its rule would be a contradiction worth points)."""
    b = sc.bins_[sc.features_.index(feature)]
    seen = {v for i, g in enumerate(b.groups) if i != index for v in g}
    return isinstance(feature.source, TitleWords) and index == b.other and {True, False} <= seen


def _fit_rules(sc: Scorecard, feature: Feature, rows: list[BinRow], used: set[str]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row.points == 0 or _no_row_can_fall_in(sc, feature, row.index):
            continue
        cond, name = _bin_condition(sc, feature, row.index)
        out.append({"id": _rule_id(feature, row.index, used), "name": _name(name), "description": _stats(row),
                    "when": cond, "points": row.points})  # fmt: skip
    return out


def _event(source: EventCount | EventRecency | EventRatio) -> dict[str, Any]:
    out: dict[str, Any] = {"event": dict(source.event)}
    if source.where is not None:
        out["where"] = source.where
    if source.exclude is not None:
        out["exclude"] = source.exclude
    if isinstance(source, EventCount) and source.distinct is not None:
        out["count"] = {"distinct": source.distinct}
    if isinstance(source, EventCount) and source.scope is not None:
        out["scope"] = source.scope
    return out


def _count_rules(
    feature: Feature, rows: list[BinRow], edges: tuple[float, ...], used: set[str]
) -> list[dict[str, Any]]:
    source = feature.source
    assert isinstance(source, EventCount)
    out = []
    for i, edge in enumerate(edges, start=1):
        step = rows[i].points - rows[i - 1].points
        if step:
            out.append({"id": _rule_id(feature, i, used), "name": _name(_count_name(feature, source, int(edge))),
                        "description": f"{_stats(rows[i])}; the step in points from the bin below",
                        "kind": "threshold", **_event(source), "at_least": int(edge), "within": source.window,
                        "points": step})  # fmt: skip
    return out


def _count_name(feature: Feature, source: EventCount, edge: int) -> str:
    return source.rule_name(edge) if source.label else f"{feature.name} ≥ {edge}"


def _recency_rules(
    sc: Scorecard, feature: Feature, rows: list[BinRow], edges: tuple[float, ...], used: set[str]
) -> list[dict[str, Any]]:
    source = feature.source
    assert isinstance(source, EventRecency)
    b = sc.bins_[sc.features_.index(feature)]
    last = len(edges)
    never = rows[b.missing].points if b.missing is not None else rows[last].points
    out = []
    if rows[last].points - never:
        out.append({"id": _rule_id(feature, 0, used), "name": _name(f"{source.label}: ever" if source.label else f"{feature.name}: ever"),
                    "description": _stats(rows[last]), "kind": "once", **_event(source),
                    "points": rows[last].points - never, "half_life": "none"})  # fmt: skip
    for i, edge in enumerate(edges, start=1):
        step = rows[i - 1].points - rows[i].points
        if step:
            out.append({"id": _rule_id(feature, i, used), "name": _name(f"{source.label} in the last {int(edge)} days" if source.label
                                                                 else f"{feature.name} < {int(edge)} days"),
                        "description": f"{_stats(rows[i - 1])}; the step in points from the bin older",
                        "kind": "once", **_event(source), "window": f"{int(edge)}d", "points": step,
                        "half_life": "none"})  # fmt: skip
    return out


def _ratio_rules(
    sc: Scorecard, feature: Feature, rows: list[BinRow], edges: tuple[float, ...], used: set[str]
) -> list[dict[str, Any]]:
    source = feature.source
    assert isinstance(source, EventRatio)
    out = []
    # the lowest bin against no event at all (0 points where training had no such row: the baseline)
    if rows[0].points:
        out.append({"id": _rule_id(feature, 0, used), "name": _name(source.any_name()), "description": _stats(rows[0]),
                    "kind": "threshold", **_event(source), "at_least": 1, "within": source.both,
                    "points": rows[0].points})  # fmt: skip
    for i, edge in enumerate(edges, start=1):
        step = rows[i].points - rows[i - 1].points
        if step:
            out.append({"id": _rule_id(feature, i, used), "name": _name(source.rule_name(edge)),
                        "description": f"{_stats(rows[i])}; the step in points from the bin below",
                        "kind": "ratio", **_event(source), "within": source.within,
                        "at_least": _yaml_number(edge), "points": step})  # fmt: skip
    return out


def _rule_id(feature: Feature, index: int, used: set[str]) -> str:
    stem = slug(feature.name)
    rid, n = f"{stem}_{index}", 1
    while rid in used:
        n += 1
        rid = f"{stem}_{index}_{n}"
    used.add(rid)
    return rid


# what a learned model states about its points; ``stated_probability`` reads it back for ``evaluate``
PROBABILITY = (
    "Probability of conversion ≈ 1 / (1 + exp(-({intercept:.4f} + points / {per_logit:.4f}))), "
    "where points = fit points + engagement points."
)
_STATED = re.compile(
    r"Probability of conversion ≈ 1 / \(1 \+ exp\(-\((?P<intercept>-?\d+\.\d+) \+ points / "
    r"(?P<per_logit>\d+\.\d+)\)\)\), where points = fit points \+ engagement points\."
)


def stated_probability(model: ScoringModel) -> Callable[[float], float] | None:
    """The probability of conversion a learned model states for a number of points (its description
    says it), or None for a model that states none (a hand-made one)."""
    found = _STATED.search(model.description)
    if found is None:
        return None
    intercept, per_logit = float(found["intercept"]), float(found["per_logit"])
    if per_logit <= 0:
        return None

    def probability(points: float) -> float:
        z = intercept + points / per_logit
        return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))

    return probability


def _feature_rules(
    sc: Scorecard, feature: Feature, mine: list[BinRow], used: set[str]
) -> list[dict[str, Any]]:
    """``mine``: the table's rows of the feature (``_rows_by_feature``)."""
    b = sc.bins_[sc.features_.index(feature)]
    if isinstance(feature.source, EventCount):
        return _count_rules(feature, mine, b.edges, used)
    if isinstance(feature.source, EventRecency):
        return _recency_rules(sc, feature, mine, b.edges, used)
    if isinstance(feature.source, EventRatio):
        return _ratio_rules(sc, feature, mine, b.edges, used)
    return _fit_rules(sc, feature, mine, used)


def _rows_by_feature(sc: Scorecard) -> list[list[BinRow]]:
    """Per feature, the table's rows whose feature equals it, in the table's order. Features are compared
    within a name only (equal features have equal names; some hold a dict, so they cannot be keys)."""
    named: dict[str, list[BinRow]] = {}
    for r in sc.table():
        named.setdefault(r.feature.name, []).append(r)
    return [[r for r in named.get(f.name, []) if r.feature == f] for f in sc.features_]


def rules_per_feature(sc: Scorecard) -> list[int]:
    """How many rules each feature of a fitted scorecard writes (its pairs' cells not included)."""
    rows = _rows_by_feature(sc)
    return [len(_feature_rules(sc, f, mine, set())) for f, mine in zip(sc.features_, rows, strict=True)]


def model_document(
    sc: Scorecard, name: str, description: str = "", bands: tuple[float, float] | None = None
) -> dict[str, Any]:
    """The scoring model as the YAML document (a plain dict)."""
    if sc.fit_max_ + sc.engagement_max_ == 0:
        raise NothingLearnedError(
            "nothing was learned: no bin is worth more points than another (no feature tells converted "
            "leads from the others; add features or outcomes, or lower --min-bin-share)"
        )
    rows = _rows_by_feature(sc)
    used: set[str] = set()
    fit: list[dict[str, Any]] = []
    engagement: list[dict[str, Any]] = []
    for feature, mine in zip(sc.features_, rows, strict=True):
        (fit if feature.section == "fit" else engagement).extend(_feature_rules(sc, feature, mine, used))
    fit.extend(_cell_rules(sc, used))
    probability = PROBABILITY.format(intercept=sc.intercept_, per_logit=sc.points_per_logit_)
    scale: dict[str, Any] = {
        "fit_max": sc.fit_max_ or 100,
        "engagement_max": sc.engagement_max_ or 100,
        "weights": {"fit": sc.fit_max_, "engagement": sc.engagement_max_},
    }
    if bands is not None:
        scale["bands"] = {"hot": round(bands[0], 1), "warm": round(bands[1], 1)}
    return {
        "model": name,
        "description": f"{description} {probability}".strip()[:2000],
        "fit": fit,
        "engagement": engagement,
        "scale": scale,
    }


def to_model(
    sc: Scorecard, name: str, description: str = "", bands: tuple[float, float] | None = None
) -> ScoringModel:
    """The fitted scorecard as a validated ``ScoringModel`` (load → dump → load round-trips)."""
    text = yaml.safe_dump(model_document(sc, name, description, bands), sort_keys=False, allow_unicode=True)
    return loads_model(text, f"{name}.yaml")


def to_yaml(sc: Scorecard, name: str, description: str = "", bands: tuple[float, float] | None = None) -> str:
    return dump_model(to_model(sc, name, description, bands))
