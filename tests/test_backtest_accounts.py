"""The backtest scores its checkpoints an account at a time (``backtest.by_account``, in chunks of whole
accounts: ``backtest.account_chunks``): the order and the chunks by hand, and the same scores whatever chunks the checkpoints fall in (an account split across chunks still counts
its colleagues' earlier events), on both engines. Every expected number is worked out in the comments."""

from __future__ import annotations

import time
from typing import Any

import pytest

from leadscore.ingest.segment import normalise
from leadscore.learn import backtest
from leadscore.learn.backtest import account_chunks, by_account, checkpoints, replay
from leadscore.learn.labels import DAY_MS
from leadscore.model import loads_model
from leadscore.scoring import run
from leadscore.scoring.pipeline import ingest
from leadscore.store import Store
from leadscore.store.people import find_lead

T0 = 1_714_521_600_000  # 2024-05-01T00:00:00Z, the start of the period
END = T0 + 7 * DAY_MS
HOUR = 3_600_000

# Score = engagement (fit weight 0): a demo of the lead's own 10 points; 2+ demos by the account's people
# within 7 days 50 more. No decay.
MODEL = """
model: committee
engagement:
  - {id: demo, name: Asked for a demo, event: {type: track, name: Demo}, points: 10}
  - {id: team, name: 2+ demos of the account in 7 days, kind: threshold, scope: account,
     event: {type: track, name: Demo}, at_least: 2, within: 7d, points: 50}
scale: {weights: {fit: 0, engagement: 1}}
"""
# Ingested in this order, so lead ids interleave the accounts: ann < eve < bo < zed < cy.
PEOPLE = {"ann": "acme", "eve": "beta", "bo": "acme", "zed": None, "cy": "acme"}
DEMOS = {"ann": 1, "eve": 1, "bo": 2, "zed": 3, "cy": 3}  # the day of each one's demo
_n = iter(range(1_000_000))


def _msg(user: str, kind: str, at: int, **fields: Any) -> dict[str, Any]:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at / 1000)) + "Z"
    return {"type": kind, "userId": user, "messageId": f"{user}-{next(_n)}", "timestamp": stamp, **fields}


def _history(store: Store) -> dict[str, int]:
    raws = []
    for user, company in PEOPLE.items():  # known before the period: each has a checkpoint at its start
        domain = f"{company}.example" if company else "mail.example"
        raws.append(_msg(user, "identify", T0 - DAY_MS, traits={"email": f"{user}@{domain}"}))
        if company:
            raws.append(
                _msg(user, "group", T0 - DAY_MS, groupId=company, traits={"name": company, "domain": domain})
            )
    raws += [_msg(user, "track", T0 + day * DAY_MS + HOUR, event="Demo") for user, day in DEMOS.items()]
    ingest(store, [normalise(r, received_ms=END) for r in raws], source="test", as_of=END)
    with store.connect() as conn:
        found = {user: find_lead(conn, external_id=user) for user in PEOPLE}
    return {user: lead for user, lead in found.items() if lead is not None}


def test_checkpoints_by_account_then_time_then_lead(store: Store) -> None:
    ids = _history(store)
    name = {lead: user for user, lead in ids.items()}
    with store.connect() as conn:
        ordered = by_account(conn, store.sources(), checkpoints(conn, T0, END))
    got = [(name[lead], (at - T0) // DAY_MS) for lead, at in ordered]
    # acme (created first: ann's group) at the start, ann < bo < cy, then each demo's day; beta; zed alone
    assert got == [("ann", 0), ("bo", 0), ("cy", 0), ("ann", 1), ("bo", 2), ("cy", 3),
                   ("eve", 0), ("eve", 1), ("zed", 0), ("zed", 3)]  # fmt: skip


@pytest.mark.parametrize(
    ("chunk", "expected"),
    [
        # every account with more checkpoints than a chunk in ceil(n / 1) equal parts (``LARGEST`` 1)
        (1, [["ann0"], ["bo0"], ["cy0"], ["ann1"], ["bo2"], ["cy3"], ["eve0"], ["eve1"], ["zed0"], ["zed3"]]),
        # acme's 6 in 2 parts of 3; beta's 2 packed, zed's 2 do not fit beside them
        (3, [["ann0", "bo0", "cy0"], ["ann1", "bo2", "cy3"], ["eve0", "eve1"], ["zed0", "zed3"]]),
        # acme's 6 in 2 parts of 3 (not 4 and 2); beta and zed packed together (4 <= 4)
        (4, [["ann0", "bo0", "cy0"], ["ann1", "bo2", "cy3"], ["eve0", "eve1", "zed0", "zed3"]]),
        (5000, [["ann0", "bo0", "cy0", "ann1", "bo2", "cy3", "eve0", "eve1", "zed0", "zed3"]]),
    ],
)
def test_chunks_of_whole_accounts(
    store: Store, chunk: int, expected: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _history(store)
    name = {lead: user for user, lead in ids.items()}
    monkeypatch.setattr(run, "POINTS_CHUNK", chunk)
    with store.connect() as conn:
        chunks = account_chunks(conn, store.sources(), checkpoints(conn, T0, END))
    assert [[f"{name[lead]}{(at - T0) // DAY_MS}" for lead, at in c] for c in chunks] == expected


@pytest.mark.parametrize(("chunk", "largest"), [(1, 1), (2, 1), (3, 1), (2, 4), (5000, 4)])
def test_scores_do_not_depend_on_the_chunks(
    store: Store, chunk: int, largest: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _history(store)
    monkeypatch.setattr(run, "POINTS_CHUNK", chunk)
    monkeypatch.setattr(backtest, "LARGEST", largest)
    with store.connect() as conn:
        rp = replay(conn, store.sources(), loads_model(MODEL), checkpoints(conn, T0, END), T0, END)
    got = {
        user: [((f.scored_ms - T0) // DAY_MS, f.score) for f in rp.path[lead]] for user, lead in ids.items()
    }
    # nobody scored anything at the start; each demo 10, and acme's second demo (bo's, day 2) brings its
    # 2+ demos within 7 days: bo 60 on day 2 (with chunks of 2 and an account in at most 2 checkpoints a
    # part, acme's parts are [ann 0, bo 0], [cy 0, ann 1], [bo 2, cy 3]: ann's day-1 demo is read by the
    # look-back), cy 60 on day 3; ann's day 1 saw one demo
    assert got == {"ann": [(0, 0), (1, 10)], "eve": [(0, 0), (1, 10)], "bo": [(0, 0), (2, 60)],
                   "zed": [(0, 0), (3, 10)], "cy": [(0, 0), (3, 60)]}  # fmt: skip
