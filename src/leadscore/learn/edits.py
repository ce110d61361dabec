"""The edits a model review proposes (``learn/review.py``), as plain data: light to import, so the
dashboard can parse and show them without loading the learning stack."""

from __future__ import annotations

from dataclasses import dataclass

MIN_SUPPORT = 5  # fewest decided MQLs a rule must have given points to before the review judges it


@dataclass(frozen=True)
class Edit:
    kind: str  # remove_rule | points | threshold
    rule: str | None = None
    points: float | None = None
    threshold: float | None = None

    @property
    def id(self) -> str:
        return {"remove_rule": f"remove:{self.rule}", "points": f"points:{self.rule}"}.get(
            self.kind, "threshold"
        )
