"""A circuit breaker per delivery endpoint: after ``threshold`` consecutive failures the endpoint is left
alone for ``cooldown_s`` (open); then one delivery probes it (half-open), and its outcome closes the
breaker or opens it for another cool-down. Rows of an open endpoint stay pending in the outbox.

The state lives in the delivering process (a restarted process starts closed and learns again); the
durable record of failures is the outbox (``failures``, ``last_error``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _State:
    failures: int = 0  # consecutive
    open_until: float | None = None
    probing: bool = False


class Breakers:
    """The breakers of every endpoint seen (thread-safe)."""

    def __init__(
        self, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.threshold, self.cooldown_s, self.clock = threshold, cooldown_s, clock
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()

    def state(self, endpoint: str) -> str:
        """``closed``, ``open`` (cooling down) or ``half-open`` (cooled down or probing)."""
        with self._lock:
            found = self._states.get(endpoint)
            if found is None or found.open_until is None:
                return "closed"
            return "open" if self.clock() < found.open_until and not found.probing else "half-open"

    def blocked(self) -> set[str]:
        """Endpoints that may not be tried now: cooling down, or their probe still in flight."""
        now = self.clock()
        with self._lock:
            return {
                e
                for e, s in self._states.items()
                if s.open_until is not None and (s.probing or now < s.open_until)
            }

    def try_acquire(self, endpoint: str) -> bool:
        """Whether a delivery to ``endpoint`` may start now (a half-open endpoint lets exactly one through)."""
        with self._lock:
            found = self._states.setdefault(endpoint, _State())
            if found.open_until is None:
                return True
            if found.probing or self.clock() < found.open_until:
                return False
            found.probing = True
            return True

    def record(self, endpoint: str, ok: bool) -> None:
        with self._lock:
            found = self._states.setdefault(endpoint, _State())
            if ok:
                self._states[endpoint] = _State()
                return
            found.failures += 1
            if found.probing or found.failures >= self.threshold:
                found.open_until = self.clock() + self.cooldown_s
            found.probing = False
