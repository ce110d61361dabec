"""One contact's months of activity as Segment messages: anonymous browsing, the form fill that identifies
them, e-mail, content downloads, webinars, and for buyers in the market an evaluation with a demo request.

Activity is heavy-tailed (a Pareto number of visits): most contacts come a few times, a few come constantly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from leadscore.demo import catalog
from leadscore.demo.population import Contact
from leadscore.ingest.segment import ms_to_iso

DAY = 86_400_000
HISTORY_DAYS = 180
EMAIL_EVERY_DAYS = 14
WEBINAR_EVERY_DAYS = 30

BROWSING = {
    "home": 14,
    "blog": 46,
    "product": 14,
    "customers": 5,
    "pricing": 5,
    "docs": 6,
    "about": 4,
    "careers": 1,
}
EVALUATING = {"home": 4, "blog": 6, "product": 28, "customers": 16, "pricing": 26, "docs": 18, "about": 2}
SPYING = {"home": 5, "blog": 15, "product": 35, "pricing": 30, "docs": 15}
JOB_HUNTING = {"home": 20, "careers": 50, "about": 20, "blog": 10}


@dataclass(frozen=True)
class Calendar:
    """Company-wide schedules: e-mail campaigns and webinars, both within the generated history."""

    now_ms: int
    emails: tuple[tuple[int, str, int], ...]  # (send time, e-mail type, campaign number)
    webinars: tuple[tuple[int, str], ...]  # (start time, topic)

    @classmethod
    def of(cls, rng: random.Random, now_ms: int) -> Calendar:
        start = now_ms - HISTORY_DAYS * DAY
        emails = tuple(
            (start + i * EMAIL_EVERY_DAYS * DAY + 9 * 3_600_000, rng.choice(catalog.EMAIL_TYPES), i + 1)
            for i in range(HISTORY_DAYS // EMAIL_EVERY_DAYS)
        )
        webinars = tuple(
            (start + (i * WEBINAR_EVERY_DAYS + 20) * DAY + 15 * 3_600_000, catalog.WEBINAR_TOPICS[i % 4])
            for i in range(HISTORY_DAYS // WEBINAR_EVERY_DAYS)
        )
        return cls(now_ms, emails, webinars)


@dataclass
class Journey:
    """The messages of one visitor (a contact, or ``None`` for one who never identifies), and the hidden
    facts outcomes are drawn from."""

    key: str
    contact: Contact | None
    anonymous_id: str
    messages: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    identified_ms: int | None = None
    in_market_ms: int | None = None  # start of an active evaluation, if any
    demo_ms: int | None = None
    visits: int = 0

    def add(self, ts: int, raw: dict[str, Any], *, identified: bool, browser: bool = True) -> None:
        """Record a message; ``browser=False`` marks server-side sources (e-mail, webinar tools), which
        know the user id but not the browser's anonymous id."""
        raw = {"messageId": f"{self.key}-{len(self.messages) + 1:05d}", **raw}
        raw["timestamp"] = ms_to_iso(ts)
        if identified and self.contact is not None:
            raw["userId"] = self.key
        if browser or "userId" not in raw:
            raw["anonymousId"] = self.anonymous_id
        self.messages.append((ts, raw))


def _second(ms: float) -> int:
    """Whole seconds, so ISO timestamps round-trip to the same milliseconds."""
    return int(ms) // 1000 * 1000


