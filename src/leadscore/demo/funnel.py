"""A B2B buying-funnel simulator with a hidden buying state and the true propensity it implies.

Each person of an account is, every day, in one hidden state: dormant, researching, evaluating or
buying (and at last converted: an ``opportunity``). The account runs *buying projects*: a project starts
at a rate set by the account's fit and lasts about a quarter; while it runs, the account's people move
up the funnel together (a buying committee), without it they cool down back to dormant (intent decays).
Activity is drawn from the state: what pages are read, on how many separate days, e-mail replies, demo
requests. Noise that no buyer causes is mixed in: e-mail security scanners opening and clicking every
mail seconds after delivery (with the ``email_id`` of the delivery, as ``exclude: machine`` expects),
bots reading dozens of pages in a minute, students and job seekers reading the blog and careers pages,
competitors reading pricing and docs who never buy. docs/learning.md tells the story and its sources.

Because (project, state) is a Markov chain per person, the probability of converting within a horizon
given the hidden state at a cutoff is exact (a matrix power): ``Funnel.true_propensity`` is the best any
score reading the activity can do, so a learned model's distance to the best possible AUC is measurable.

``simulate(leads=N, seed=S)`` is deterministic: one ``numpy.random.Generator(seed)`` drawn in a fixed
order, no wall-clock time. ``write(store, funnel)`` ingests the messages and outcomes through the same
doors as real data (``normalise`` + ``pipeline.ingest``, the ``outcomes`` table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import select

from leadscore.ingest.segment import Message, ms_to_iso, normalise
from leadscore.scoring import pipeline
from leadscore.store import Store
from leadscore.store.schema import leads as leads_table
from leadscore.store.schema import outcomes as outcomes_table

DAY = 86_400_000
START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DORMANT, RESEARCHING, EVALUATING, BUYING, CONVERTED = range(5)
STATES = ("dormant", "researching", "evaluating", "buying", "converted")
FIT_TIERS = ("low", "medium", "high")
# Daily chance that an account without a project starts one, by fit tier; a project lasts ~90 days.
PROJECT_START = (0.0015, 0.004, 0.008)
PROJECT_END = 1 / 90
# Daily transition chances of a person's state: (with a project running, without one).
UP = {DORMANT: (0.04, 0.002), RESEARCHING: (0.035, 0.004), EVALUATING: (0.03, 0.002)}
CONVERT = (0.03, 0.006)  # buying -> converted
COOL = (0.008, 0.06)  # researching, evaluating or buying -> dormant
# Visits per day by state (a visit is 1 + Poisson(1.5) page views on one day) and what they read.
VISIT_RATE = (0.02, 0.2, 0.35, 0.5, 0.03)
PAGES = (
    {"/blog": 70, "/": 20, "/product": 10},
    {"/blog": 45, "/product": 25, "/customers": 15, "/": 10, "/pricing": 5},
    {"/pricing": 25, "/product": 20, "/docs": 20, "/customers": 15, "/integrations": 15, "/blog": 5},
    {"/pricing": 35, "/docs": 25, "/security": 20, "/integrations": 10, "/product": 10},
    {"/docs": 60, "/blog": 20, "/": 20},
)
HUMAN_OPEN = (0.12, 0.25, 0.35, 0.4, 0.2)  # chance a person opens a newsletter, by state
DEMO_REQUEST = (0.0, 0.001, 0.01, 0.04, 0.0)  # daily chance of a "Demo Requested"
EMAIL_EVERY_DAYS = 14
SCANNED_ACCOUNTS = 0.3  # share of accounts whose mail gateway opens and clicks every mail
BOT_SHARE = 0.05  # share of people whose browser (or a crawler with their cookie) bursts now and then
NOISE = {"student": 0.08, "competitor": 0.04}
NOISE_PAGES = {
    "student": {"/blog": 50, "/careers": 35, "/": 15},
    "competitor": {"/pricing": 40, "/docs": 30, "/product": 20, "/integrations": 10},
}
NOISE_VISIT_RATE = {"student": 0.12, "competitor": 0.15}
TITLES = ("Analyst", "Manager", "Director", "VP", "Engineer", "Head of Operations")


@dataclass
class Person:
    key: str
    account: int | None  # index into Funnel.accounts; None: no company account (free mail)
    persona: str  # "buyer", "student" or "competitor"
    title: str | None
    states: np.ndarray[Any, Any] = field(repr=False)  # hidden state per day (int8)
    converted_day: int | None = None


@dataclass
class Account:
    domain: str
    tier: int  # index into FIT_TIERS
    employees: int
    projects: np.ndarray[Any, Any] = field(repr=False)  # project running per day (bool)


@dataclass
class Funnel:
    seed: int
    days: int
    accounts: list[Account]
    people: list[Person]
    messages: list[tuple[int, dict[str, Any]]]  # (time, Segment message) in time order

    def day_of(self, ms: int) -> int:
        return (ms - START_MS) // DAY

    def true_propensity(self, as_of_ms: int, horizon_days: int) -> dict[str, float]:
        """Each not yet converted person's exact chance of converting within ``horizon_days`` after
        ``as_of_ms`` (the end of a day), given the hidden (project, state) then. Noise personas: 0."""
        day = self.day_of(as_of_ms) - 1  # the last whole day before the cutoff
        absorb = [_absorption(tier, horizon_days) for tier in range(len(FIT_TIERS))]
        out: dict[str, float] = {}
        for p in self.people:
            if p.converted_day is not None and p.converted_day <= day:
                continue
            if p.persona != "buyer" or p.account is None:
                out[p.key] = 0.0
                continue
            acc = self.accounts[p.account]
            out[p.key] = float(absorb[acc.tier][int(acc.projects[day]), int(p.states[day])])
        return out


def _chain(tier: int) -> np.ndarray[Any, Any]:
    """The daily transition matrix over (project, state): 2 × 5 states, index project * 5 + state."""
    P = np.zeros((10, 10))
    start = PROJECT_START[tier]
    for proj in (0, 1):
        p_next = (1 - PROJECT_END, PROJECT_END) if proj else (start, 1 - start)  # to (on, off)
        for s in range(5):
            person = np.zeros(5)
            if s == CONVERTED:
                person[CONVERTED] = 1.0
            else:
                k = 0 if proj else 1
                up = UP[s][k] if s in UP else CONVERT[k]
                cool = COOL[k] if s != DORMANT else 0.0
                person[s + 1] = up
                person[DORMANT] += cool
                person[s] += 1 - up - cool
            # the person moves with this day's project, the project then moves on: project first
            for nxt_proj, pr in ((1, p_next[0]), (0, p_next[1])):
                P[proj * 5 + s, nxt_proj * 5 : nxt_proj * 5 + 5] += pr * person
    return P


def _absorption(tier: int, horizon_days: int) -> np.ndarray[Any, Any]:
    """P(converted within ``horizon_days``) from each (project, state), shaped (2, 5)."""
    Pn = np.linalg.matrix_power(_chain(tier), horizon_days)
    return (Pn[:, CONVERTED] + Pn[:, 5 + CONVERTED]).reshape(2, 5)


def _pick(rng: np.random.Generator, weights: dict[str, int]) -> str:
    keys = list(weights)
    w = np.asarray([weights[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=w / w.sum()))]


def simulate(*, leads: int = 3000, seed: int = 0, days: int = 360) -> Funnel:
    """``leads`` people over ``days`` days from 2024-01-01, deterministic in (leads, seed, days)."""
    if leads < 1 or days < 1:
        raise ValueError("leads and days must be at least 1")
    rng = np.random.default_rng(seed)
    n_accounts = max(1, leads // 4)
    accounts: list[Account] = []
    for i in range(n_accounts):
        tier = int(rng.choice(3, p=(0.5, 0.35, 0.15)))
        on = np.zeros(days, dtype=bool)
        running = bool(rng.random() < PROJECT_START[tier] / (PROJECT_START[tier] + PROJECT_END))
        draws = rng.random(days)
        for d in range(days):
            on[d] = running
            running = draws[d] >= PROJECT_END if running else draws[d] < PROJECT_START[tier]
        employees = int(rng.choice((30, 120, 600, 3000), p=(0.4, 0.3, 0.2, 0.1))) * (1 + tier)
        accounts.append(Account(f"acct{i}.example", tier, employees, on))
    competitor_account = len(accounts)
    accounts.append(Account("rival.example", 0, 200, np.zeros(days, dtype=bool)))
    people: list[Person] = []
    for i in range(leads):
        u = rng.random()
        persona = "student" if u < NOISE["student"] else "competitor" if u < sum(NOISE.values()) else "buyer"
        states = np.zeros(days, dtype=np.int8)
        account: int | None
        if persona == "buyer":
            account = int(rng.integers(n_accounts))
        else:
            account = competitor_account if persona == "competitor" else None
        title = None if rng.random() < 0.3 else TITLES[int(rng.integers(len(TITLES)))]
        if persona == "student":
            title = "Student" if rng.random() < 0.5 else None
        people.append(Person(f"p{i:05d}", account, persona, title, states))
    for p in people:  # the hidden chain, person by person (buyers only)
        if p.persona != "buyer" or p.account is None:
            continue
        proj = accounts[p.account].projects
        s = DORMANT
        draws = rng.random(days)
        for d in range(days):
            p.states[d] = s
            if s == CONVERTED:
                continue
            k = 0 if proj[d] else 1
            up = UP[s][k] if s in UP else CONVERT[k]
            cool = COOL[k] if s != DORMANT else 0.0
            if draws[d] < up:
                s += 1
                if s == CONVERTED:
                    p.converted_day = d + 1
            elif draws[d] < up + cool:
                s = DORMANT
    messages = _activity(rng, accounts, people, days)
    messages.sort(key=lambda m: m[0])
    return Funnel(seed, days, accounts, people, messages)


def _activity(
    rng: np.random.Generator, accounts: list[Account], people: list[Person], days: int
) -> list[tuple[int, dict[str, Any]]]:
    out: list[tuple[int, dict[str, Any]]] = []
    n = 0

    def emit(ts: int, user: str, msg: dict[str, Any]) -> None:
        nonlocal n
        n += 1
        out.append((ts, {"userId": user, "messageId": f"f-{n}", "timestamp": ms_to_iso(ts), **msg}))

    scanned = rng.random(len(accounts)) < SCANNED_ACCOUNTS
    for p in people:
        acc = accounts[p.account] if p.account is not None else None
        email = f"{p.key}@{acc.domain}" if acc else f"{p.key}@mail.example"
        first = int(rng.integers(0, max(1, days // 3)))  # when the person is first seen (signs up)
        traits: dict[str, Any] = {"email": email, **({"title": p.title} if p.title else {})}
        t0 = START_MS + first * DAY + 8 * 3_600_000
        emit(t0, p.key, {"type": "identify", "traits": traits})
        if acc:
            emit(t0 + 1000, p.key, {"type": "group", "groupId": acc.domain,
                                    "traits": {"domain": acc.domain, "employees": acc.employees}})  # fmt: skip
        bot = rng.random() < BOT_SHARE
        for d in range(first, days):
            day0 = START_MS + d * DAY
            s = int(p.states[d])
            if p.persona == "buyer":
                rate, pages = VISIT_RATE[s], PAGES[s]
            else:
                rate, pages = NOISE_VISIT_RATE[p.persona], NOISE_PAGES[p.persona]
            if rng.random() < rate:
                at = day0 + int(rng.integers(7 * 3600, 20 * 3600)) * 1000
                for _ in range(1 + int(rng.poisson(1.5))):
                    at += int(rng.integers(20, 400)) * 1000
                    emit(at, p.key, {"type": "page", "properties": {"path": _pick(rng, pages)}})
            if p.persona == "buyer" and rng.random() < DEMO_REQUEST[s]:
                emit(day0 + 14 * 3_600_000, p.key, {"type": "track", "event": "Demo Requested"})
            if bot and rng.random() < 0.02:  # a burst: 15-40 views within a minute, any page
                at = day0 + int(rng.integers(0, 86_000)) * 1000
                for _ in range(int(rng.integers(15, 41))):
                    at += int(rng.integers(200, 1500))
                    path = _pick(rng, {"/pricing": 1, "/docs": 1, "/blog": 1, "/product": 1})
                    emit(at, p.key, {"type": "page", "properties": {"path": path}})
            if d % EMAIL_EVERY_DAYS == 0:
                sent = day0 + 9 * 3_600_000
                eid = {"email_id": f"news-{d}"}
                emit(sent, p.key, {"type": "track", "event": "Email Delivered", "properties": eid})
                if acc is not None and scanned[p.account]:  # the mail gateway, seconds after delivery
                    emit(sent + int(rng.integers(1, 6)) * 1000, p.key,
                         {"type": "track", "event": "Email Opened", "properties": eid})  # fmt: skip
                    emit(sent + int(rng.integers(6, 9)) * 1000, p.key,
                         {"type": "track", "event": "Email Link Clicked", "properties": eid})  # fmt: skip
                p_open = HUMAN_OPEN[s] if p.persona == "buyer" else 0.1
                if rng.random() < p_open:
                    at = sent + int(rng.integers(600, 2 * 86_400)) * 1000
                    emit(at, p.key, {"type": "track", "event": "Email Opened", "properties": eid})
                    if p.persona == "buyer" and s >= EVALUATING and rng.random() < 0.5:
                        emit(at + 30_000, p.key,
                             {"type": "track", "event": "Email Link Clicked", "properties": eid})  # fmt: skip
    return out


def write(store: Store, funnel: Funnel, *, until_ms: int | None = None) -> int:
    """Ingest the funnel's messages (up to ``until_ms``) and its conversions as ``opportunity`` outcomes;
    returns the number of messages written."""
    end = START_MS + funnel.days * DAY if until_ms is None else until_ms
    msgs: list[Message] = [normalise(raw, received_ms=ts + 1500) for ts, raw in funnel.messages if ts <= end]
    for i in range(0, len(msgs), 5000):
        chunk = msgs[i : i + 5000]
        pipeline.ingest(store, chunk, source="funnel", as_of=chunk[-1].ts)
    with store.connect() as conn:
        lead_of = dict(conn.execute(select(leads_table.c.external_id, leads_table.c.id)).all())
    rows = [
        {
            "lead_id": lead_of[p.key],
            "kind": "opportunity",
            "at_ms": at,
            "amount": None,
            "reason": None,
            "source": "funnel",
            "recorded_ms": at,
        }
        for p in funnel.people
        if p.converted_day is not None
        and p.key in lead_of
        and (at := START_MS + p.converted_day * DAY + 12 * 3_600_000) <= end
    ]
    with store.begin() as conn:
        if rows:
            conn.execute(outcomes_table.insert(), rows)
    return len(msgs)
