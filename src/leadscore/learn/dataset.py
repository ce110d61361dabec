"""Learning data: one row per (lead, as-of time) with its features and its censoring-aware label.

Two sources: a flat CSV (a row per lead, an outcome column, no times: every row is labelled), read with
the same header names and value types ``leadscore import leads`` stores; or the store, point-in-time
(``store_data``): features as of each cutoff, the outcome after it.
"""

from __future__ import annotations

import datetime
import hashlib
import math
import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from leadscore.errors import InputError, Problem
from leadscore.ingest.attributes import canonical
from leadscore.ingest.csv_import import TEXT_FIELDS, ImportOptions, open_csv, read_as_one, read_as_one_message
from leadscore.learn.features import (
    PLACEHOLDERS,
    STOP_WORDS,
    TITLE_GROUPS,
    WORD,
    Attribute,
    Feature,
    Kind,
    TitleWords,
    category,
    number,
)
from leadscore.model.names import MAX_FIELD_PART, is_field_name

HOLDOUT_SHARE = 0.3
TRUE_TEXTS = frozenset({"1", "true", "yes", "y", "converted", "won"})
FALSE_TEXTS = frozenset({"0", "false", "no", "n"})
# A text column is free text (a job title typed by each lead) when its values seen in at least
# COMMON_ROWS rows (or COMMON_SHARE of the rows) cover less than half of the rows that have a value:
# most rows would fall into "other". It is learned from by the words it mentions, at most MAX_WORDS
# features, each word (or group of words, TITLE_GROUPS) mentioned in that many rows.
COMMON_ROWS = 10
COMMON_SHARE = 0.01
MIN_FREE_TEXT_VALUES = 20
MAX_WORDS = 12


@dataclass(frozen=True)
class Dataset:
    """Feature matrix (object values exactly as stored), labels, and where each row came from."""

    features: tuple[Feature, ...]
    X: npt.NDArray[Any]
    y: npt.NDArray[np.int64]
    keys: tuple[str, ...]  # stable row key: the id column, or the lead's id
    lead_ids: npt.NDArray[np.int64] | None = None
    as_of: npt.NDArray[np.int64] | None = None
    dropped: tuple[tuple[str, str], ...] = ()  # (column, why it is not a feature)
    excluded: dict[str, int] = field(default_factory=dict)  # rows without a label, by reason
    lines: tuple[int, ...] = ()  # CSV: each row's number in the file (header = row 1)
    times: npt.NDArray[np.float64] | None = None  # CSV with a time column: each row's time (NaN: none)
    notes: tuple[str, ...] = ()  # how the data was read, where a reader should know (the outcome column)
    columns: tuple[str, ...] = ()  # CSV: the names its columns are read as
    unread: frozenset[str] = frozenset()  # CSV read ``only`` some attributes: the headers not read

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        return replace(
            self,
            X=self.X[mask],
            y=self.y[mask],
            keys=tuple(k for k, m in zip(self.keys, mask, strict=True) if m),
            lines=tuple(n for n, m in zip(self.lines, mask, strict=True) if m) if self.lines else (),
            lead_ids=None if self.lead_ids is None else self.lead_ids[mask],
            as_of=None if self.as_of is None else self.as_of[mask],
            times=None if self.times is None else self.times[mask],
        )

    def split(self, share: float = HOLDOUT_SHARE) -> tuple[Dataset, Dataset]:
        """(train, holdout): a row is held out by a hash of its key, so the split never changes."""
        mask = np.fromiter((in_holdout(k, share) for k in self.keys), dtype=bool, count=len(self.keys))
        return self.take(~mask), self.take(mask)

    def column(self, name: str) -> npt.NDArray[Any]:
        return self.X[:, [f.name for f in self.features].index(name)]


def in_holdout(key: str, share: float = HOLDOUT_SHARE) -> bool:
    """True for about ``share`` of keys, the same keys on every run and machine."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def outcome_value(value: Any) -> int | None:
    """1 / 0 from a CSV outcome cell (1, true, yes, won ...); None when blank or unreadable."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return int(value != 0) if value in (0, 1) else None
    if isinstance(value, str):
        text = value.strip().lower()
        return 1 if text in TRUE_TEXTS else 0 if text in FALSE_TEXTS else None
    return None


# ISO dates and times (2022-09-01, 2022-09-01T10:00:00Z) and yyyymmdd integers (20220901): calendar days
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$")


