"""Learning data: one row per (lead, as-of time) with its features and its censoring-aware label.

Two sources: a flat CSV (a row per lead, an outcome column, no times: every row is labelled), read with
the same header names and value types ``leadscore import leads`` stores; or the store, point-in-time
(``store_data``): features as of each cutoff, the outcome after it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from leadscore.errors import InputError, Problem
from leadscore.ingest.attributes import canonical
from leadscore.ingest.csv_import import TEXT_FIELDS, ImportOptions, read_rows
from leadscore.learn.features import PLACEHOLDERS, Attribute, Feature, Kind, category, number

HOLDOUT_SHARE = 0.3
TRUE_TEXTS = frozenset({"1", "true", "yes", "y", "converted", "won"})
FALSE_TEXTS = frozenset({"0", "false", "no", "n"})


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

    def __len__(self) -> int:
        return len(self.y)

    def take(self, mask: npt.NDArray[np.bool_]) -> Dataset:
        return replace(
            self,
            X=self.X[mask],
            y=self.y[mask],
            keys=tuple(k for k, m in zip(self.keys, mask, strict=True) if m),
            lead_ids=None if self.lead_ids is None else self.lead_ids[mask],
            as_of=None if self.as_of is None else self.as_of[mask],
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
    for name in names:
        values = [r.get(name) for r in rows]
        kind: Kind = "categorical" if name in forced else infer_kind(values)
        keys = [category(v, placeholders) for v in values]
        present = [k for k in keys if k is not None]
        distinct = len({repr(k) for k in present})
        if distinct <= 1:
            dropped.append((name, "constant (one value, or none)"))
        elif distinct == len(rows) and (kind == "categorical" or len(present) == len(rows)):
            dropped.append((name, "an identifier (a different value in every row)"))
        else:
            features.append(Feature(name, kind, Attribute(name)))
    return features, dropped


def csv_data(
    path: Path,
    outcome: str,
    *,
    id_column: str | None = None,
    exclude: Iterable[str] = (),
    categorical: Iterable[str] = (),
    placeholders: tuple[str, ...] = PLACEHOLDERS,
) -> Dataset:
    """A flat CSV of leads with an outcome column; ``exclude`` names columns that must not be features
    (sales-entered fields, anything recorded after the outcome)."""
    rows: list[dict[str, Any]] = []
    problems: list[Problem] = []
    for item in read_rows(path, ImportOptions()):
        (problems.append(item) if isinstance(item, Problem) else rows.append(item.values))
    if problems:
        raise InputError(problems[0])
    target = canonical(outcome)
    key = canonical(id_column) if id_column else None
    if not rows or target not in {k for r in rows for k in r}:
        raise InputError(Problem(f"no outcome column {outcome!r}", str(path), 1))
    labelled = [(r, outcome_value(r.get(target))) for r in rows]
    kept = [(r, y) for r, y in labelled if y is not None]
    skip = {target, *(canonical(c) for c in exclude), *TEXT_FIELDS, *([key] if key else [])}
    names = sorted({k for r, _ in kept for k in r} - skip)
    features, dropped = choose_columns(
        [r for r, _ in kept], names, categorical=categorical, placeholders=placeholders
    )
    dropped.extend((canonical(c), "excluded (outcome or sales-entered)") for c in exclude)
    X = np.empty((len(kept), len(features)), dtype=object)
    for i, (r, _) in enumerate(kept):
        X[i] = [r.get(f.name) for f in features]
    keys = tuple(str(r.get(key)) if key else str(i + 2) for i, (r, _) in enumerate(kept))
    return Dataset(
        tuple(features),
        X,
        np.asarray([y for _, y in kept], dtype=np.int64),
        keys,
        dropped=tuple(dropped),
        excluded={"no outcome value": len(rows) - len(kept)} if len(rows) > len(kept) else {},
    )
