"""A deterministic benchmark data set written as Parquet in chunks (never all of it in memory).

The same population as ``datagen.py`` (which writes into a store), vectorised with numpy so that 100M
events take minutes rather than hours: accounts with firmographics, leads with roles (12 % free mail,
1 % competitors), 1.4 identities per lead, events per lead log-normal (σ 1.3, heavy-tailed) over six
months with the demo's event kinds and weights (``datagen.EVENT_KINDS``), 8 % anonymous traffic that
belongs to no lead, 1 % of events after the as-of time. Every column the compiler reads is there.

    python bench/parquet_gen.py OUT --leads 1000000 --events 100000000 --seed 7

writes OUT/accounts.parquet, OUT/leads.parquet, OUT/identities.parquet and OUT/events/part-*.parquet
(one file per chunk of leads; row groups of at most 1M rows). Same seed, same files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen

from leadscore.batch.frames import ACCOUNTS, EVENTS, IDENTITIES, LEADS

DAY_MS = datagen.DAY_MS
HISTORY_MS = datagen.HISTORY_DAYS * DAY_MS
LEADS_PER_CHUNK = 50_000
ROW_GROUP = 1_000_000


@dataclass(frozen=True)
class Spec:
    leads: int = 10_000
    events: int = 500_000
    seed: int = 7
    as_of: int = datagen.AS_OF_MS

    @property
    def accounts(self) -> int:
        return max(8, self.leads // 8)


def _vocabulary() -> tuple[list[tuple[str, str | None, str | None, str | None, str]], list[int], list[int]]:
    """Every distinct (type, name, path, url, properties) an event can have, and each kind's slice of it."""
    vocab: list[tuple[str, str | None, str | None, str | None, str]] = []
    offsets, sizes = [], []
    for _, kind, label, suffixes in datagen.EVENT_KINDS:
        offsets.append(len(vocab))
        if kind == "page":
            paths = [f"{label}{i}-article" for i in range(suffixes)] if suffixes else [label]
            for path in paths:
                url = f"https://www.example.com{path}"
                vocab.append(("page", None, path, url, json.dumps({"path": path, "url": url})))
        elif kind == "track" and label == "Webinar Attended":
            vocab.extend(("track", label, None, None, json.dumps({"minutes": m})) for m in range(1, 91))
        elif kind == "track" and label.startswith("Email"):
            vocab.extend(("track", label, None, None, json.dumps({"campaign": f"c{c}"})) for c in range(40))
        elif kind == "track":
            vocab.append(("track", label, None, None, "{}"))
        else:
            vocab.append(("identify", None, None, None, "{}"))
        sizes.append(len(vocab) - offsets[-1])
    return vocab, offsets, sizes


VOCAB, OFFSETS, SIZES = _vocabulary()
VOCAB_COLUMNS = {
    name: pa.array([v[i] for v in VOCAB], pa.string())
    for i, name in enumerate(("type", "name", "path", "url", "properties"))
}
WEIGHTS = np.array([k[0] for k in datagen.EVENT_KINDS], dtype=float)
CUMULATIVE = np.cumsum(WEIGHTS / WEIGHTS.sum())


def event_counts(spec: Spec) -> np.ndarray:
    """Events per lead: log-normal weights scaled to the lead share of ``spec.events`` exactly."""
    rng = np.random.default_rng([spec.seed, 1])
    weights = np.exp(rng.normal(0.0, 1.3, spec.leads))
    wanted = spec.events - int(spec.events * datagen.ANONYMOUS_SHARE)
    counts = np.floor(wanted * weights / weights.sum()).astype(np.int64)
    short = wanted - int(counts.sum())
    counts[np.arange(short) % spec.leads] += 1
    return counts


def _prefixed(prefix: str, numbers: np.ndarray, suffix: str = "") -> pa.Array:
    text = pc.cast(pa.array(numbers), pa.string())
    return pc.binary_join_element_wise(prefix, text, suffix, "")


