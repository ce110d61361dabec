"""The author's YAML text is the model's source of truth: what a version stores, and edits that keep it.

A published version stores the text its author wrote, comments and order included (``model show`` and
the dashboard print it back). Two things change that text, and both touch only the lines they must:

- ``stored_text``: a list read from a CSV file is written inline (a stored version cannot reach the
  file later), its entry's other keys (``column`` as a note) and comments kept;
- the rule builder's edits (``set_rule``, ``remove_rule``, ``set_list``): one rule or list entry is
  replaced, added or removed.

Each edit loads only the block it changes with ruamel.yaml's round-trip loader (comments inside the block
survive), dumps it back and splices it into the text; every other line stays byte-identical. A full
round-trip through ruamel would re-wrap the multi-line flow lists people write (``in: [a, b,`` ⏎ ``c]``).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from leadscore.errors import ModelError
from leadscore.model.scoring_model import ScoringModel
from leadscore.model.yaml_io import dump_model, list_value, loads_model, read_list_csv

RULE_SECTIONS = ("fit", "engagement", "groups")
CONDITION_KEYS = ("when", "where", "event", "exclude")  # written in flow style: one line per condition


def _yaml() -> YAML:
    y = YAML()
    y.preserve_quotes = True
    y.width = 110
    y.indent(mapping=2, sequence=4, offset=2)
    return y


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _load(text: str) -> Any:
    try:
        return _yaml().load(text)
    except Exception as exc:  # ruamel raises many kinds; the caller needs one
        raise ModelError(f"the model must be valid YAML before the builder can edit it: {exc}") from None


def _dump(data: Any) -> str:
    out = io.StringIO()
    _yaml().dump(data, out)
    return "".join(line.rstrip() + "\n" for line in out.getvalue().splitlines())  # wrapped flow lists


def _indent(block: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in _lines(block))


def _dedent(lines: list[str], spaces: int) -> str:
    return "".join(line[spaces:] if line[:spaces].isspace() else line.lstrip(" ") for line in lines)


def _trailing_kept(lines: list[str], start: int, end: int) -> int:
    """The end of a block less its trailing blank and comment lines (they belong to what follows)."""
    while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
        end -= 1
    return end


def _next_top_level(lines: list[str], after: int) -> int:
    """The first line after ``after`` that starts a top-level key (or the end of the text)."""
    for i in range(after + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line[0].isspace() and not line.startswith("#"):
            return i
    return len(lines)


def _seq_spans(lines: list[str], doc: Any, section: str) -> list[tuple[int, int, int]]:
    """(first line, end line, dash column) of every item of a top-level block sequence."""
    seq = doc.get(section)
    if not isinstance(seq, CommentedSeq) or seq.fa.flow_style():
        raise ModelError(f"'{section}' must be a list of rules written one item per '-' line")
    starts = [seq.lc.item(i)[0] for i in range(len(seq))]
    section_line = doc.lc.key(section)[0]
    stop = _next_top_level(lines, section_line)
    spans = []
    for i, start in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else stop
        dash = len(lines[start]) - len(lines[start].lstrip(" "))
        spans.append((start, _trailing_kept(lines, start, end), dash))
    return spans


def _render_item(item: Any, dash: int) -> str:
    # the dumper writes a sequence item at offset 2 ("  - id: ..."): moved to the section's own dash column
    return _indent(_dedent(_lines(_dump([item])), 2), dash)


def _flow_conditions(rule: CommentedMap) -> CommentedMap:
    for key in CONDITION_KEYS:
        value = rule.get(key)
        if isinstance(value, dict | list):
            rule[key] = _flow(value)
    return rule


def _flow(value: Any) -> Any:
    """A condition as nested flow-style nodes: ``{attribute: job_title, regex: "x"}`` on one line."""
    if isinstance(value, dict):
        node = CommentedMap((k, _flow(v)) for k, v in value.items())
        node.fa.set_flow_style()
        return node
    if isinstance(value, list):
        seq = CommentedSeq(_flow(v) for v in value)
        seq.fa.set_flow_style()
        return seq
    return value


def _find(doc: Any, section: str, rule_id: str) -> int | None:
    seq = doc.get(section)
    if not isinstance(seq, list):
        return None
    for i, item in enumerate(seq):
        if isinstance(item, dict) and item.get("id") == rule_id:
            return i
    return None


def set_rule(text: str, section: str, rule: dict[str, Any], replaces: str | None = None) -> str:
    """The text with ``rule`` in ``section``: in place of the rule with id ``replaces`` (keys the new rule
    keeps stay where they were, with their comments), else appended after the section's last rule."""
    if section not in RULE_SECTIONS:
        raise ModelError(f"unknown section {section!r}: one of {', '.join(RULE_SECTIONS)}")
    lines = _lines(text)
    doc = _load(text)
    if not isinstance(doc, dict):
        raise ModelError("a model is a YAML mapping with at least 'model:'")
    index = _find(doc, section, replaces) if replaces is not None else None
    if replaces is not None and index is None:
        raise ModelError(f"no rule {replaces!r} in '{section}'")
    if section not in doc or doc.get(section) is None:
        block = f"\n{section}:\n" + _render_item(_flow_conditions(CommentedMap(rule)), 2)
        body = "".join(lines)
        return body + ("" if body.endswith("\n") or not body else "\n") + block
    spans = _seq_spans(lines, doc, section)
    if index is None:
        if not spans:
            raise ModelError(f"'{section}' is empty; write its first rule in YAML")
        _, end, dash = spans[-1]
        new = _render_item(_flow_conditions(CommentedMap(rule)), dash)
        return "".join([*lines[:end], new, *lines[end:]])
    start, end, dash = spans[index]
    old = _load(_dedent(lines[start:end], dash))[0]
    for key in [k for k in old if k not in rule]:
        del old[key]
    for key, value in rule.items():
        if old.get(key) != value:
            old[key] = value
    block = _keep_unchanged(lines[start:end], _render_item(_flow_conditions(old), dash))
    return "".join([*lines[:start], block, *lines[end:]])


