"""Load a scoring model from YAML with every problem positioned (file:line:column, rule id); dump it back.

Loading collects YAML syntax errors, duplicate keys, schema errors (unknown keys, wrong types, bad
regexes, windows without units) and cross-references (unknown lists or groups, duplicate ids) and raises
them together as one ``ModelValidationError``.

Every model text is read here (``leadscore validate``, publish, the dashboard's editor, stored versions),
so the limits on hostile YAML live here too, enforced while the document is composed and before anything
is built from it: its size, how deep it nests and how many aliases it has and how many nodes they bring
in (a 437-byte "billion laughs" document expands to a billion), each refused with the line and column of
the alias, anchor or node that crossed the limit.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from leadscore.errors import ModelValidationError, Problem
from leadscore.model.conditions import COMPARED
from leadscore.model.names import canonical, is_field_name
from leadscore.model.rules import RULE_ID
from leadscore.model.scoring_model import ScoringModel
from leadscore.model.text_case import fold_case, normalise_text

Pos = tuple[int, int]
Path_ = tuple[Any, ...]
RULE_SECTIONS = ("fit", "engagement", "groups")
MAX_DOCUMENT_DEPTH = 40  # far beyond any real model; stops recursion bombs before validation
MAX_DOCUMENT_BYTES = 5_000_000
MAX_ALIASES = 1_000  # a model repeating a condition by anchor and alias needs a handful
MAX_ALIAS_NODES = 100_000  # nodes all aliases together may bring in (each counts its anchor's nodes)


class _Positions:
    """Line/column of every key and value in a YAML document, by path."""

    def __init__(self) -> None:
        self.values: dict[Path_, Pos] = {}
        self.keys: dict[Path_, Pos] = {}

    def nearest(self, path: Path_, key: bool = False) -> Pos | None:
        for end in range(len(path), -1, -1):
            prefix = path[:end]
            table = self.keys if key and end == len(path) else self.values
            if prefix in table:
                return table[prefix]
        return None


def _mark(node: yaml.Node) -> Pos:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _walk(node: yaml.Node, path: Path_, pos: _Positions, problems: list[Problem], file: str) -> None:
    pos.values[path] = _mark(node)
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            if key in seen:
                line, col = _mark(key_node)
                problems.append(Problem(f"duplicate key {key!r}", file, line, col))
            seen.add(key)
            pos.keys[(*path, key)] = _mark(key_node)
            _walk(value_node, (*path, key), pos, problems, file)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), pos, problems, file)


class _Limit(Exception):
    """A document past one of the limits, at a position."""

    def __init__(self, message: str, mark: Any) -> None:
        super().__init__(message)
        self.message, self.line, self.column = message, mark.line + 1, mark.column + 1


class ModelLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 booleans: only ``true``/``false`` are booleans. YAML 1.1 also
    reads ``yes``, ``no``, ``on`` and ``off`` as booleans, so ``in: [SE, NO, DK]`` lost Norway to ``false``.
    Settings that are booleans still accept ``yes``/``no`` (validation converts them).

    While composing it counts depth, aliases and the nodes the document has with its aliases expanded,
    and stops at the first node past a limit (nothing is built or expanded before that)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._level = 0
        self._aliases = 0
        self._alias_nodes = 0
        self._open_anchors: set[str] = set()
        self._measured: dict[int, tuple[int, int]] = {}

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """PyYAML's, with a value its constructor cannot read (a date-shaped ``2026-13-01``, an integer of
        5,000 digits, ``!!float abc``, ``!!timestamp soon``) a positioned YAML error instead of the bare
        ``ValueError`` (or ``OverflowError``, ``AttributeError``) the constructor raised."""
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, OverflowError, AttributeError, TypeError) as exc:
            shown = node.value if isinstance(node.value, str) else ""
            shown = shown if len(shown) <= 40 else f"{shown[:40]}..."
            kind = node.tag.rsplit(":", 1)[-1]
            raise yaml.constructor.ConstructorError(
                None, None, f"{shown!r} is not a valid {kind} ({str(exc)[:120]})", node.start_mark
            ) from None

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, parent, index)
        self._level += 1
        if self._level > MAX_DOCUMENT_DEPTH:
            raise _Limit(f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.add(anchor)
        try:
            return super().compose_node(parent, index)
        finally:
            self._level -= 1
            if anchor is not None:
                self._open_anchors.discard(anchor)

    def _alias(self, event: yaml.AliasEvent, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        mark, name = event.start_mark, event.anchor
        self._aliases += 1
        if self._aliases > MAX_ALIASES:
            raise _Limit(f"the document has more than {MAX_ALIASES} aliases", mark)
        if name in self._open_anchors:
            raise _Limit(f"alias *{name} is inside the node it refers to", mark)
        node = super().compose_node(parent, index)  # the anchor's node, shared (PyYAML copies nothing)
        if node is None:
            return None
        nodes, depth = self._measure(node)
        self._alias_nodes += nodes
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise _Limit(
                f"alias *{name} brings in {nodes} nodes; aliases may bring in at most {MAX_ALIAS_NODES} "
                "in all",
                mark,
            )
        if self._level + depth > MAX_DOCUMENT_DEPTH:
            raise _Limit(f"alias *{name} nests the document deeper than {MAX_DOCUMENT_DEPTH} levels", mark)
        return node

    def _measure(self, node: yaml.Node) -> tuple[int, int]:
        """Nodes and depth of a composed node with every alias in it expanded (each shared node once)."""
        known = self._measured.get(id(node))
        if known is not None:
            return known
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        nodes, depth = 1, 0
        for child in children:
            child_nodes, child_depth = self._measure(child)
            nodes, depth = nodes + child_nodes, max(depth, child_depth)
        self._measured[id(node)] = (nodes, depth + 1)
        return nodes, depth + 1


# YAML 1.1's base-60 numbers are not numbers here (YAML 1.2 has none): ``end: 17:00`` is the clock time
# "17:00", not 1020
SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
ModelLoader.yaml_implicit_resolvers = {
    first: [("tag:yaml.org,2002:str", SEXAGESIMAL)] * (first in "+-0123456789")
    + [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
ModelLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_model(
    source: str | Path, *, text: str | None = None, base_dir: Path | None = None, stored: bool = False
) -> ScoringModel:
    """Load and validate a model from a file path, or from ``text`` (then ``source`` names it in errors).

    ``stored``: the text of a version already published, read back to score with it: not checked for
    attribute names as the store spells them (``stored_spellings``), which a model published before that
    check may break; it scores as it always did (a rule naming such an attribute matches no lead)."""
    file = str(source)
    if text is None:
        try:
            size = Path(source).stat().st_size
            if size > MAX_DOCUMENT_BYTES:  # refused before it is read
                raise ModelValidationError([_too_big(size, file)])
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise ModelValidationError([Problem(f"cannot read model: {exc.strerror}", file)]) from None
        except UnicodeDecodeError as exc:
            raise ModelValidationError(
                [Problem(f"the model is not UTF-8 (byte {exc.start})", file)]
            ) from None
        base_dir = base_dir or Path(source).parent
    # a list may be read from a CSV file beside a model file (or in ``base_dir``); a text from anywhere
    # else (the dashboard's editor, the API, a stored version: no ``base_dir``) names no file: the
    # server's files are not its to read (``csv: /etc/passwd`` became a list of its lines)
    problems: list[Problem] = []
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_DOCUMENT_BYTES:
        raise ModelValidationError([_too_big(len(text.encode("utf-8", "surrogatepass")), file)])
    try:
        loader = ModelLoader(text)
        try:
            node = loader.get_single_node()
            raw = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _Limit as exc:
        raise ModelValidationError([Problem(exc.message, file, exc.line, exc.column)]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        reason = getattr(exc, "problem", None) or str(exc)
        raise ModelValidationError([Problem(f"YAML syntax: {reason}", file, line, col)]) from None
    except RecursionError:
        raise ModelValidationError(
            [Problem(f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels", file, 1, 1)]
        ) from None
    if not isinstance(raw, dict) or node is None:
        raise ModelValidationError([Problem("a model is a YAML mapping with at least 'model:'", file, 1, 1)])
    if _depth(raw) > MAX_DOCUMENT_DEPTH:
        raise ModelValidationError(
            [Problem(f"the document nests deeper than {MAX_DOCUMENT_DEPTH} levels", file, 1, 1)]
        )
    pos = _Positions()
    _walk(node, (), pos, problems, file)
    raw = _resolve_lists(raw, base_dir, pos, problems, file, len(text.encode("utf-8", "surrogatepass")))
    cross = [*_raw_cross_checks(raw, pos, file), *_unbindable(raw, (), raw, pos, file)]
    if not stored:
        cross.extend(stored_spellings(raw, (), pos, file))
    problems.extend(cross)
    try:
        model = ScoringModel.model_validate(raw, context={"cross_checked": True})
    except ValidationError as exc:
        problems.extend(_problems_from(exc, raw, pos, file))
        raise ModelValidationError(problems) from None
    if problems:
        raise ModelValidationError(problems)
    return model


def _too_big(size: int, file: str) -> Problem:
    return Problem(f"model is {size} bytes; at most {MAX_DOCUMENT_BYTES} are allowed", file)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DOCUMENT_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _resolve_lists(
    raw: dict[str, Any], base: Path | None, pos: _Positions, problems: list[Problem], file: str, size: int
) -> dict[str, Any]:
    """Lists read from their CSV files (relative to ``base``; None: a text that may name no file), their
    values trimmed and case-folded. A version stores the model with those values written in (``source.
    stored_text``), which is a model text of at most ``MAX_DOCUMENT_BYTES`` like any other: a list whose
    values take the model (of ``size`` bytes) past it is refused here, at the list, and a file larger than
    that is not read (a 10 MB list file was read, validated, and refused by publishing as "<stored
    text>: model is 12935224 bytes")."""
    lists = raw.get("lists")
    if not isinstance(lists, dict):
        return raw
    resolved: dict[str, Any] = {}
    for name, spec in lists.items():
        if isinstance(spec, list):
            spec = {"values": spec}
        if isinstance(spec, dict) and "csv" in spec and "values" not in spec:
            line, col = pos.nearest(("lists", name, "csv")) or (None, None)
            if base is None:
                problems.append(Problem(
                    f"list {name!r}: only a model file may read a list from a CSV file (validate or publish "
                    "the file with the CLI, which writes its values inline); here write the values", file, line, col
                ))  # fmt: skip
                continue
            spec = dict(spec)
            path = base / str(spec.pop("csv"))
            column = spec.get("column")
            try:
                if path.stat().st_size > MAX_DOCUMENT_BYTES:
                    raise ValueError(
                        f"{path.name} is {path.stat().st_size} bytes; a model with its lists' values written in "
                        f"is at most {MAX_DOCUMENT_BYTES}"
                    )
                spec["values"] = read_list_csv(path, column)
                spec["source"] = str(spec.get("source") or path.name)
            except (OSError, KeyError, ValueError, csv.Error) as exc:
                problems.append(Problem(f"list {name!r}: {exc}", file, line, col))
                continue
            # each value written in as ``value, `` (quoted where YAML needs it: a little more)
            size += sum(len(str(v).encode("utf-8", "surrogatepass")) + 2 for v in spec["values"])
            if size > MAX_DOCUMENT_BYTES:
                problems.append(Problem(
                    f"list {name!r}: with the values of {path.name} written in, the model is at least {size} "
                    f"bytes; at most {MAX_DOCUMENT_BYTES} are allowed", file, line, col
                ))  # fmt: skip
                continue
        if isinstance(spec, dict) and isinstance(spec.get("values"), list):
            spec = {**spec, "values": [v for v in map(list_value, spec["values"]) if v != ""]}
        resolved[name] = spec
    return {**raw, "lists": resolved}


def list_value(value: Any) -> Any:
    """A list value as the model compares it: text trimmed, in NFC and case-folded. An integer past 64
    bits stays a number, for the 64-bit check to report (as text it has up to thousands of digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() >= 64:
        return value
    return fold_case(normalise_text(str(value).strip()))


def read_list_csv(path: Path, column: str | None) -> list[str]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        if not fields:
            raise ValueError(f"{path.name} is empty")
        col = column or fields[0]
        if col not in fields:
            raise KeyError(f"{path.name} has no column {col!r} (columns: {', '.join(fields)})")
        return [row[col] for row in reader if row.get(col)]


def _rule_id(raw: dict[str, Any], loc: Path_) -> str | None:
    if len(loc) >= 2 and loc[0] in RULE_SECTIONS and isinstance(loc[1], int):
        section = raw.get(loc[0])
        if isinstance(section, list) and loc[1] < len(section) and isinstance(section[loc[1]], dict):
            rid = section[loc[1]].get("id")
            return str(rid) if rid is not None else f"{loc[0]}[{loc[1]}]"
    return None


_TAGS = {
    "each",
    "once",
    "threshold",
    "recency",
    "ratio",
    "compare",
    "all",
    "any",
    "not",
    "function-after",
    "function-before",
}


def _clean_loc(loc: Path_, raw: Any) -> Path_:
    """Drop pydantic's union tags from a location, keeping only keys that exist in the document."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(node, dict) and part in node:
            out.append(part)
            node = node[part]
        elif isinstance(node, dict) and part == "negated" and "not" in node:
            out.append("not")
            node = node["not"]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        elif part in _TAGS or (isinstance(part, str) and part.startswith(("function", "tagged", "literal["))):
            continue
        else:
            out.append(part)
            node = None
    return tuple(out)


def _node(raw: Any, loc: Path_) -> Any:
    for part in loc:
        try:
            raw = raw[part]
        except (KeyError, IndexError, TypeError):
            return None
    return raw


def _refine(loc: Path_, raw: Any, message: str) -> tuple[Path_, bool]:
    """Point a condition's error at the key it names (``regex``, ``'colour'``) instead of the whole condition.

    Returns the location and whether the key itself (not its value) is meant.
    """
    node = _node(raw, loc)
    if not isinstance(node, dict):
        return loc, False
    for key in node:
        if f"unknown key {key!r}" in message:
            return (*loc, key), True
    for key in node:
        if re.search(rf"(^|\W){re.escape(str(key))}(\W|$)", message):
            return (*loc, key), False
    return loc, False


def _shown(value: Any) -> str:
    """A value as the author wrote it, shortened: 'twice', 5, a mapping, a list."""
    if isinstance(value, dict):
        return "a mapping (key: value lines)"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, int):
        text = _number_text(value)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number_text(value: int) -> str:
    """An integer as text; one past 128 bits by its size (``0xfff...`` of 5,000 digits is past what
    Python turns into text)."""
    return str(value) if value.bit_length() < 128 else f"an integer of {value.bit_length()} bits"