def _events(
    spec: Spec,
    rng: np.random.Generator,
    owner: np.ndarray,
    anonymous: np.ndarray,
    recency: np.ndarray,
    first_seq: int,
) -> pa.Table:
    """Events of the given owners (lead id, or -visitor id for anonymous traffic), vectorised."""
    n = len(owner)
    kind = np.minimum(np.searchsorted(CUMULATIVE, rng.random(n)), len(WEIGHTS) - 1)
    variant = (rng.random(n) * np.take(SIZES, kind)).astype(np.int64)
    word = np.take(OFFSETS, kind) + variant
    future = rng.random(n) < datagen.FUTURE_SHARE
    age = (HISTORY_MS * rng.random(n) ** recency).astype(np.int64)
    ts = np.where(future, spec.as_of + rng.integers(1, 5 * DAY_MS, n), spec.as_of - age)
    is_visitor = owner < 0
    use_anon = (~is_visitor) & anonymous & (rng.random(n) < 0.3)
    users = _prefixed("u:user", np.abs(owner))
    anons = _prefixed("a:anon", np.abs(owner))
    visitors = _prefixed("a:visitor", np.abs(owner) - 1)
    person_key = pc.if_else(pa.array(is_visitor), visitors, pc.if_else(pa.array(use_anon), anons, users))
    indices = pa.array(word.astype(np.int32))
    columns = {
        "message_id": _prefixed("bench-", np.arange(first_seq, first_seq + n)),
        "person_key": person_key,
        "ts": pa.array(ts),
    }
    for name, values in VOCAB_COLUMNS.items():
        columns[name] = pc.take(values, indices)
    return pa.table({name: columns[name] for name in EVENTS.names}, schema=EVENTS)


