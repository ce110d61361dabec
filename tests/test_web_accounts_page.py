"""The accounts list (``web.data.accounts.account_page``) on a store built row by row, every row, total and
page worked out by hand: ordered by the account score (-1 where the lifecycle has none), then engaged
contacts, then the best contact's score, then id; filtered by name, target list and MQA. The page reads
only the accounts whose account score reaches its last row's (``FEW_ACCOUNTS`` or fewer, through the
leads' account index) or every account in one pass over the scores: both give the same pages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import insert, select

from leadscore.model import loads_model
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.schema import account_stages, accounts, leads, model_versions, scores
from leadscore.web.data import accounts as account_data

MODEL = """
model: tiny
fit:
  - {id: any, name: Anyone, when: {attribute: country, equals: de}, points: 10}
"""
# account → (its account score and stage, or None: the lifecycle has not scored it)
ACCOUNTS: dict[str, tuple[float, str] | None] = {
    "alpha": (80.0, "mqa"),
    "beta": (50.0, "none"),
    "gamma": (50.0, "none"),
    "delta": (50.0, "none"),
    "eps": None,
    "zeta": None,  # no contact at all
    "eta": (20.0, "none"),
    "theta": None,
}
# contact → (account, score, engagement score, band), or a contact with no score (None)
CONTACTS: dict[str, tuple[str, float, float, str] | tuple[str, None, None, None]] = {
    "a1": ("alpha", 40.0, 10.0, "cold"),
    "b1": ("beta", 90.0, 40.0, "hot"),
    "b2": ("beta", 10.0, 5.0, "cold"),
    "g1": ("gamma", 70.0, 50.0, "warm"),
    "g2": ("gamma", 60.0, 36.0, "warm"),
    "d1": ("delta", 95.0, 30.0, "hot"),
    "d2": ("delta", None, None, None),
    "e1": ("eta", 99.0, 99.0, "hot"),
    "p1": ("eps", 55.0, 60.0, "warm"),
    "t1": ("theta", 80.0, 40.0, "warm"),
}
# an engaged contact: engagement 35 or more. Per account, by hand:
# (name, contacts, engaged, best, average, hot, stage, account score)
ROWS = {
    "alpha": ("alpha", 1, 0, 40.0, 40.0, 0, "mqa", 80.0),
    "gamma": ("gamma", 2, 2, 70.0, 65.0, 0, "none", 50.0),  # g1 50 and g2 36 engaged
    "beta": ("beta", 2, 1, 90.0, 50.0, 1, "none", 50.0),  # b1 engaged (40), b2 not
    "delta": ("delta", 2, 0, 95.0, 95.0, 1, "none", 50.0),  # d2 has no score: a contact only
    "eta": ("eta", 1, 1, 99.0, 99.0, 1, "none", 20.0),
    "theta": ("theta", 1, 1, 80.0, 80.0, 0, None, None),
    "eps": ("eps", 1, 1, 55.0, 55.0, 0, None, None),
    "zeta": ("zeta", 0, 0, None, None, 0, None, None),
}
# account score first (alpha 80; beta, gamma, delta tied at 50, ordered by engaged 2, 1, 0; eta 20; theta,
# eps and zeta without one, -1: theta and eps with 1 engaged, theta first by its best score 80 against 55)
ORDER = ["alpha", "gamma", "beta", "delta", "eta", "theta", "eps", "zeta"]


def _build(store: Store) -> None:
    publish(store, loads_model(MODEL))
    with store.begin() as conn:
        version = conn.execute(select(model_versions.c.id)).scalar_one()
        ids = {}
        for name, staged in ACCOUNTS.items():
            ids[name] = conn.execute(
                insert(accounts)
                .values(
                    domain=f"{name}.example",
                    name=name.capitalize(),
                    attributes={},
                    created_ms=1,
                    updated_ms=1,
                )
                .returning(accounts.c.id)
            ).scalar_one()
            if staged is not None:
                conn.execute(
                    insert(account_stages).values(
                        account_id=ids[name],
                        stage=staged[1],
                        score=staged[0],
                        fit_score=0.0,
                        engagement_score=0.0,
                        engaged_contacts=0,
                        target=False,
                        entered_ms=1,
                        updated_ms=1,
                    )
                )
        for email, (account, score, engagement, band) in CONTACTS.items():
            lead = conn.execute(
                insert(leads)
                .values(
                    email=f"{email}@{account}.example",
                    account_id=ids[account],
                    attributes={},
                    created_ms=1,
                    updated_ms=1,
                )
                .returning(leads.c.id)
            ).scalar_one()
            if score is not None:
                conn.execute(
                    insert(scores).values(
                        lead_id=lead,
                        score_name="primary",
                        model_version_id=version,
                        as_of_ms=1,
                        score=score,
                        fit_score=score,
                        engagement_score=engagement,
                        grade="A",
                        level=1,
                        band=band,
                        scored_ms=1,
                    )
                )


def _page(store: Store, page: int, **filters: Any) -> tuple[list[tuple[Any, ...]], int, int, int]:
    targets = frozenset({"gamma.example", "eps.example"})
    with store.connect() as conn:
        found = account_data.account_page(conn, page, targets, engaged_from=35.0, **filters)
    rows = [
        (r["domain"].removesuffix(".example"), r["contacts"], r["engaged"], r["best"],
         None if r["average"] is None else pytest.approx(r["average"]), r["hot"], r["stage"], r["account_score"])
        for r in found.rows
    ]  # fmt: skip
    assert all(r["target"] == (r["domain"] in targets) for r in found.rows)
    return rows, found.total, found.page, found.pages


@pytest.mark.parametrize("few", [2_000, 0], ids=["candidates", "every account"])
def test_account_pages_by_hand(store: Store, monkeypatch: pytest.MonkeyPatch, few: int) -> None:
    _build(store)
    monkeypatch.setattr(account_data, "PAGE_SIZE", 2)
    monkeypatch.setattr(account_data, "FEW_ACCOUNTS", few)
    rows = [ROWS[name] for name in ORDER]
    # 8 accounts, 2 a page: 4 pages; a page past the last is the last
    for page in (1, 2, 3, 4):
        assert _page(store, page) == (rows[2 * page - 2 : 2 * page], 8, page, 4)
    assert _page(store, 9) == (rows[6:], 8, 4, 4)
    assert _page(store, 0) == (rows[:2], 8, 1, 4)
    # "ta" is in beta, delta, eta, theta and zeta: beta and delta tie at 50 (engaged 1, 0)
    assert _page(store, 1, q="TA") == ([ROWS["beta"], ROWS["delta"]], 5, 1, 3)
    assert _page(store, 2, q="ta") == ([ROWS["eta"], ROWS["theta"]], 5, 2, 3)
    assert _page(store, 3, q="ta") == ([ROWS["zeta"]], 5, 3, 3)
    assert _page(store, 1, only_mqa=True) == ([ROWS["alpha"]], 1, 1, 1)
    assert _page(store, 1, only_targets=True) == ([ROWS["gamma"], ROWS["eps"]], 2, 1, 1)
    assert _page(store, 1, q="zzz") == ([], 0, 1, 1)
