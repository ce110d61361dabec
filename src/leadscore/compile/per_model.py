"""What is derived once from a model object and read for every row it scores, kept per model object.

Parsed model versions are cached objects (``scoring.run.model_of``), so a process reuses the same model
object batch after batch; the derived values are kept under its ``id`` with the model itself held beside
them (its id cannot be reused while it is held). Pydantic models have no weak references, and hashing
one hashes every rule, hence the id.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from leadscore.model import ScoringModel

T = TypeVar("T")


class PerModel(Generic[T]):
    """``make(model)``, computed once per model object (the ``size`` most recent kept)."""

    def __init__(self, make: Callable[[ScoringModel], T], size: int = 64) -> None:
        self.make, self.size = make, size
        self.kept: dict[int, tuple[ScoringModel, T]] = {}
        self.lock = threading.Lock()

    def __call__(self, model: ScoringModel) -> T:
        with self.lock:
            hit = self.kept.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
        made = self.make(model)
        with self.lock:
            self.kept[id(model)] = (model, made)
            while len(self.kept) > self.size:
                self.kept.pop(next(iter(self.kept)))
        return made