def is_date(value: Any) -> bool:
    """True for a calendar date or time: ISO-8601 text, or a whole number spelling a valid yyyymmdd."""
    if isinstance(value, str):
        return bool(_ISO_DATE.match(value.strip())) and _valid_day(value.strip()[:10].replace("-", ""))
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value == int(value) and 1900_01_01 <= value <= 2999_12_31 and _valid_day(str(int(value)))
    return False


# dates as spreadsheets spell them in other orders, with or without a time: 03/01/2024, 1.3.2024,
# 2024/03/01, 20240301 (as text), 1 Mar 2024, 01-Mar-2024, March 1, 2024 (which of day and month comes
# first does not matter here: either way the column is a calendar day, not a feature)
_TIME = r"(?:[ T]\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:\s?[ap]\.?m\.?)?)?"
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH = (r"(?P<month>jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
          r"sep(?:t|tember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?")  # fmt: skip
_SPELT = [
    re.compile(r"^(?P<a>\d{1,2})[/.-](?P<b>\d{1,2})[/.-](?P<year>\d{4})" + _TIME + "$"),
    re.compile(r"^(?P<year>\d{4})/(?P<a>\d{1,2})/(?P<b>\d{1,2})" + _TIME + "$"),
    re.compile(r"^(?P<year>\d{4})(?P<a>\d{2})(?P<b>\d{2})$"),  # 20240301 in a column of texts
    re.compile(r"^(?P<a>\d{1,2})[ -]" + _MONTH + r"[ -](?P<year>\d{4})" + _TIME + "$"),
    re.compile(r"^" + _MONTH + r" (?P<a>\d{1,2}),? (?P<year>\d{4})" + _TIME + "$"),
]


def spelt_date(value: Any) -> bool:
    """True for a text spelling a valid calendar day in one of the spreadsheet orders of ``_SPELT``."""
    if not isinstance(value, str):
        return False
    text = value.strip().lower()
    for pattern in _SPELT:
        found = pattern.match(text)
        if found is None:
            continue
        parts = found.groupdict()
        year, a = int(parts["year"]), int(parts["a"])
        if parts.get("month"):
            return _valid_date(year, _MONTHS.index(parts["month"][:3]) + 1, a)
        b = int(parts["b"])
        return _valid_date(year, a, b) or _valid_date(year, b, a)
    return False


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _valid_day(digits: str) -> bool:
    try:
        datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    return True


def infer_kind(values: Iterable[Any]) -> Kind:
    """Numeric when every present value is a number, else categorical."""
    present = [v for v in values if v is not None]
    return "numeric" if present and all(not math.isnan(number(v)) for v in present) else "categorical"


def choose_columns(
    rows: Sequence[dict[str, Any]],
    names: Sequence[str],
    *,
    categorical: Iterable[str] = (),
    placeholders: tuple[str, ...] = PLACEHOLDERS,
) -> tuple[list[Feature], list[tuple[str, str]]]:
    """Features from attribute columns; constant and identifier-like columns are dropped with a reason."""
    forced = set(categorical)
    features: list[Feature] = []
    dropped: list[tuple[str, str]] = []
    # the lead's and the account's copy of one quantity (employees, account.employees): one feature
    copies = {n: n.removeprefix("account.") for n in names if n.startswith("account.") and n[8:] in names}
    for name in names:
        if name in copies.values():
            dropped.append((name, f"read as account.{name} where the account has none"))
            continue
        source = Attribute(name, copies.get(name))
        label = f"{copies[name]} (account, else lead)" if name in copies else name
        values = [source.value(r) for r in rows]
        kind: Kind = "categorical" if name in forced else infer_kind(values)
        keys = [category(v, placeholders) for v in values]
        present = [k for k in keys if k is not None]
        distinct = len({repr(k) for k in present})
        if distinct <= 1:
            dropped.append((name, "constant (one value, or none)"))
        elif all(is_date(v) or spelt_date(v) for v in values if v is not None):
            # a rule on a calendar day (``lt: 20220901``) stops meaning anything the day after learning
            dropped.append((name, "a date (a calendar day is not a feature; turn it into an age first)"))
        elif distinct == len(rows) and (kind == "categorical" or len(present) == len(rows)):
            dropped.append((name, "an identifier (a different value in every row)"))
        elif kind == "categorical" and source.fallback is None and free_text(present):
            words = title_words(name, values, placeholders)
            if words:
                features.extend(words)
            else:
                dropped.append((name, "free text in which no word is frequent"))
        else:
            features.append(Feature(label, kind, source))
    return features, dropped