def event_tables(spec: Spec) -> Iterator[pa.Table]:
    """All events, chunk by chunk: leads ``LEADS_PER_CHUNK`` at a time, then the anonymous visitors."""
    counts = event_counts(spec)
    rng = np.random.default_rng([spec.seed, 2])
    recency_all = rng.uniform(0.6, 2.5, spec.leads)
    seq = 1
    for start in range(0, spec.leads, LEADS_PER_CHUNK):
        ids = np.arange(start + 1, min(start + LEADS_PER_CHUNK, spec.leads) + 1)
        n = counts[ids - 1]
        owner = np.repeat(ids, n)
        table = _events(spec, rng, owner, np.repeat(ids % 5 < 2, n), np.repeat(recency_all[ids - 1], n), seq)
        seq += len(owner)
        yield table
    anonymous_total = spec.events - int(counts.sum())
    visitors = max(1, spec.leads // 2)
    step = LEADS_PER_CHUNK * 50
    for start in range(0, anonymous_total, step):
        n = min(step, anonymous_total - start)
        owner = -(rng.integers(0, visitors, n) + 1)
        yield _events(spec, rng, owner, np.zeros(n, bool), np.ones(n), seq)
        seq += n


def accounts_table(spec: Spec) -> pa.Table:
    rng = np.random.default_rng([spec.seed, 3])
    n = spec.accounts
    employees = (np.exp(rng.normal(4.5, 1.6, n)) + 1).astype(np.int64)
    industry = rng.integers(0, len(datagen.INDUSTRIES), n)
    known = rng.random(n) >= 0.05  # firmographics are never complete
    attributes = [
        json.dumps(
            {"employees": int(e), "industry": datagen.INDUSTRIES[i]}
            if k
            else {"industry": datagen.INDUSTRIES[i]}
        )
        for e, i, k in zip(employees, industry, known, strict=True)
    ]
    ids = np.arange(1, n + 1)
    return pa.table(
        {
            "id": ids,
            "domain": _prefixed("acme-", ids - 1, ".com"),
            "name": _prefixed("Acme ", ids - 1),
            "attributes": pa.array(attributes, pa.string()),
        },
        schema=ACCOUNTS,
    )


def lead_tables(spec: Spec) -> Iterator[pa.Table]:
    rng = np.random.default_rng([spec.seed, 4])
    titles = [
        json.dumps({"job_title": t, "seniority": s, "country": c})
        for t, s in datagen.TITLES
        for c in datagen.COUNTRIES
    ] + [json.dumps({"seniority": s, "country": c}) for _, s in datagen.TITLES for c in datagen.COUNTRIES]
    attribute_words = pa.array(titles, pa.string())
    per_title = len(datagen.COUNTRIES)
    for start in range(0, spec.leads, LEADS_PER_CHUNK):
        ids = np.arange(start + 1, min(start + LEADS_PER_CHUNK, spec.leads) + 1)
        n = len(ids)
        roll = rng.random(n)
        account = rng.integers(0, spec.accounts, n) + 1
        has_account = roll < 0.80
        free = pa.array(np.array(datagen.FREE_MAIL)[rng.integers(0, len(datagen.FREE_MAIL), n)])
        rival = pa.array(np.array(datagen.COMPETITORS)[rng.integers(0, len(datagen.COMPETITORS), n)])
        independent = _prefixed("independent-", ids % 997, ".org")
        domain = pc.if_else(
            pa.array(has_account),
            _prefixed("acme-", account - 1, ".com"),
            pc.if_else(pa.array(roll < 0.92), free, pc.if_else(pa.array(roll < 0.93), rival, independent)),
        )
        title = rng.integers(0, len(datagen.TITLES), n)
        country = rng.integers(0, per_title, n)
        missing_title = rng.random(n) < 0.1
        word = (
            title * per_title + country + np.where(missing_title, len(datagen.TITLES) * per_title, 0)
        ).astype(np.int32)
        yield pa.table(
            {
                "id": ids,
                "email": pc.binary_join_element_wise(_prefixed("lead", ids), domain, "@"),
                "email_domain": domain,
                "first_name": pa.array(["Lead"] * n, pa.string()),
                "last_name": pc.cast(pa.array(ids), pa.string()),
                "company": pc.if_else(
                    pa.array(has_account), pa.nulls(n, pa.string()), _prefixed("Freelance ", ids % 50)
                ),
                "account_id": pa.array(np.where(has_account, account, 0), mask=~has_account),
                "attributes": pc.take(attribute_words, pa.array(word)),
            },
            schema=LEADS,
        )


def identity_tables(spec: Spec) -> Iterator[pa.Table]:
    for start in range(0, spec.leads, LEADS_PER_CHUNK):
        ids = np.arange(start + 1, min(start + LEADS_PER_CHUNK, spec.leads) + 1)
        anon = ids[ids % 5 < 2]
        keys = pa.concat_arrays([_prefixed("u:user", ids), _prefixed("a:anon", anon)])
        yield pa.table({"key": keys, "lead_id": np.concatenate([ids, anon])}, schema=IDENTITIES)


def write(spec: Spec, out: Path) -> dict[str, int]:
    """Write the four relations under ``out``; returns rows per relation."""
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    pq.write_table(accounts_table(spec), out / "accounts.parquet")
    rows["accounts"] = spec.accounts
    for name, tables, schema in (
        ("leads", lead_tables(spec), LEADS),
        ("identities", identity_tables(spec), IDENTITIES),
    ):
        with pq.ParquetWriter(out / f"{name}.parquet", schema) as writer:
            rows[name] = 0
            for table in tables:
                writer.write_table(table, row_group_size=ROW_GROUP)
                rows[name] += table.num_rows
    events_dir = out / "events"
    events_dir.mkdir(exist_ok=True)
    rows["events"] = 0
    for i, table in enumerate(event_tables(spec)):
        pq.write_table(table, events_dir / f"part-{i:05d}.parquet", row_group_size=ROW_GROUP)
        rows["events"] += table.num_rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--leads", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = write(Spec(args.leads, args.events, args.seed), args.out)
    print(f"wrote {rows} to {args.out} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