def _choices(expected: str) -> str:
    """pydantic's "'a', 'b' or 'c'" as "a, b or c"."""
    return expected.replace("'", "")


PATTERN_HINTS = {  # what each pattern a model field must match means, by the pattern
    RULE_ID: "an id: lower-case letters, digits and _, starting with a letter, at most 63 characters",
    r"^[^@\s]+@[^@\s]+$": "an e-mail address such as name@example.com",
    r"^[A-Z_][A-Z0-9_]{0,99}$": "the name of an environment variable in capitals, such as SLACK_URL",
    r"^https?://": "a web address starting with http:// or https://",
    r"^(lead|seller|manager|[^@\s]+@[^@\s]+)$": "lead, seller, manager or an e-mail address",
}


def _field_name(loc: Path_, raw: Any) -> str:
    """The name an author knows a location by: its key (``cap``), a list's name for its items
    (``funnel``), ``levels.1`` for a mapping's numeric key."""
    strings = [p for p in loc if isinstance(p, str)]
    if loc and isinstance(loc[-1], int) and isinstance(_node(raw, loc[:-1]), dict) and strings:
        return f"{strings[-1]}.{loc[-1]}"
    if len(strings) >= 2 and strings[-1].isdigit() and strings[-1] == str(loc[-1]):
        return f"{strings[-2]}.{strings[-1]}"
    return strings[-1] if strings else "model"