def free_text(keys: Sequence[Any]) -> bool:
    """True when the values seen in enough rows cover less than half of ``keys`` (the present values)."""
    counts = Counter(k for k in keys if isinstance(k, str))
    if len(counts) < MIN_FREE_TEXT_VALUES:
        return False
    common = max(COMMON_ROWS, COMMON_SHARE * len(keys))
    return sum(c for c in counts.values() if c >= common) < len(keys) / 2


def title_words(name: str, values: Sequence[Any], placeholders: tuple[str, ...]) -> list[Feature]:
    """Features for the words a free-text column mentions: a group of TITLE_GROUPS where any of its
    words is mentioned, else a single word, each in at least COMMON_ROWS rows (or COMMON_SHARE); the
    most frequent MAX_WORDS."""
    texts = [v.lower() for v in values if isinstance(v, str) and category(v, placeholders) is not None]
    rows_with: Counter[str] = Counter(w for t in texts for w in set(WORD.findall(t)) - STOP_WORDS)
    common = max(COMMON_ROWS, COMMON_SHARE * len(texts))
    grouped = {w for words in TITLE_GROUPS.values() for w in words}
    found: list[tuple[int, str, tuple[str, ...]]] = []
    for label, words in TITLE_GROUPS.items():
        seen = tuple(w for w in words if rows_with[w])
        rows = sum(1 for t in texts if set(WORD.findall(t)) & set(seen))
        if seen and rows >= common:
            found.append((rows, label, seen))
    found += [(n, w, (w,)) for w, n in rows_with.items() if w not in grouped and n >= common]
    found.sort(key=lambda f: (-f[0], f[1]))
    return [
        Feature(f"{name} mentions {label}", "categorical", TitleWords(name, words, label, placeholders))
        for _, label, words in found[:MAX_WORDS]
    ]


def attribute_value(feature: Feature, row: dict[str, Any]) -> Any:
    """A fit feature's value for a row of attributes (an attribute, the account's else the lead's, or
    whether a free text mentions a word)."""
    src = feature.source
    if isinstance(src, TitleWords):
        return src.value(row.get(src.field))
    assert isinstance(src, Attribute)
    return src.value(row)


