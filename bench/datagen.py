"""A deterministic benchmark data set written straight into the store's tables with bulk inserts.

Accounts with firmographics, leads with roles (some on free mail, a few at competitors), one or two
identities per lead, and about six months of events whose number per lead is heavy-tailed (log-normal):
page views (/blog/, /product/, /pricing, /careers, /customers/, docs, home), e-mail opens and clicks,
e-book downloads, webinars, unsubscribes, and a share of anonymous traffic that belongs to no lead.
A few events lie after the as-of time, so the ``ts <= as_of`` bound is exercised.

Events are generated lead by lead and written in chunks (``executemany`` on SQLite, ``COPY`` on
PostgreSQL), so memory stays bounded at 10M events.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from leadscore.store import Store

DAY_MS = 86_400_000
AS_OF_MS = 1_751_328_000_000  # 2025-07-01T00:00:00Z: every event is generated relative to it
HISTORY_DAYS = 182
CHUNK = 50_000

FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "icloud.com")
COMPETITORS = ("rivalscore.io", "leadly.com")
INDUSTRIES = ("software", "saas", "fintech", "retail", "manufacturing", "healthcare", "education", "media")
COUNTRIES = ("SE", "DK", "NO", "FI", "DE", "AT", "CH", "GB", "US", "FR", "NL", "ES")
TITLES = (
    ("Marketing Manager", "manager"),
    ("Head of Growth", "director"),
    ("VP Marketing", "vp"),
    ("Demand Gen Specialist", "individual"),
    ("CMO", "c-level"),
    ("Software Engineer", "individual"),
    ("CTO", "c-level"),
    ("Sales Director", "director"),
    ("Head of Operations", "director"),
    ("Student", "individual"),
    ("Product Manager", "manager"),
    ("Finance Analyst", "individual"),
)
# (weight, type, name or page path prefix, suffixes)
EVENT_KINDS: tuple[tuple[float, str, str, int], ...] = (
    (30, "page", "/blog/", 120),
    (12, "page", "/product/", 8),
    (6, "page", "/pricing", 0),
    (2, "page", "/careers", 0),
    (4, "page", "/customers/", 25),
    (10, "page", "/", 0),
    (8, "page", "/docs/", 60),
    (13, "track", "Email Opened", 0),
    (5, "track", "Email Clicked", 0),
    (2, "track", "Ebook Downloaded", 0),
    (1, "track", "Webinar Attended", 0),
    (0.3, "track", "Unsubscribed", 0),
    (0.7, "track", "Demo Requested", 0),
    (3, "track", "Product Used", 0),
    (3, "identify", "", 0),
)
EVENT_COLUMNS = (
    "message_id",
    "type",
    "name",
    "person_key",
    "user_id",
    "anonymous_id",
    "path",
    "url",
    "properties",
    "context",
    "ts",
    "received_ms",
    "source",
)
ANONYMOUS_SHARE = 0.08  # of all events: visitors who never identify
FUTURE_SHARE = 0.01  # of a lead's events: after as_of (must not count)


@dataclass(frozen=True)
class Spec:
    leads: int = 10_000
    events: int = 500_000
    seed: int = 7
    as_of: int = AS_OF_MS

    @property
    def accounts(self) -> int:
        return max(8, self.leads // 8)


@dataclass(frozen=True)
class Loaded:
    leads: int
    accounts: int
    identities: int
    events: int


def _account_rows(spec: Spec, rnd: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for i in range(spec.accounts):
        employees = int(math.exp(rnd.gauss(4.5, 1.6))) + 1
        attributes: dict[str, Any] = {"employees": employees, "industry": rnd.choice(INDUSTRIES)}
        if rnd.random() < 0.05:
            del attributes["employees"]  # firmographics are never complete
        created = spec.as_of - 400 * DAY_MS
        rows.append((i + 1, f"acme-{i}.com", f"Acme {i}", json.dumps(attributes), created, created))
    return rows


def _lead_rows(spec: Spec, rnd: random.Random) -> Iterator[tuple[Any, ...]]:
    for lead_id in range(1, spec.leads + 1):
        roll = rnd.random()
        account_id: int | None = None
        if roll < 0.80:
            account_id = rnd.randrange(spec.accounts) + 1
            domain = f"acme-{account_id - 1}.com"
        elif roll < 0.92:
            domain = rnd.choice(FREE_MAIL)
        elif roll < 0.93:
            domain = rnd.choice(COMPETITORS)
        else:
            domain = f"independent-{lead_id % 997}.org"
        title, seniority = rnd.choice(TITLES)
        attributes: dict[str, Any] = {
            "job_title": title,
            "seniority": seniority,
            "country": rnd.choice(COUNTRIES),
        }
        if rnd.random() < 0.1:
            del attributes["job_title"]
        created = spec.as_of - rnd.randrange(HISTORY_DAYS + 30) * DAY_MS
        company = None if account_id else f"Freelance {lead_id % 50}"
        yield (
            lead_id,
            f"user{lead_id}",
            f"lead{lead_id}@{domain}",
            domain,
            "Lead",
            str(lead_id),
            company,
            account_id,
            json.dumps(attributes),
            created,
            created,
        )


def _has_anonymous_key(lead_id: int) -> bool:
    return lead_id % 5 < 2  # 40 % of leads browsed anonymously before identifying


def _identity_rows(spec: Spec) -> Iterator[tuple[Any, ...]]:
    for lead_id in range(1, spec.leads + 1):
        yield (f"u:user{lead_id}", lead_id, spec.as_of - HISTORY_DAYS * DAY_MS)
        if _has_anonymous_key(lead_id):
            yield (f"a:anon{lead_id}", lead_id, spec.as_of - HISTORY_DAYS * DAY_MS)


def _event_counts(spec: Spec, rnd: random.Random) -> list[int]:
    """Events per lead, heavy-tailed, summing to the lead share of ``spec.events`` exactly."""
    weights = [math.exp(rnd.gauss(0.0, 1.3)) for _ in range(spec.leads)]
    total = sum(weights)
    wanted = spec.events - int(spec.events * ANONYMOUS_SHARE)
    counts = [int(wanted * w / total) for w in weights]
    for i in range(wanted - sum(counts)):
        counts[i % spec.leads] += 1
    return counts


class _EventMaker:
    def __init__(self, spec: Spec, rnd: random.Random) -> None:
        self.spec = spec
        self.rnd = rnd
        self.seq = 0
        total = sum(k[0] for k in EVENT_KINDS)
        self.cumulative: list[float] = []
        acc = 0.0
        for kind in EVENT_KINDS:
            acc += kind[0] / total
            self.cumulative.append(acc)

    def event(self, user_id: str | None, anonymous_id: str | None, recency: float) -> tuple[Any, ...]:
        rnd = self.rnd
        self.seq += 1
        if rnd.random() < FUTURE_SHARE:
            ts = self.spec.as_of + rnd.randrange(1, 5 * DAY_MS)
        else:
            # recency > 1 skews a person's activity towards the as-of time
            ts = self.spec.as_of - int(HISTORY_DAYS * DAY_MS * rnd.random() ** recency)
        u = rnd.random()
        index = next(i for i, c in enumerate(self.cumulative) if u <= c)
        _, kind, label, suffixes = EVENT_KINDS[min(index, len(EVENT_KINDS) - 1)]
        name = path = url = None
        properties: dict[str, Any] = {}
        if kind == "page":
            path = f"{label}{rnd.randrange(suffixes)}-article" if suffixes else label
            url = f"https://www.example.com{path}"
            properties = {"path": path, "url": url}
        elif kind == "track":
            name = label
            if label == "Webinar Attended":
                properties = {"minutes": rnd.randrange(1, 91)}
            elif label.startswith("Email"):
                properties = {"campaign": f"c{rnd.randrange(40)}"}
        person_key = f"u:{user_id}" if user_id else f"a:{anonymous_id}"
        return (
            f"bench-{self.seq}",
            kind,
            name,
            person_key,
            user_id,
            anonymous_id,
            path,
            url,
            json.dumps(properties),
            "{}",
            ts,
            max(ts, self.spec.as_of - HISTORY_DAYS * DAY_MS),
            "bench",
        )


def event_chunks(spec: Spec) -> Iterator[list[tuple[Any, ...]]]:
    """All events in chunks of at most CHUNK rows, lead by lead, then the anonymous visitors."""
    rnd = random.Random(spec.seed * 1_000_003 + 1)
    counts = _event_counts(spec, rnd)
    maker = _EventMaker(spec, rnd)
    chunk: list[tuple[Any, ...]] = []
    for lead_id, n in enumerate(counts, start=1):
        recency = rnd.uniform(0.6, 2.5)
        anonymous = f"anon{lead_id}" if _has_anonymous_key(lead_id) else None
        for _ in range(n):
            if anonymous and rnd.random() < 0.3:
                chunk.append(maker.event(None, anonymous, recency))
            else:
                chunk.append(maker.event(f"user{lead_id}", None, recency))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    visitors = max(1, spec.leads // 2)
    for _ in range(spec.events - sum(counts)):
        chunk.append(maker.event(None, f"visitor{rnd.randrange(visitors)}", 1.0))
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


LEAD_COLUMNS = (
    "id",
    "external_id",
    "email",
    "email_domain",
    "first_name",
    "last_name",
    "company",
    "account_id",
    "attributes",
    "created_ms",
    "updated_ms",
)
ACCOUNT_COLUMNS = ("id", "domain", "name", "attributes", "created_ms", "updated_ms")
IDENTITY_COLUMNS = ("key", "lead_id", "created_ms")


def _batches(rows: Iterator[tuple[Any, ...]], size: int = CHUNK) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def load(store: Store, spec: Spec) -> Loaded:
    """Write the data set into an empty, migrated store and refresh the planner's statistics."""
    rnd = random.Random(spec.seed)
    tables: list[tuple[str, tuple[str, ...], Iterator[list[tuple[Any, ...]]]]] = [
        ("accounts", ACCOUNT_COLUMNS, iter([_account_rows(spec, rnd)])),
        ("leads", LEAD_COLUMNS, _batches(_lead_rows(spec, rnd))),
        ("identities", IDENTITY_COLUMNS, _batches(_identity_rows(spec))),
        ("events", EVENT_COLUMNS, event_chunks(spec)),
    ]
    counted: dict[str, int] = {}
    with store.begin() as conn:
        if conn.dialect.name == "sqlite":
            # one transaction (so one sync at commit), with a cache big enough for the index pages
            conn.exec_driver_sql("PRAGMA cache_size=-262144")
        writer = _copy if conn.dialect.name == "postgresql" else _executemany
        # building the (person_key, ts) index once after the load is several times faster than
        # maintaining it row by row; it is recreated exactly as the migration defines it
        conn.exec_driver_sql("DROP INDEX ix_events_person_ts")
        for table, columns, batches in tables:
            counted[table] = writer(conn, table, columns, batches)
        conn.exec_driver_sql("CREATE INDEX ix_events_person_ts ON events (person_key, ts)")
        if conn.dialect.name == "postgresql":
            for table in ("accounts", "leads"):
                conn.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
                    )
                )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    return Loaded(counted["leads"], counted["accounts"], counted["identities"], counted["events"])


def _executemany(
    conn: Connection, table: str, columns: tuple[str, ...], batches: Iterator[list[tuple[Any, ...]]]
) -> int:
    raw = conn.connection.driver_connection
    assert raw is not None
    cols = ", ".join(f'"{c}"' for c in columns)
    sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in columns)})"
    n = 0
    for batch in batches:
        raw.executemany(sql, batch)
        n += len(batch)
    return n


def _tsv(value: Any) -> str:
    return "\\N" if value is None else str(value)


def _copy(
    conn: Connection, table: str, columns: tuple[str, ...], batches: Iterator[list[tuple[Any, ...]]]
) -> int:
    raw = conn.connection.driver_connection
    assert raw is not None
    cols = ", ".join(f'"{c}"' for c in columns)
    n = 0
    # generated values never contain tabs, newlines or backslashes, so text format needs no escaping
    with raw.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
        for batch in batches:
            copy.write("".join("\t".join(map(_tsv, row)) + "\n" for row in batch))
            n += len(batch)
    return n