def page_message(page: catalog.Page, referrer: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {"path": page.path, "url": catalog.SITE + page.path, "title": page.title}
    if referrer:
        properties["referrer"] = referrer
    return {"type": "page", "name": page.title, "properties": properties}


def browse(
    rng: random.Random, journey: Journey, at: int, mix: dict[str, int], *, identified: bool, until: int
) -> None:
    """One visit: a heavy-tailed run of page views a minute or two apart."""
    journey.visits += 1
    sections = list(mix)
    pages = 1
    while pages < 12 and rng.random() < 0.55:
        pages += 1
    referrer = rng.choice((None, "https://www.google.com/", "https://www.linkedin.com/", None))
    for _ in range(pages):
        if at >= until:
            return
        section = rng.choices(sections, weights=[mix[s] for s in sections])[0]
        journey.add(at, page_message(rng.choice(catalog.PAGES[section]), referrer), identified=identified)
        referrer = None
        at = _second(at + rng.uniform(20_000, 240_000))


def _visit_times(rng: random.Random, start: int, end: int, count: int) -> list[int]:
    return sorted(_second(rng.uniform(start, end)) for _ in range(count)) if end > start else []


def journey(rng: random.Random, contact: Contact, cal: Calendar) -> Journey:
    """Everything one contact does within the history, in no particular order."""
    now = cal.now_ms
    j = Journey(contact.key, contact, anonymous_id=f"anon-{contact.key}-{rng.getrandbits(32):08x}")
    first_seen = now - int(rng.uniform(4, HISTORY_DAYS) * DAY)
    interest = min(1.0, rng.betavariate(1.3, 3.0) + 0.5 * contact.fit * rng.random())
    visits = min(80, int(rng.paretovariate(1.3) * (1.5 + 3 * interest)))
    mix = BROWSING
    if contact.channel == "competitor":
        mix = SPYING
    elif rng.random() < (0.35 if contact.channel == "student" else 0.06):
        mix = JOB_HUNTING
    times = _visit_times(rng, first_seen, now, max(1, visits))

    # A buyer in the market evaluates for a few weeks: pricing, product, proof, docs, and often a demo.
    if contact.channel not in ("student", "competitor") and rng.random() < 0.03 + 0.5 * contact.fit:
        window_start = _second(rng.uniform(first_seen, now - 2 * DAY))
        window_end = min(now, window_start + int(rng.uniform(7, 40) * DAY))
        j.in_market_ms = window_start
        evaluation = _visit_times(rng, window_start, window_end, 3 + int(rng.paretovariate(1.5) * 2))
        if rng.random() < 0.3 + 0.5 * contact.fit and evaluation:
            j.demo_ms = _second(rng.choice(evaluation) + rng.uniform(60_000, 600_000))
        times = sorted([*times, *evaluation])
        in_window = set(evaluation)
    else:
        in_window = set()

    # The first form fill (e-book, webinar or newsletter sign-up, or the demo request) identifies them.
    identify_at = _second(times[min(len(times) - 1, int(rng.expovariate(0.7)))] + 90_000)
    if j.demo_ms is not None and j.demo_ms < identify_at:
        identify_at = j.demo_ms
    identify_at = min(identify_at, now - 60_000)
    j.identified_ms = identify_at
    for at in times:
        browse(rng, j, at, EVALUATING if at in in_window else mix, identified=at >= identify_at, until=now)
    j.add(identify_at, {"type": "identify", "traits": contact.traits()}, identified=True)
    _conversion(rng, j, identify_at, cal)
    if j.demo_ms is not None:
        j.add(
            j.demo_ms,
            {"type": "track", "event": "Demo Requested", "properties": {"form": "book-a-demo"}},
            identified=True,
        )
    _emails(rng, j, contact, interest, cal)
    _webinars(rng, j, interest, cal)
    return j


def anonymous_visitor(rng: random.Random, number: int, cal: Calendar) -> Journey:
    """A visitor who browses a few times and never fills in a form: events that belong to no lead."""
    j = Journey(
        f"visitor-{number:06d}", None, anonymous_id=f"anon-visitor-{number:06d}-{rng.getrandbits(32):08x}"
    )
    first_seen = cal.now_ms - int(rng.uniform(1, HISTORY_DAYS) * DAY)
    for at in _visit_times(rng, first_seen, cal.now_ms, rng.randint(1, 3)):
        browse(rng, j, at, BROWSING, identified=False, until=cal.now_ms)
    return j


def _conversion(rng: random.Random, j: Journey, at: int, cal: Calendar) -> None:
    if at == j.demo_ms:
        return  # the demo request itself is the conversion
    kind = rng.choices(("ebook", "webinar", "newsletter"), weights=(55, 25, 20))[0]
    if kind == "ebook":
        props = {"title": rng.choice(catalog.EBOOKS), "form": "ebook-gate"}
        j.add(at, {"type": "track", "event": "Ebook Downloaded", "properties": props}, identified=True)
    elif kind == "webinar":
        upcoming = [(ts, topic) for ts, topic in cal.webinars if ts > at]
        if upcoming:
            ts, topic = upcoming[0]
            props = {"webinar": topic, "starts_at": ms_to_iso(ts)}
            j.add(at, {"type": "track", "event": "Webinar Registered", "properties": props}, identified=True)
    else:
        j.add(
            at,
            {"type": "track", "event": "Newsletter Subscribed", "properties": {"form": "footer"}},
            identified=True,
        )
    # later e-books, one in eight of them per contact
    for title in catalog.EBOOKS:
        if rng.random() < 0.12:
            later = _second(rng.uniform(at, cal.now_ms))
            j.add(
                later,
                {"type": "track", "event": "Ebook Downloaded", "properties": {"title": title}},
                identified=True,
            )


def _emails(rng: random.Random, j: Journey, contact: Contact, interest: float, cal: Calendar) -> None:
    """Campaigns after sign-up: opens, clicks, and at most one bounce or unsubscribe, which ends them."""
    assert j.identified_ms is not None
    free = contact.channel in ("free_mail", "student")
    p_open = 0.12 + 0.55 * interest
    p_click = 0.1 + 0.35 * contact.fit
    p_unsubscribe = 0.015 + 0.05 * (1 - contact.fit)
    for sent, email_type, number in cal.emails:
        if sent <= j.identified_ms:
            continue
        props = {
            "email_id": f"campaign-{number:03d}",
            "email_type": email_type,
            "campaign": f"{email_type} #{number}",
        }
        if rng.random() < (0.06 if free else 0.02):
            j.add(
                sent + 30_000,
                {"type": "track", "event": "Email Bounced", "properties": props},
                identified=True,
                browser=False,
            )
            return
        if rng.random() >= p_open:
            continue
        opened = _second(sent + rng.expovariate(1 / 20_000_000))
        for n in range(1 + (rng.random() < 0.3)):  # a second open: re-read or a prefetching client
            j.add(
                opened + n * 600_000,
                {"type": "track", "event": "Email Opened", "properties": props},
                identified=True,
                browser=False,
            )
        if rng.random() < p_click:
            j.add(
                opened + 45_000,
                {"type": "track", "event": "Email Link Clicked", "properties": props},
                identified=True,
                browser=False,
            )
        if rng.random() < p_unsubscribe:
            j.add(
                opened + 90_000,
                {"type": "track", "event": "Unsubscribed", "properties": props},
                identified=True,
                browser=False,
            )
            return


def _webinars(rng: random.Random, j: Journey, interest: float, cal: Calendar) -> None:
    assert j.identified_ms is not None
    registered = {
        m["properties"]["starts_at"] for _, m in j.messages if m.get("event") == "Webinar Registered"
    }
    for start, topic in cal.webinars:
        if start <= j.identified_ms:
            continue
        props = {"webinar": topic, "starts_at": ms_to_iso(start)}
        if props["starts_at"] not in registered:
            if rng.random() >= 0.04 + 0.3 * interest:
                continue
            at = _second(start - rng.uniform(1, 14) * DAY)
            if at <= j.identified_ms:
                continue
            j.add(at, {"type": "track", "event": "Webinar Registered", "properties": props}, identified=True)
        if rng.random() < 0.5 + 0.3 * interest:
            j.add(
                start + 120_000,
                {"type": "track", "event": "Webinar Attended", "properties": props},
                identified=True,
                browser=False,
            )