def csv_data(
    path: Path,
    outcome: str,
    *,
    id_column: str | None = None,
    exclude: Iterable[str] = (),
    categorical: Iterable[str] = (),
    placeholders: tuple[str, ...] = PLACEHOLDERS,
    features: Sequence[Feature] | None = None,
    time_column: str | None = None,
    only: Collection[str] | None = None,
) -> Dataset:
    """A flat CSV of leads with an outcome column; ``exclude`` names columns that must not be features
    (sales-entered fields, anything recorded after the outcome). ``features``: read these (a test set
    for a model learned on another file) instead of choosing them; ``time_column``: each row's time, for a
    time-forward holdout (never a feature). ``only``: read these attributes besides the outcome, id and
    time columns, and no other column (a model's fields: a column it does not read has no cell that can
    sink a row)."""
    file = str(path)
    csv_file = open_csv(path, ImportOptions())
    if only is not None:
        wanted = {*only, canonical(outcome), *(canonical(c) for c in (id_column, time_column) if c)}
        csv_file = replace(csv_file, columns=[c if c in wanted else None for c in csv_file.columns])
    columns = {c for c in csv_file.columns if c}
    target = canonical(outcome)
    key = canonical(id_column) if id_column else None
    if target not in columns:
        raise InputError(Problem(f"no outcome column {outcome!r}", file, 1))
    if key is not None and key not in columns:
        raise InputError(Problem(f"no id column {id_column!r}", file, 1))
    time_key = canonical(time_column) if time_column else None
    if time_key is not None and time_key not in columns:
        raise InputError(Problem(f"no time column {time_column!r} (--holdout time:COLUMN)", file, 1))
    if key == target:
        raise InputError(Problem(f"--id and --outcome name the same column ({id_column!r})", file, 1))
    exclude, categorical = tuple(exclude), tuple(categorical)
    for option, name in [*(("--exclude", n) for n in exclude), *(("--categorical", n) for n in categorical)]:
        if canonical(name) not in columns:
            raise InputError(Problem(f"{option} {name!r} names no column of the file", file, 1))
    read = {target, *([key] if key else []), *([time_key] if time_key else [])}
    _one_column_each(csv_file.headers, csv_file.columns, read, file)
    if features is not None:
        _features_present(features, columns, file)
    rows: list[dict[str, Any]] = []
    numbers: list[int] = []
    problems: list[Problem] = []  # every bad row is said at once, not one a run
    for item in csv_file.rows():
        if isinstance(item, Problem):
            problems.append(item)
            continue
        rows.append(item.values)
        numbers.append(item.number)
    if problems:
        raise InputError(*problems)
    labels, notes = outcome_labels([r.get(target) for r in rows], numbers, outcome, file)
    if time_key is not None:
        _times_readable([r.get(time_key) for r in rows], numbers, time_column or time_key, file)
    kept = [(r, y, n) for r, y, n in zip(rows, labels, numbers, strict=True) if y is not None]
    skip = {target, *(canonical(c) for c in exclude), *TEXT_FIELDS, *([key] if key else [])}
    skip |= {time_key} if time_key else set()
    names = sorted({k for r, _, _ in kept for k in r} - skip)
    # a header can read as a name longer than a rule may name (NFKC lengthens some letters): no feature,
    # as the store's attributes are read (``store_data``), or learn writes a model it cannot load
    unnamed = f"a name over {MAX_FIELD_PART} characters, which no rule can name"
    dropped: list[tuple[str, str]] = [(n, unnamed) for n in names if not is_field_name(n)]
    names = [n for n in names if is_field_name(n)]
    if features is None:
        chosen, unfit = choose_columns(
            [r for r, _, _ in kept], names, categorical=categorical, placeholders=placeholders
        )
        features, dropped = chosen, [*dropped, *unfit]
    dropped.extend((canonical(c), "excluded (outcome or sales-entered)") for c in exclude)
    X = np.empty((len(kept), len(features)), dtype=object)
    for i, (r, _, _) in enumerate(kept):
        X[i] = [attribute_value(f, r) for f in features]
    for j, f in enumerate(features):
        # a test file's text where training read numbers: the estimator would read it as missing
        if f.kind != "numeric":
            continue
        bad = next((i for i, v in enumerate(X[:, j]) if v is not None and math.isnan(number(v))), None)
        if bad is not None:
            raise InputError(Problem(f"{X[bad, j]!r} is not a number; feature {f.name!r} is numeric in the "
                                     "training file", file, kept[bad][2], field=f.name))  # fmt: skip
    blank = next((n for r, _, n in kept if key and r.get(key) is None), None)
    if blank is not None:
        raise InputError(
            Problem("no id (a blank --id cell): every row needs one", file, blank, field=id_column)
        )
    keys = tuple(str(r.get(key)) if key else str(n) for r, _, n in kept)
    return Dataset(
        tuple(features),
        X,
        np.asarray([y for _, y, _ in kept], dtype=np.int64),
        keys,
        dropped=tuple(dropped),
        excluded={"no outcome value": len(rows) - len(kept)} if len(rows) > len(kept) else {},
        notes=(*csv_file.notes, *notes),  # how the file was decoded (Windows-1252), the outcome read
        lines=tuple(n for _, _, n in kept),
        columns=tuple(sorted(columns)),
        times=None if time_key is None else np.asarray([time_value(r.get(time_key)) for r, _, _ in kept]),
        unread=frozenset(h for h, c in zip(csv_file.headers, csv_file.columns, strict=True) if c is None)
        if only is not None
        else frozenset(),
    )


def _one_column_each(
    headers: Sequence[str], columns: Sequence[str | None], read: set[str], file: str
) -> None:
    """Refuse two headers read as one name (``ingest.csv_import.read_as_one``): the reader keeps the
    first non-blank cell of the two, a row-by-row mix of both columns. Names, e-mails and the like, which
    are never features, may repeat unless they are the outcome, id or time column."""
    twice = read_as_one(headers, columns, skip=lambda name: name in TEXT_FIELDS and name not in read)
    if twice is not None:
        message = read_as_one_message(headers, twice) + ": rename or remove one"
        raise InputError(Problem(message, file, 1, field=headers[twice[1]]))


def _features_present(features: Sequence[Feature], columns: set[str], file: str) -> None:
    """A test file must hold every column the features read: a missing one would read as missing in
    every row, and the model would be measured on data it was not learned for."""
    for f in features:
        src = f.source
        if isinstance(src, TitleWords):
            read: tuple[str, ...] = (src.field,)
        elif isinstance(src, Attribute):
            read = (src.field, *([src.fallback] if src.fallback else []))
        else:
            continue
        if not any(c in columns for c in read):
            raise InputError(
                Problem(f"no column {read[0]!r} (feature {f.name!r} of the training file)", file, 1)
            )