def plain_message(err: Mapping[str, Any], field: str) -> str:
    """One pydantic error in the words of the person who wrote the model: the field, the value written,
    what is allowed. pydantic's own text ("Input should be ...") never reaches them."""
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    shown = _shown(value)
    if kind == "union_tag_invalid":
        tags = _choices(str(ctx.get("expected_tags", "")))
        return f"kind {_shown(ctx.get('tag'))} is not a kind of rule: use {tags}"
    if kind == "literal_error":
        return f"{field} is {shown}; it must be one of: {_choices(str(ctx.get('expected', '')))}"
    if kind in ("string_type", "string_sub_type"):
        return f"{field} must be a text, not {shown}"
    if kind in ("float_type", "float_parsing", "int_from_float"):
        return f"{field} must be a number, not {shown}"
    if kind in ("int_type", "int_parsing"):
        return f"{field} must be a whole number, not {shown}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{field} must be true or false, not {shown}"
    if kind in ("finite_number",):
        return f"{field} must be a finite number, not {shown}"
    bounds = {
        "greater_than": ("greater than", "gt"),
        "greater_than_equal": ("at least", "ge"),
        "less_than": ("less than", "lt"),
        "less_than_equal": ("at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{field} must be {words} {ctx.get(key):g}, not {shown}"
    if kind == "string_pattern_mismatch":
        return f"{field} {shown} is not {PATTERN_HINTS.get(str(ctx.get('pattern')), 'in the form it needs')}"
    if kind == "string_too_short":
        return f"{field} must not be empty"
    if kind == "string_too_long":
        return f"{field} is longer than {ctx.get('max_length')} characters"
    if kind == "too_short":
        return f"{field} needs at least {ctx.get('min_length')} item(s), it has {ctx.get('actual_length')}"
    if kind == "too_long":
        return f"{field} has more than {ctx.get('max_length')} items"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{field} must be a mapping (key: value lines), not {shown}"
    if kind in ("list_type", "tuple_type", "set_type"):
        return f"{field} must be a list, not {shown}"
    if kind == "union_tag_not_found":
        return f"{field} needs a kind"
    return str(err["msg"]).removeprefix("Value error, ")


def _problems_from(
    exc: ValidationError, raw: dict[str, Any], pos: _Positions, file: str
) -> Iterator[Problem]:
    seen: set[tuple[Any, ...]] = set()
    errors = exc.errors(include_url=False)
    # a value that may be one of several things (a duration or 'none') fails once per alternative: the
    # alternatives' own explanation is kept and the literal one added to it ("..., or none")
    literal_at: dict[Path_, str] = {}
    explained: set[Path_] = set()
    for err in errors:
        loc = _clean_loc(tuple(err["loc"]), raw)
        if err["type"] == "literal_error":
            literal_at[loc] = _choices(str((err.get("ctx") or {}).get("expected", "")))
        else:
            explained.add(loc)
    # an unknown rule kind says so once; the keys that kind would have had are not "unknown keys"
    bad_kind = {_clean_loc(tuple(err["loc"]), raw) for err in errors if err["type"] == "union_tag_invalid"}
    for err in errors:
        loc = _clean_loc(tuple(err["loc"]), raw)
        kind = err["type"]
        if any(loc[: len(b)] == b and loc != b for b in bad_kind):
            continue
        if kind == "literal_error" and loc in explained and len(err["loc"]) > len(loc):
            continue
        field = _field_name(loc, raw)
        message = plain_message(err, field)
        if kind == "value_error" and message.startswith("duration "):
            message = f"{field} {message.removeprefix('duration ')}"
        if kind == "value_error" and loc in literal_at:
            message = f"{message}, or {literal_at[loc]}"
        loc, key_pos = _refine(loc, raw, message)
        inner = loc[2:] if _rule_id(raw, loc) else loc
        if kind == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}"
        elif kind == "missing":
            message = f"missing required key {loc[-1]!r}"
        line, col = pos.nearest(loc, key=key_pos or kind == "extra_forbidden") or (None, None)
        key = (line, col, message)
        if key in seen:
            continue
        seen.add(key)
        field_path = ".".join(str(p) for p in inner) or None
        yield Problem(message, file, line, col, rule=_rule_id(raw, loc), field=field_path)


def _raw_cross_checks(raw: dict[str, Any], pos: _Positions, file: str) -> Iterator[Problem]:
    lists: dict[str, Any] = raw["lists"] if isinstance(raw.get("lists"), dict) else {}
    groups: list[Any] = raw["groups"] if isinstance(raw.get("groups"), list) else []
    group_ids = {g.get("id") for g in groups if isinstance(g, dict) and isinstance(g.get("id"), str)}
    seen: dict[Any, Path_] = {}
    for section in ("fit", "engagement", "groups"):
        items = raw.get(section)
        if not isinstance(items, list):
            continue
        for i, rule in enumerate(items):
            if not isinstance(rule, dict):
                continue
            rid = rule.get("id")
            if not isinstance(rid, str | int | float | bool):
                rid = None  # not an id at all (a mapping, a list): the schema says so at its line
            if rid is not None and rid in seen:
                line, col = pos.nearest((section, i, "id")) or (None, None)
                yield Problem(f"duplicate id {rid!r}", file, line, col, rule=str(rid), field="id")
            seen[rid] = (section, i)
            group = rule.get("group")
            if section == "engagement" and isinstance(group, str) and group not in group_ids:
                line, col = pos.nearest((section, i, "group")) or (None, None)
                yield Problem(f"unknown group {group!r}", file, line, col, rule=str(rid), field="group")
            cond_key = "when" if section == "fit" else "where"
            subject = "attribute" if section == "fit" else "property"
            yield from _condition_checks(
                rule.get(cond_key), (section, i, cond_key), lists, subject, str(rid), pos, file
            )
    lifecycle = raw.get("lifecycle")
    transitions = lifecycle.get("transitions") if isinstance(lifecycle, dict) else None
    for i, transition in enumerate(transitions if isinstance(transitions, list) else []):
        when = transition.get("when") if isinstance(transition, dict) else None
        named = when.get("rules_met") if isinstance(when, dict) else None
        for j, rule_id in enumerate(named if isinstance(named, list) else []):
            if isinstance(rule_id, str) and rule_id not in seen:
                line, col = pos.nearest(("lifecycle", "transitions", i, "when", "rules_met", j)) or (
                    None,
                    None,
                )
                tid = str(transition.get("id"))
                yield Problem(
                    f"transition {tid}: rules_met names unknown rule {rule_id!r}",
                    file,
                    line,
                    col,
                    rule=tid,
                    field="rules_met",
                )
    accounts = lifecycle.get("accounts") if isinstance(lifecycle, dict) else None
    pqa = accounts.get("pqa") if isinstance(accounts, dict) else None
    named = pqa.get("rules_met") if isinstance(pqa, dict) else None
    for j, rule_id in enumerate(named if isinstance(named, list) else []):
        if isinstance(rule_id, str) and rule_id not in seen:
            line, col = pos.nearest(("lifecycle", "accounts", "pqa", "rules_met", j)) or (None, None)
            yield Problem(
                f"accounts.pqa: rules_met names unknown rule {rule_id!r}",
                file,
                line,
                col,
                rule="accounts",
                field="rules_met",
            )


_INT64 = 2**63  # integers a store binds: -2**63 .. 2**63 - 1 (SQLite INTEGER, PostgreSQL BIGINT)
_NOT_FINITE = {math.inf: ".inf", -math.inf: "-.inf"}


def _unbindable(
    value: Any, path: Path_, raw: dict[str, Any], pos: _Positions, file: str
) -> Iterator[Problem]:
    """Values no store can bind, which would pass validation and fail publishing or scoring: text with a
    NUL character (PostgreSQL refuses it) or a lone surrogate (not UTF-8), integers beyond 64 bits,
    numbers that are not finite."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _unbindable(item, (*path, key), raw, pos, file)
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from _unbindable(item, (*path, i), raw, pos, file)
        return
    why = None
    if isinstance(value, str):
        if "\x00" in value:
            why = "has a NUL character (\\0)"
        elif not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError:
                why = "has a lone surrogate (not UTF-8)"
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and not -_INT64 <= value < _INT64:
        why = f"{_number_text(value)} is an integer beyond 64 bits"
    elif isinstance(value, int) and _compared(path) and int(float(value)) != value:
        why = (
            f"{value} is not exact as a number (numbers compare as 64-bit floats, exact up to 2**53: it would"
            f" equal {int(float(value))}); quote it to compare as text: '{value}'"
        )
    elif isinstance(value, float) and not math.isfinite(value):
        why = f"{_NOT_FINITE.get(value, '.nan')} is not a finite number"
    if why is None:
        return
    line, col = pos.nearest(path) or (None, None)
    rule, at = None, path
    if len(path) >= 2 and path[0] in ("fit", "engagement", "groups") and isinstance(path[1], int):
        rule, at = str(raw[path[0]][path[1]].get("id")), path[2:]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in at).lstrip(".")
    yield Problem(why, file, line, col, rule=rule, field=field or None)


def _compared(path: Path_) -> bool:
    """Whether a value at ``path`` is a condition's number (``equals``, ``gte``, an item of ``in`` or
    ``between``, …), which every engine compares as a double."""
    keys = [p for p in path[-2:] if isinstance(p, str)]
    return bool(keys) and keys[-1] in COMPARED


# the keys whose value names a lead's (or, ``account.…``, its account's) attribute
ATTRIBUTE_KEYS = frozenset({"attribute", "unsubscribed_attribute", "consent_attribute"})


def stored_spellings(
    value: Any, path: Path_, pos: _Positions, file: str, rid: str | None = None
) -> Iterator[Problem]:
    """Every attribute the model names as the store spells it: imports and traits keep a name in its
    canonical form (``model.names.canonical``: ``Company Size``, ``companySize`` and ``company_size``
    are all ``employees``; ``title`` and ``role`` are ``job_title``), so a rule naming ``company_size``
    matched no lead, and ``validate`` said ok. The name must be what the store keeps: a name that is not a
    field name at all is the schema's to refuse."""

    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from stored_spellings(item, (*path, i), pos, file, rid)
        return
    if not isinstance(value, dict):
        return
    if len(path) == 2 and path[0] in ("fit", "engagement") and isinstance(value.get("id"), str):
        rid = value["id"]
    for key, item in value.items():
        if key in ATTRIBUTE_KEYS and isinstance(item, str) and is_field_name(item):
            parts = item.split(".")
            spelt = ".".join(canonical(part) for part in parts)
            if spelt != item:
                line, col = pos.nearest((*path, key)) or (None, None)
                yield Problem(
                    f"attribute {item!r} matches no lead: imports and traits keep it as {spelt!r} (an "
                    f"attribute's name is stored in its canonical form: lower case, words joined by _, and "
                    f"the common names of a field as one); write {spelt!r}",
                    file, line, col, rule=rid, field=key,
                )  # fmt: skip
        else:
            yield from stored_spellings(item, (*path, key), pos, file, rid)