def _same(line: str) -> str:
    """A line as the dumper may respace it: the gap before a trailing comment and trailing blanks."""
    return re.sub(r"\s+#", " #", line).rstrip()


def _keep_unchanged(old: list[str], new: str) -> str:
    """The re-dumped block with every line that did not change written exactly as it was (the dumper
    moves an end-of-line comment's column)."""
    written = {_same(line): line for line in old}
    return "".join(written.get(_same(line), line) for line in _lines(new))


def remove_rule(text: str, section: str, rule_id: str) -> str:
    """The text without the rule ``rule_id`` of ``section`` (its lines only)."""
    lines = _lines(text)
    doc = _load(text)
    index = _find(doc, section, rule_id) if isinstance(doc, dict) else None
    if index is None:
        raise ModelError(f"no rule {rule_id!r} in '{section}'")
    start, end, _ = _seq_spans(lines, doc, section)[index]
    return "".join([*lines[:start], *lines[end:]])


def _map_spans(lines: list[str], doc: Any, section: str) -> Iterator[tuple[str, int, int, int]]:
    """(key, first line, end line, key column) of every entry of a top-level block mapping."""
    mapping = doc.get(section)
    if not isinstance(mapping, CommentedMap) or mapping.fa.flow_style():
        return
    keys = list(mapping)
    starts = [mapping.lc.key(k)[0] for k in keys]
    stop = _next_top_level(lines, doc.lc.key(section)[0])
    for i, key in enumerate(keys):
        end = starts[i + 1] if i + 1 < len(starts) else stop
        column = mapping.lc.key(key)[1]
        yield key, starts[i], _trailing_kept(lines, starts[i], end), column


def _edit_entry(
    text: str, section: str, name: str, edit: Callable[[CommentedMap], CommentedMap]
) -> str | None:
    lines = _lines(text)
    doc = _load(text)
    if not isinstance(doc, dict):
        return None
    for key, start, end, column in _map_spans(lines, doc, section):
        if key == name:
            entry = _load(_dedent(lines[start:end], column))
            if not isinstance(entry, CommentedMap):
                return None
            return "".join([*lines[:start], _indent(_dump(edit(entry)), column), *lines[end:]])
    return None


def set_list(text: str, name: str, values: list[str], description: str = "") -> str:
    """The text with the named list holding ``values`` (added after the last list when it is new)."""
    spec: dict[str, Any] = {"description": description} if description else {}
    flow = CommentedSeq(values)
    flow.fa.set_flow_style()

    def edit(entry: CommentedMap) -> CommentedMap:
        body = entry[name] if isinstance(entry[name], CommentedMap) else CommentedMap()
        for key in ("csv", "column"):
            body.pop(key, None)
        if description:
            body["description"] = description
        body["values"] = flow
        entry[name] = body
        return entry

    edited = _edit_entry(text, "lists", name, edit)
    if edited is not None:
        return edited
    new = CommentedMap([(name, CommentedMap([*spec.items(), ("values", flow)]))])
    lines = _lines(text)
    doc = _load(text)
    spans = list(_map_spans(lines, doc, "lists"))
    if spans:
        _, _, end, column = spans[-1]
        return "".join([*lines[:end], _indent(_dump(new), column), *lines[end:]])
    if isinstance(doc, dict) and "lists" in doc:
        raise ModelError("'lists' must be written one list per line to add a list with the builder")
    body = "".join(lines)
    return body + ("" if body.endswith("\n") or not body else "\n") + "\nlists:\n" + _indent(_dump(new), 2)


def stored_text(text: str, base_dir: Path) -> str:
    """The text a version stores: the author's, with every list read from a CSV file written inline (its
    values as the loader reads them, the file's name as its ``source``); all else byte-identical."""
    doc = _load(text)
    lists = doc.get("lists") if isinstance(doc, dict) else None
    if not isinstance(lists, dict):
        return text
    for name, spec in list(lists.items()):
        if not (isinstance(spec, dict) and "csv" in spec and "values" not in spec):
            continue
        path = base_dir / str(spec["csv"])
        column = spec.get("column")
        values = [v for v in map(list_value, read_list_csv(path, column)) if v]

        def edit(
            entry: CommentedMap, name: str = name, source: str = path.name, values: list[str] = values
        ) -> CommentedMap:
            body = entry[name]
            if not body.get("source"):
                body.insert(list(body).index("csv"), "source", source)
            del body["csv"]  # ``column`` stays: the loader keeps it as a note of where the values came from
            flow = CommentedSeq(values)
            flow.fa.set_flow_style()
            body["values"] = flow
            return entry

        edited = _edit_entry(text, "lists", name, edit)
        if edited is None:
            raise ModelError(f"list {name!r}: write it one key per line to publish it from a CSV file")
        text = edited
    return text


def read_stored_text(path: Path) -> str:
    """A model file's text as a version stores it (``stored_text`` relative to the file's folder)."""
    return stored_text(path.read_text(encoding="utf-8"), path.parent)


def version_text(model: ScoringModel, text: str | None) -> str:
    """What a version of ``model`` stores: the author's ``text`` when given (it must load to ``model``),
    else the model dumped (a model made by a program: the learner, the review's proposals)."""
    if text is None:
        return dump_model(model)
    if loads_model(text, "<stored text>", stored=True) != model:
        raise ModelError("the stored text does not load to the model being published")
    return text