def _times_readable(values: Sequence[Any], rows: Sequence[int], header: str, file: str) -> None:
    """Every present value of a time column is a date or a number (a blank one is a row without a time)."""
    for value, row in zip(values, rows, strict=True):
        if value is not None and math.isnan(time_value(value)):
            raise InputError(
                Problem(
                    f"{value!r} is neither an ISO date (2024-03-01) nor a number (--holdout time:{header})",
                    file,
                    row,
                    field=header,
                )
            )


def time_value(value: Any) -> float:
    """A time column's value as a number that orders rows: days for a date, the number itself for any
    other number, NaN when missing or unreadable."""
    if is_date(value):
        text = str(int(value)) if isinstance(value, int | float) else value.strip()[:10].replace("-", "")
        return float(datetime.date(int(text[:4]), int(text[4:6]), int(text[6:8])).toordinal())
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    return float(number)


def split_rows(data: Dataset, holdout: str, share: float = HOLDOUT_SHARE) -> tuple[Dataset, Dataset, str]:
    """(train, holdout, what was held out) for ``--holdout``: ``hash`` (a fixed share of ids), ``none``,
    or ``time`` (the newest share of rows: by as-of time from the store, by the CSV's time column)."""
    if holdout == "none":
        return data, data.take(np.zeros(len(data), dtype=bool)), "no holdout: every row trained the model"
    if holdout == "hash":
        train, held = data.split(share)
        return train, held, f"holdout: the rows whose id hashes into the lowest {100 * share:g} %"
    if holdout.split(":", 1)[0] == "time":
        times = data.times if data.times is not None else data.as_of
        if times is None:
            raise InputError(Problem("--holdout time needs a time column: time:COLUMN"))
        t = np.asarray(times, float)
        known = t[~np.isnan(t)]
        if not len(known):
            raise InputError(Problem("--holdout time: no row has a time"))
        start = float(np.quantile(known, 1 - share, method="higher"))
        mask = ~np.isnan(t) & (t >= start)
        train, held = data.take(~mask), data.take(mask)
        return (
            train,
            held,
            f"holdout: the newest rows by time ({len(held)} rows from the {100 * share:g} % quantile on)",
        )
    raise InputError(Problem(f"--holdout is none, hash or time:COLUMN, not {holdout!r}"))


def outcome_labels(
    values: Sequence[Any], rows: Sequence[int], header: str, file: str
) -> tuple[list[int | None], list[str]]:
    """Labels from an outcome column: yes/no values (1, true, yes, won, converted / 0, false, no; a blank
    cell has no label), or, when no value is yes/no (an opportunity id, a close date), "present =
    converted" (a blank cell is not converted), said in the notes. A column mixing the two is refused."""
    read = [outcome_value(v) for v in values]
    present = [(v, n) for v, n in zip(values, rows, strict=True) if v is not None]
    unreadable = [(v, n) for (v, n), y in zip(present, (outcome_value(v) for v, _ in present), strict=True)
                  if y is None]  # fmt: skip
    if not unreadable:
        return read, []
    if len(unreadable) == len(present):
        note = (f"outcome column {header!r} holds no yes/no values: a row with a value counts as converted, "
                "a blank one as not converted")  # fmt: skip
        return [int(v is not None) for v in values], [note]
    value, row = unreadable[0]
    raise InputError(
        Problem(
            f"the outcome is not yes/no here ({value!r}; {len(unreadable)} such rows) while other rows are: "
            "use a column of yes/no values (1/0, true/false, yes/no), or one that is blank when not converted",
            file,
            row,
            field=header,
        )
    )


def duplicate_keys(data: Dataset, id_column: str, file: str) -> None:
    """Refuse a file in which one id names more than one row (their outcomes would be merged silently)."""
    counts = Counter(data.keys)
    twice = [k for k, n in counts.items() if n > 1]
    if twice:
        rows = [n for k, n in zip(data.keys, data.lines, strict=True) if k == twice[0]]
        listed = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
        raise InputError(
            Problem(
                f"id {twice[0]!r} names {counts[twice[0]]} rows (rows {listed}); "
                f"{len(twice)} ids appear more than once: one row per lead",
                file,
                rows[1] if len(rows) > 1 else None,
                field=id_column,
            )
        )
