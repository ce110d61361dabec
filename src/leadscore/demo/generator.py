"""Deterministic demo data: companies, contacts, months of Segment events and sales outcomes.

``generate(store, leads=N, seed=S, now_ms=T)`` writes through the same doors as real data: accounts with
``upsert_account``, events with ``normalise`` + ``pipeline.ingest``, outcomes into the ``outcomes`` table.
The same (leads, seed, now_ms) always writes the same rows: all randomness comes from one
``random.Random(seed)``, drawn in a fixed order, and no wall-clock time is read.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from leadscore.demo import activity
from leadscore.demo.activity import DAY, HISTORY_DAYS, Calendar, Journey
from leadscore.demo.outcomes import Outcome, outcomes
from leadscore.demo.population import companies, contacts
from leadscore.ingest.segment import Message, normalise
from leadscore.model import ScoringModel, load_model
from leadscore.scoring import pipeline
from leadscore.store import Store
from leadscore.store.people import upsert_account
from leadscore.store.schema import leads as leads_table
from leadscore.store.schema import outcomes as outcomes_table

PACKAGE_DIR = Path(__file__).parent
DEMO_MODEL = PACKAGE_DIR / "b2b_saas.yaml"
TARGET_ACCOUNTS = PACKAGE_DIR / "lists" / "target_accounts.csv"
DEFAULT_NOW_MS = 1_751_328_000_000  # 2025-07-01T00:00:00Z
CHUNK = 5000
BATCH_DAYS = 7  # a week per batch: the lifecycle runs after each, so stage moves spread over the weeks
SOURCE = "demo"
RECEIVE_DELAY_MS = 1500


@dataclass(frozen=True)
class GenerateReport:
    """What ``generate`` wrote."""

    companies: int
    leads: int
    events: int
    outcomes: int
    anonymous_visitors: int
    first_ms: int
    now_ms: int


def demo_model() -> ScoringModel:
    """The B2B SaaS example model the demo is scored with (shipped as package data)."""
    return load_model(DEMO_MODEL)


def target_accounts() -> list[tuple[str, str]]:
    """(domain, company name) of every account on the demo's target-account list."""
    with TARGET_ACCOUNTS.open(newline="", encoding="utf-8") as handle:
        return [(row["domain"], row["company"]) for row in csv.DictReader(handle)]


def generate(
    store: Store,
    *,
    leads: int = 500,
    seed: int = 0,
    now_ms: int = DEFAULT_NOW_MS,
    after_batch: Callable[[int], object] | None = None,
) -> GenerateReport:
    """Write a demo population with ``leads`` identified contacts, its history ending at ``now_ms``;
    ``after_batch(t)`` is called after each batch of events is ingested, ``t`` the batch's last event time
    (``run_demo`` runs the lifecycle there, so stage moves are stamped when they happened)."""
    if leads < 1:
        raise ValueError("leads must be at least 1")
    now_ms = now_ms // 1000 * 1000
    rng = random.Random(seed)
    model = demo_model()
    free_mail = list(model.lists["free_mail"].values)
    pool = companies(rng, max(3, leads // 3), target_accounts(), list(model.lists["competitors"].values))
    people = contacts(rng, leads, pool, free_mail)
    cal = Calendar.of(rng, now_ms)
    journeys = [activity.journey(rng, person, cal) for person in people]
    visitors = [activity.anonymous_visitor(rng, i + 1, cal) for i in range(leads // 4)]
    drawn = [(j.key, o) for j in journeys for o in outcomes(rng, j, now_ms)]
    first_ms = now_ms - HISTORY_DAYS * DAY

    with store.begin() as conn:
        for company in pool:
            upsert_account(
                conn, now_ms=first_ms, domain=company.domain, name=company.name, attributes=company.traits()
            )
    messages = _messages([*journeys, *visitors], now_ms)
    for chunk in _batches(messages, first_ms):
        pipeline.ingest(store, chunk, source=SOURCE, as_of=chunk[-1].ts)
        if after_batch is not None:
            after_batch(chunk[-1].ts)
    rows = _outcome_rows(store, drawn)
    with store.begin() as conn:
        if rows:
            conn.execute(outcomes_table.insert(), rows)
    return GenerateReport(len(pool), len(people), len(messages), len(rows), len(visitors), first_ms, now_ms)


def _messages(journeys: list[Journey], now_ms: int) -> list[Message]:
    """Every journey's messages up to ``now_ms``, normalised, in time order (ties in generation order)."""
    timed = [(ts, raw) for j in journeys for ts, raw in j.messages if ts <= now_ms]
    timed.sort(key=lambda item: item[0])
    return [normalise(raw, received_ms=ts + RECEIVE_DELAY_MS) for ts, raw in timed]


def _batches(messages: list[Message], first_ms: int) -> list[list[Message]]:
    """Time-ordered batches of at most ``CHUNK`` messages, one week at most each: with a published model,
    every lead's score history then shows its progress week by week."""
    out: list[list[Message]] = []
    for m in messages:
        week = (m.ts - first_ms) // (BATCH_DAYS * DAY)
        if not out or len(out[-1]) >= CHUNK or (out[-1][0].ts - first_ms) // (BATCH_DAYS * DAY) != week:
            out.append([])
        out[-1].append(m)
    return out


def _outcome_rows(store: Store, drawn: list[tuple[str, Outcome]]) -> list[dict[str, Any]]:
    with store.connect() as conn:
        lead_of = dict(conn.execute(select(leads_table.c.external_id, leads_table.c.id)).all())
    return [
        {
            "lead_id": lead_of[key],
            "kind": o.kind,
            "at_ms": o.at_ms,
            "amount": o.amount,
            "reason": o.reason,
            "source": SOURCE,
            "recorded_ms": o.at_ms,
        }
        for key, o in drawn
    ]