def _condition_checks(
    cond: Any, path: Path_, lists: dict[str, Any], subject: str, rid: str, pos: _Positions, file: str
) -> Iterator[Problem]:
    if isinstance(cond, list):
        for i, item in enumerate(cond):
            yield from _condition_checks(item, (*path, i), lists, subject, rid, pos, file)
        return
    if not isinstance(cond, dict):
        return
    for key in ("all", "any", "not"):
        if key in cond:
            yield from _condition_checks(cond[key], (*path, key), lists, subject, rid, pos, file)
    if "in_list" in cond and isinstance(cond["in_list"], str) and cond["in_list"] not in lists:
        line, col = pos.nearest((*path, "in_list")) or (None, None)
        known = ", ".join(sorted(lists)) or "none declared"
        yield Problem(
            f"unknown list {cond['in_list']!r} (lists: {known})", file, line, col, rule=rid, field="in_list"
        )
    other = "property" if subject == "attribute" else "attribute"
    if other in cond:
        line, col = pos.nearest((*path, other), key=True) or (None, None)
        hint = "fit rules compare 'attribute'" if subject == "attribute" else "event rules compare 'property'"
        yield Problem(f"{hint}, not {other!r}", file, line, col, rule=rid, field=other)


def dump_model(model: ScoringModel) -> str:
    """The model as YAML; ``load_model(dump_model(m)) == m`` (lists are written inline)."""
    data = _integral(model.model_dump(mode="json", exclude_defaults=True, by_alias=True))
    data = {"model": model.model, **{k: v for k, v in data.items() if k != "model"}}
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=110)


def _integral(value: Any) -> Any:
    """Write 20.0 as 20: models are read by people. Only where the integer reads back as the same float
    (up to 2**53): 1.0e+19 written as 10000000000000000000 would be refused as an integer no float holds
    exactly (or beyond 64 bits), and publishing, which reloads the model it stored, failed."""
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


def loads_model(text: str, name: str = "<model>", *, stored: bool = False) -> ScoringModel:
    """Load a model from YAML text (the dashboard's editor, a learned model; ``stored``: a published
    version read back, see ``load_model``)."""
    return load_model(name, text=text, stored=stored)
