"""Sales outcomes (opportunity, then won or lost) drawn from a contact's hidden fit and behaviour.

A demo request from a good-fit buyer usually becomes an opportunity and often a deal; an evaluation without
a demo sometimes does (outbound follow-up); anyone else almost never. Deals close 10–60 days after the
opportunity opens; one that would close after ``now`` is still open, so it has no won or lost row.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from leadscore.demo import catalog
from leadscore.demo.activity import DAY, Journey
from leadscore.demo.population import Company


@dataclass(frozen=True)
class Outcome:
    kind: str  # opportunity | won | lost
    at_ms: int
    amount: float
    reason: str | None = None


def _amount(rng: random.Random, company: Company | None) -> float:
    """Annual contract value: grows with the square root of company size, with noise, in hundreds."""
    employees = company.employees if company is not None else 5
    value = 6000 * (employees / 50) ** 0.5 * rng.lognormvariate(0, 0.3)
    return float(round(min(250_000.0, max(2400.0, value)), -2))


def outcomes(rng: random.Random, j: Journey, now_ms: int) -> list[Outcome]:
    """The outcome rows of one contact, oldest first."""
    if j.contact is None:
        return []
    fit = j.contact.fit
    opened: int | None = None
    if j.demo_ms is not None and rng.random() < 0.4 + 0.5 * fit:
        opened = j.demo_ms + int(rng.uniform(1, 7) * DAY)
    elif j.in_market_ms is not None and rng.random() < 0.3 * fit:
        opened = j.in_market_ms + int(rng.uniform(5, 25) * DAY)
    elif j.identified_ms is not None and rng.random() < 0.01 * fit:
        opened = j.identified_ms + int(rng.uniform(10, 60) * DAY)
    if opened is None or opened >= now_ms:
        return []
    opened = opened // 1000 * 1000
    amount = _amount(rng, j.contact.company)
    out = [Outcome("opportunity", opened, amount)]
    closed = opened + int(rng.uniform(10, 60) * DAY) // 1000 * 1000
    engaged = min(1.0, j.visits / 20)
    if closed < now_ms:
        if rng.random() < 0.1 + 0.6 * fit + 0.15 * engaged:
            out.append(Outcome("won", closed, float(round(amount * rng.uniform(0.8, 1.05), -2))))
        else:
            out.append(Outcome("lost", closed, amount, rng.choice(catalog.LOST_REASONS)))
    return out
