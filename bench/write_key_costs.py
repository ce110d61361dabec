"""What a write key can make the processor and the clock pay: three inputs whose cost grew faster than
their size (twenty-first session).

    python bench/write_key_costs.py                       # SQLite
    python bench/write_key_costs.py --people 800 --url postgresql://postgres@127.0.0.1:5432/test

* ``leave``: ``--people`` people in one account with an account-scope committee rule, each with a probe;
  then batches of two ``group`` calls moving one of them out of the account and back. Prints the CPU
  seconds of each such batch (every colleague left was rescored with its whole history in the batch).
* ``probe``: in that account, batches of one probe (an account-scope rule's window changes, below).
* ``crowd``: a batch of a probe from each of 500 of its people (the colleagues were found as a pair per
  person and colleague: the batch times the account).
* ``tick``: the clock's tick over the colleagues left due by the account's load (the window changes'
  statement took the (type, ts, path) index on SQLite).
* ``anon``: one person's page views, batches of 500, each view with a new anonymous id (each link
  replays her whole history, bounded per lead since main's 799c2bd). Prints the first and last batch.
* ``fold``: one person's identifies, batches of 500, in time order (the baseline), each older than what
  she has, and each removing a property (``$unset``): the last two fold her set-once properties again at
  every identify, which read all of her identifies each time until ws-stall3. Prints the last batch's
  ratio to the baseline's.
* ``chain``: ``--people`` leads, then as many aliases chaining them (c0 → c1 → …), each merging the chain
  so far into the next lead, against as many page views of new people. Prints the ratio.

CPU seconds of this process (on PostgreSQL the server's work shows in the wall seconds, printed too).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from alias_merges import NOW, timed_batch
from rescore import add_url_option, url_store

from leadscore.model import load_model
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import publish, refresh_statistics
from leadscore.store import Store

MODEL = Path(__file__).resolve().parents[1] / "examples" / "b2b_saas" / "model.yaml"
DAY = 86_400_000
# 40 points to every lead of an account where two or more people probed within 30 days
COMMITTEE = Path(__file__).resolve().parents[1] / "tests" / "models" / "committee.yaml"


def fill_account(store: Store, people: int) -> None:
    """``people`` in account y, each with a probe, in batches of 250 people (500 messages); then PostgreSQL's
    planner statistics, as a running processor keeps them (without, one probe's scoring statement took
    2.5 s of the server's time in an account of 1,600)."""
    for start in range(0, people, 250):
        timed_batch(store, [m for i in range(start, min(people, start + 250)) for m in (
            {"type": "group", "userId": f"p{i}", "groupId": "y", "messageId": f"g{i}", "timestamp": NOW - 3 * DAY,
             "traits": {"domain": "y.com"}},
            {"type": "track", "userId": f"p{i}", "event": "Probe", "messageId": f"t{i}", "timestamp": NOW - 2 * DAY},
        )])  # fmt: skip
    refresh_statistics(store)


def leave(store: Store, people: int, rounds: int) -> list[tuple[float, float]]:
    """Batches of two group calls: p0 out of y and back."""
    out = []
    for r in range(rounds):
        out.append(timed_batch(store, [
            {"type": "group", "userId": "p0", "groupId": "z", "messageId": f"out{r}", "timestamp": NOW - DAY + 2 * r,
             "traits": {"domain": "z.com"}},
            {"type": "group", "userId": "p0", "groupId": "y", "messageId": f"in{r}", "timestamp": NOW - DAY + 2 * r + 1,
             "traits": {"domain": "y.com"}},
        ]))  # fmt: skip
    return out


def timed_tick(store: Store) -> tuple[int, float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    leads = tick(store, now=NOW + DAY).leads
    return leads, time.process_time() - cpu, time.perf_counter() - wall


def views(batch: int) -> list[dict[str, Any]]:
    """500 page views of one person, each with a new anonymous id."""
    return [{"type": "page", "userId": "u", "anonymousId": f"a{batch}-{k}", "messageId": f"p{batch}-{k}",
             "timestamp": NOW - DAY + batch * 1000 + k, "properties": {"path": "/pricing"}}
            for k in range(500)]  # fmt: skip


def anon(store: Store, batches: int) -> list[tuple[float, float]]:
    return [timed_batch(store, views(b)) for b in range(batches)]


def identifies(batch: int, order: str) -> list[dict[str, Any]]:
    """500 identifies of one person: in time order, each older than the ones before, or each an $unset."""
    out = []
    for k in range(batch * 500, batch * 500 + 500):
        ts = NOW - DAY - k if order == "older" else NOW - DAY + k
        context = {"traits_unset": ["plan"]} if order == "unset" else {}
        out.append({"type": "identify", "userId": "f", "messageId": f"f{k}", "timestamp": ts,
                    "traits": {"title": f"t{k}"}, "context": context})  # fmt: skip
    return out


def fold(url: str | None, batches: int) -> dict[str, float]:
    """The CPU seconds of the last of ``batches`` batches of identifies, for each order."""
    out = {}
    for order in ("in order", "older", "unset"):
        with url_store(url) as store:
            publish(store, load_model(MODEL))
            out[order] = [timed_batch(store, identifies(b, order)) for b in range(batches)][-1][0]
    return out


def chain(url: str | None, people: int) -> tuple[float, float]:
    """(CPU seconds of ``people`` page views of new people, of ``people`` - 1 aliases chaining as many leads)."""
    with url_store(url) as store:
        publish(store, load_model(MODEL))
        views = timed_batch(store, [{"type": "page", "userId": f"v{i}", "messageId": f"v{i}", "timestamp": NOW - DAY,
                                     "properties": {"path": "/pricing"}} for i in range(people)])  # fmt: skip
        timed_batch(store, [{"type": "identify", "userId": f"c{i}", "messageId": f"c{i}", "timestamp": NOW - DAY,
                             "traits": {"title": "CTO"}} for i in range(people)])  # fmt: skip
        aliases = timed_batch(store, [{"type": "alias", "previousId": f"c{i}", "userId": f"c{i + 1}",
                                       "messageId": f"al{i}", "timestamp": NOW - DAY + 1 + i}
                                      for i in range(people - 1)])  # fmt: skip
    return views[0], aliases[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=1600, help="people in the account (leave)")
    parser.add_argument("--tick-people", type=int, default=800, help="people in the account (tick)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--batches", type=int, default=6, help="batches of 500 page views (anon), identifies (fold)"
    )
    parser.add_argument("--chain", type=int, default=1200, help="leads chained by aliases (chain)")
    add_url_option(parser)
    args = parser.parse_args()
    with url_store(args.url) as store:
        publish(store, load_model(COMMITTEE))
        fill_account(store, args.people)
        probes = [timed_batch(store, [{"type": "track", "userId": "p1", "event": "Probe", "messageId": f"again{r}",
                                       "timestamp": NOW - DAY + r}]) for r in range(args.rounds)]  # fmt: skip
        members = min(500, args.people)
        crowd = timed_batch(store, [{"type": "track", "userId": f"p{k}", "event": "Probe", "messageId": f"crowd{k}",
                                     "timestamp": NOW - DAY // 2} for k in range(members)])  # fmt: skip
        moves = leave(store, args.people, args.rounds)
    with url_store(args.url) as store:
        publish(store, load_model(COMMITTEE))
        fill_account(store, args.tick_people)
        leads, tick_cpu, tick_wall = timed_tick(store)
    with url_store(args.url) as store:
        publish(store, load_model(MODEL))
        flood = anon(store, args.batches)
    folds = fold(args.url, args.batches)
    views_cpu, chain_cpu = chain(args.url, args.chain)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"leave ({args.people} people): two group calls " + ", ".join(f"{c:.2f}" for c, _ in moves)
          + " CPU-s (" + ", ".join(f"{w:.2f}" for _, w in moves) + " s)")  # fmt: skip
    print(f"probe ({args.people} people): one probe " + ", ".join(f"{c:.2f}" for c, _ in probes) + " CPU-s ("
          + ", ".join(f"{w:.2f}" for _, w in probes) + " s)")  # fmt: skip
    print(
        f"crowd ({args.people} people): {members} probes of as many {crowd[0]:.2f} CPU-s ({crowd[1]:.2f} s)"
    )
    print(f"tick ({args.tick_people} people): {leads} leads {tick_cpu:.2f} CPU-s ({tick_wall:.2f} s)")
    print(f"anon: batch 1 {flood[0][0]:.2f} CPU-s, batch {len(flood)} {flood[-1][0]:.2f} CPU-s "
          f"({flood[-1][1]:.2f} s)")  # fmt: skip
    base = folds["in order"]
    print(
        f"fold: batch {args.batches} of one person's identifies, in order {base:.2f} CPU-s, older "
        f"{folds['older']:.2f} ({folds['older'] / base:.1f}x), unset {folds['unset']:.2f} ({folds['unset'] / base:.1f}x)"
    )
    print(f"chain: {args.chain} page views {views_cpu:.2f} CPU-s, {args.chain - 1} chaining aliases {chain_cpu:.2f} "
          f"({chain_cpu / views_cpu:.1f}x); load {load}")  # fmt: skip


if __name__ == "__main__":
    main()
