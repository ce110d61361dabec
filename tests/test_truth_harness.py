"""One scenario, every surface: a store driven through a hostile but legal sequence (events through the
Segment API, an anonymous visitor aliased onto a known lead, the clock moving so a window closes and a
decay runs, a publication and its rollback, a second named score, a consent withdrawal, an erasure), and
after every step the same leads read from every surface that shows a score: ``GET /v1/leads`` (JSON and
CSV), ``GET /v1/leads/{ref}`` (and ``?score=``), the explanation endpoint, ``leadscore score -f json|csv``,
``leadscore explain``, ``leadscore history``, the dashboard's lead page, leads list, matrix and account
page, the accounts report (API and CLI) and the segments. Each shows the number the model computes as of
the scenario's clock (``scoring.run.score_leads``, the one definition; the stored score is that number
after a clock tick), with the grade and band that number gives, and every explanation's lines add up to
the score it explains.

The numbers of the first steps are worked out by hand from ``CORE`` below (see ``test_by_hand``)."""

from __future__ import annotations

import csv
import io
import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.ingest.segment import parse_time
from leadscore.lifecycle.accounts import account_scores
from leadscore.lifecycle.context import lead_context
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring import run
from leadscore.scoring.clock import tick
from leadscore.scoring.pipeline import activate_version, active_model, publish
from leadscore.scoring.processor import process_pending
from leadscore.scoring.run import score_leads
from leadscore.scoring.shown import cut, cut_text
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.lifecycle_tables import segment_member_ids
from leadscore.store.people import find_lead
from leadscore.store.results import read_current
from leadscore.store.schema import account_stages, accounts
from leadscore.store.users import add_user
from live_server import serving
from test_api_tracking import basic
from web_support import PASSWORD, signed_in

DAY = 86_400_000
T0 = parse_time("2024-05-01T00:00:00Z", "t0")

# fit: a marketing title 30 of fit_max 50 (fit 60, grade B); engagement of engagement_max 100:
# a pricing page 10 each within 14 days, a demo request 40 once, halving every 10 days.
# score = (fit + engagement) / 2; bands hot ≥ 60, warm ≥ 40; grades A ≥ 75, B ≥ 50, C ≥ 25.
CORE = """
model: core
fit:
  - {id: marketing, name: Marketing role, when: {attribute: job_title, contains: marketing}, points: 30}
  - {id: big, name: Big company, when: {attribute: account.employees, gte: 500}, points: 10}
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 10, window: 14d}
  - {id: demo, name: Demo request, kind: once, event: {type: track, name: Demo Requested}, points: 40, half_life: 10d}
scale:
  fit_max: 50
  engagement_max: 100
  weights: {fit: 1, engagement: 1}
  grades: {A: 75, B: 50, C: 25}
  bands: {hot: 60, warm: 40}
lifecycle:
  initial: lead
  nurture: [lead]
  stages: [{id: lead, name: Lead}, {id: mql, name: MQL}]
  teams:
    - id: emea
      name: EMEA
      manager: {name: Maja Lind, email: maja@vendor.example}
      sellers: [{id: erik, name: Erik Holm, email: erik@vendor.example}]
  assignment: {stage: mql, default_team: emea, sla: 4h}
  transitions:
    - {id: qualified, from: [lead], to: mql, when: {score_at_least: 60}}
  segments:
    - {id: sixty, name: Score 60 or more, score_at_least: 60}
    - {id: hot, name: Hot leads, bands: [hot]}
  accounts:
    committee_size: 2
    engaged_at_least: 30
    weights: {fit: 0.5, engagement: 0.5}
    mqa: {score_at_least: 50, engaged_contacts_at_least: 1}
"""
# the second version: a pricing page is worth 20
CORE_2 = CORE.replace("points: 10, window: 14d", "points: 20, window: 14d")
# a second named score: pricing pages only, 25 each, engagement only
PRODUCT = """
model: product
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 25}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 60, warm: 40}}
"""
USERS = ("ann", "bob")


def _stamp(at: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(at / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class World:
    store: Store
    url: str
    write: str
    read: str
    ticking: _Clock
    names: list[str | None] = field(default_factory=lambda: [None])
    gone: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)
    reported: set[str] = field(default_factory=set)  # the reports that listed one of the leads
    n: int = 0

    @property
    def clock(self) -> int:
        return self.ticking.at

    @clock.setter
    def clock(self, at: int) -> None:
        self.ticking.at = at

    @property
    def db(self) -> list[str]:
        return ["--db", str(self.store.url)]

    def send(self, *messages: dict[str, Any]) -> None:
        """Messages through the Segment API's /v1/batch, then the inbox processed, then the clock ticked
        and a lifecycle round run at the scenario's clock (what a running server does within a tick)."""
        self.clock += 1  # each write a millisecond after the last, as on a real clock (see ``later``)
        batch = []
        for m in messages:
            self.n += 1
            batch.append({"messageId": f"m{self.n}", "timestamp": _stamp(self.clock), **m})
        answer = httpx.post(f"{self.url}/v1/batch", json={"batch": batch}, headers=basic(self.write))
        assert answer.status_code == 200, answer.text
        processed = 0  # the server's processor is off: the batch waits in the inbox until drained here
        while process_pending(self.store):
            processed += 1
        assert processed >= 1, "the batch left nothing in the inbox to process"
        self.settle()

    def later(self) -> None:
        """A millisecond on, as a real clock moves between writes (a write in the millisecond the lifecycle
        runner last saw is evaluated too: tests/test_lifecycle_same_ms.py)."""
        self.clock += 1

    def settle(self) -> None:
        tick(self.store, self.clock)
        run_round(self.store, Settings(database_url=str(self.store.url)), now_ms=self.clock, deliver=False)

    def lead(self, user: str) -> int:
        with self.store.connect() as conn:
            found = find_lead(conn, external_id=user)
        assert found is not None, user
        return found


class _Clock:
    """``time`` as ``scoring.run`` sees it (``now_ms``, the one reading of now: the processor's, the clock's,
    the API's): the scenario's clock, the rest of the module as it is."""

    def __init__(self) -> None:
        self.at = T0

    def time(self) -> float:
        return self.at / 1000

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@contextmanager
def world(store: Store, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clock = _Clock()
    monkeypatch.setattr(run, "time", clock)
    publish(store, loads_model(CORE), as_of=T0)
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
        _, read = create_key(conn, "read", "crm", 0)
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        yield World(store, url, write, read, clock)


def _truth(w: World, user: str, name: str | None) -> Any:
    """The model's score of ``user`` as of the clock: the active version of ``name`` run now."""
    with w.store.connect() as conn:
        active = active_model(conn, name)
        assert active is not None
        [ledger] = score_leads(conn, active.model, w.store.sources(), [w.lead(user)], w.clock)
    return ledger


def _adds_up(lines: list[dict[str, Any]], score: float) -> None:
    # ledger lines are not rounded: they add up to the kept score within half a millionth
    assert abs(sum(line["score_points"] for line in lines) - score) < 1e-6, (lines, score)


def check(w: World, web: httpx.Client, step: str) -> None:
    """Every surface against the model's score now, for each user still there and each score."""
    cli = CliRunner()
    auth = {"Authorization": f"Bearer {w.read}"}
    for name in w.names:
        q = {} if name is None else {"score": name}
        sn = [] if name is None else ["--score", name]
        listed = httpx.get(
            f"{w.url}/v1/leads", params={**q, "limit": 500}, headers={"Authorization": f"Bearer {w.read}"}
        )
        assert listed.status_code == 200, listed.text
        api_rows = {r["lead_id"]: r for r in listed.json()["leads"]}
        exported = httpx.get(
            f"{w.url}/v1/leads", params={**q, "format": "csv"}, headers={"Authorization": f"Bearer {w.read}"}
        )
        csv_rows = {int(r["lead_id"]): r for r in csv.DictReader(io.StringIO(exported.text))}
        as_of = ["--as-of", _stamp(w.clock)]
        scored = cli.invoke(cli_app, ["score", "-f", "json", *as_of, *sn, *w.db])
        assert scored.exit_code == 0, scored.output
        cli_rows = {r["lead_id"]: r for r in json.loads(scored.stdout)}
        for user in USERS:
            if user in w.gone:
                continue
            lead = w.lead(user)
            truth = _truth(w, user, name)
            where = f"{step}: {user} ({name or 'primary'})"
            # the store, the one number every list reads: the model's score as of the clock, or, when
            # time alone moved it by less than the clock's tolerance (docs/ingest.md: under 1 point, on
            # the same side of every threshold), as of its own time
            with w.store.connect() as conn:
                stored, lines = read_current(conn, lead, name)
            assert stored is not None, where
            assert (stored["grade"], stored["band"]) == (truth.grade, truth.band), where
            if stored["as_of_ms"] == w.clock:
                assert stored["score"] == truth.score, where
            else:
                assert stored["as_of_ms"] < w.clock and abs(stored["score"] - truth.score) < 1, where
            shown = (stored["score"], stored["grade"], stored["band"])
            _adds_up(lines, stored["score"])
            # GET /v1/leads, its CSV export, GET /v1/leads/{ref}, the explanation
            # every list of people (the API's pages and exports, the CLI) leaves out whoever withdrew
            # tracking consent, and only her
            listed = user not in w.withdrawn
            assert (lead in api_rows) == (lead in csv_rows) == (lead in cli_rows) == listed, where
            if listed:
                row = api_rows[lead]
                assert (row["score"], row["grade"], row["band"]) == shown, where
            if lead in csv_rows:
                assert (float(csv_rows[lead]["score"]), csv_rows[lead]["band"]) == shown[::2], where
            one = httpx.get(
                f"{w.url}/v1/leads/{user}", params=q, headers={"Authorization": f"Bearer {w.read}"}
            )
            assert one.status_code == 200, (where, one.text)
            assert (one.json()["score"]["score"], one.json()["score"]["band"]) == shown[::2], where
            _adds_up(one.json()["ledger"], stored["score"])
            ex = httpx.get(
                f"{w.url}/v1/leads/{user}/explanation",
                params=q,
                headers={"Authorization": f"Bearer {w.read}"},
            )
            assert ex.status_code == 200, (where, ex.text)
            explanation = ex.json()["explanation"]
            assert explanation["score"] == stored["score"], where
            _adds_up(explanation["lines"], stored["score"])
            # leadscore score -f json (its numbers cut to two decimals) and leadscore explain as of the
            # clock: the model now
            if lead in cli_rows:
                assert (cli_rows[lead]["score"], cli_rows[lead]["band"]) == (
                    cut(truth.score, 2),
                    truth.band,
                ), where
            explained = cli.invoke(cli_app, ["explain", user, "-f", "json", *as_of, *sn, *w.db])
            assert explained.exit_code == 0, explained.output
            got = json.loads(explained.stdout)
            assert got["score"] == truth.score, where
            _adds_up(got["lines"], truth.score)
            _pages_of(web, lead, stored["score"], name, where, listed)
            # what a webhook's or a mail's template reads (cut, as every screen)
            with w.store.connect() as conn:
                told = lead_context(conn, _truth_model(w), lead, Settings(), name)["lead"]
            assert (told["score"], told["band"]) == (cut(stored["score"]), stored["band"]), where
            # leadscore history: its newest row is the stored score
            history = cli.invoke(cli_app, ["history", user, "-f", "json", *sn, *w.db])
            assert history.exit_code == 0, history.output
            rows = json.loads(history.stdout)
            rows = rows["history"] if isinstance(rows, dict) else rows
            newest = max(rows, key=lambda r: (r["at_ms"], r.get("id", 0)))
            assert newest["score"] == stored["score"], (where, newest)
            # the reports listing her: being nurtured, ready for hand-off (API)
            for report in ("nurtured", "handoff"):
                page = httpx.get(f"{w.url}/v1/reports/{report}", params=q, headers=auth)
                assert page.status_code == 200, page.text
                for r in page.json()["leads"]:
                    if r["lead_id"] == lead:
                        assert r["score"] == stored["score"], (where, report, r)
                        w.reported.add(report)


def check_all(w: World, step: str) -> None:
    with signed_in(w.url, "marketing@example.test") as web:  # a session of the clock's day
        check(w, web, step)
        check_account(w, web, step)
        check_filters(w, web, step)
        check_matrix(w, web, step)


def check_filters(w: World, web: httpx.Client, step: str) -> None:
    """One filter, one set: ``score_at_least: 60`` and ``bands: [hot]`` as segments, as ``GET /v1/leads``
    filters (``min_score=60``, ``band=hot``; JSON and CSV) and as the dashboard's CSV export, less those who
    withdrew consent in every list (the segments' members less them in their exports)."""
    auth = {"Authorization": f"Bearer {w.read}"}
    with w.store.connect() as conn:
        stored = {
            lead: read_current(conn, lead, None)[0] for lead in (w.lead(u) for u in USERS if u not in w.gone)
        }
        members = {seg: segment_member_ids(conn, seg) for seg in ("sixty", "hot")}
    wanted = {
        "sixty": {lead for lead, row in stored.items() if row and row["score"] >= 60},
        "hot": {lead for lead, row in stored.items() if row and row["band"] == "hot"},
    }
    withdrawn = {w.lead(u) for u in w.withdrawn}
    for seg, params in (("sixty", {"min_score": 60}), ("hot", {"band": "hot"})):
        where = f"{step}: segment {seg}"
        assert members[seg] == wanted[seg], where
        listed = httpx.get(f"{w.url}/v1/leads", params=params, headers=auth).json()["leads"]
        assert {r["lead_id"] for r in listed} == wanted[seg] - withdrawn, where
        exported = httpx.get(f"{w.url}/v1/leads", params={**params, "format": "csv"}, headers=auth)
        assert {int(r["lead_id"]) for r in csv.DictReader(io.StringIO(exported.text))} == wanted[
            seg
        ] - withdrawn, where
        seg_csv = httpx.get(f"{w.url}/v1/segments/{seg}/members", params={"format": "csv"}, headers=auth)
        assert seg_csv.status_code == 200, seg_csv.text
        assert {int(r["lead_id"]) for r in csv.DictReader(io.StringIO(seg_csv.text))} == wanted[
            seg
        ] - withdrawn, where
        dashboard = web.get("/leads/export.csv", params=params)
        assert dashboard.status_code == 200, where
        assert {int(r["lead_id"]) for r in csv.DictReader(io.StringIO(dashboard.text))} == wanted[
            seg
        ] - withdrawn, where


def check_account(w: World, web: httpx.Client, step: str, domain: str = "acme") -> None:
    """The account of ``domain``: its score as the model computes it now (``lifecycle.accounts.account_scores``
    over its contacts' stored scores) on the lifecycle's row, the accounts report (API and CLI) and the
    account page (scorecard and the by-score table)."""
    with w.store.connect() as conn:
        acct = conn.execute(select(accounts.c.id).where(accounts.c.domain == domain)).scalar_one_or_none()
        if acct is None:
            acct = conn.execute(select(accounts.c.id).where(accounts.c.name == domain.title())).scalar_one()
        active = active_model(conn)
        assert active is not None and active.model.lifecycle and active.model.lifecycle.accounts
        truth = account_scores(conn, active.model, active.model.lifecycle.accounts, [acct], w.clock)[acct]
        stored = (
            conn.execute(select(account_stages).where(account_stages.c.account_id == acct)).mappings().one()
        )
    where = f"{step}: account {domain}"
    assert stored["score"] == truth.score, where
    assert stored["stage"] == truth.stage(active.model.lifecycle.accounts), where
    report = httpx.get(f"{w.url}/v1/reports/accounts", headers={"Authorization": f"Bearer {w.read}"})
    assert report.status_code == 200, report.text
    [row] = [r for r in report.json()["accounts"] if r["account_id"] == acct]
    assert (row["score"], row["stage"]) == (truth.score, stored["stage"]), where
    listed = CliRunner().invoke(cli_app, ["reports", "accounts", "-f", "json", *w.db])
    assert listed.exit_code == 0, listed.output
    [row] = [r for r in json.loads(listed.stdout) if r["account_id"] == acct]
    assert row["score"] == truth.score, where
    page = web.get(f"/accounts/{acct}")
    assert page.status_code == 200, where
    assert f"<dt>Account score</dt><dd>{cut_text(truth.score)}</dd>" in page.text, where
    by_score = re.search(r"\(primary\)</th><td class=\"num\">([^<]*)</td>", page.text)
    assert by_score is None or by_score.group(1) == cut_text(truth.score), where


def check_matrix(w: World, web: httpx.Client, step: str) -> None:
    """The matrix's cells (grade × level, of each score) count the leads whose stored grade and level
    are those, as ``GET /v1/leads?grade=&level=`` lists them."""
    auth = {"Authorization": f"Bearer {w.read}"}
    for name in w.names:
        q = {} if name is None else {"score": name}
        page = web.get("/leads/matrix", params=q)
        assert page.status_code == 200, page.text
        cells = re.findall(r'aria-label="Grade ([ABCD]), level (\d): (\d+) leads"', page.text)
        assert len(cells) == 16, step
        listed = httpx.get(f"{w.url}/v1/leads", params={**q, "limit": 500}, headers=auth).json()["leads"]
        for grade, level, count in cells:
            ours = [r for r in listed if r["grade"] == grade and r["level"] == int(level)]
            assert int(count) == len(ours), (step, name, grade, level)


def _truth_model(w: World) -> Any:
    with w.store.connect() as conn:
        active = active_model(conn)
    assert active is not None
    return active.model


def _pages_of(web: httpx.Client, lead: int, score: float, name: str | None, where: str, listed: bool) -> None:
    """Her lead page shows her score; the dashboard's list too, unless she withdrew consent (not listed)."""
    q = {} if name is None else {"score": name}
    page = web.get(f"/leads/{lead}", params=q)
    assert page.status_code == 200, where
    assert f'<dt>Score</dt><dd class="big">{cut_text(score)}</dd>' in page.text, where
    listing = web.get("/leads", params=q)
    row = re.search(rf'<a href="/leads/{lead}">.*?<td class="num">([^<]*)</td>', listing.text, re.S)
    if not listed:
        assert row is None and f'href="/leads/{lead}"' not in listing.text, where
        return
    assert row and row.group(1) == cut_text(score), where


cli_app = cli


def _primary(w: World, user: str) -> tuple[float, float, float, str, str]:
    with w.store.connect() as conn:
        row, _ = read_current(conn, w.lead(user), None)
    assert row is not None
    return (
        round(row["score"], 6),
        row["fit_score"],
        round(row["engagement_score"], 6),
        row["grade"],
        row["band"],
    )


@pytest.mark.timeout(900)  # some 40 reads of every surface: minutes on a loaded machine's PostgreSQL
def test_every_surface_shows_the_score_now(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    with world(store, monkeypatch) as w:
        # 1: ann, a marketer at Acme (600 employees); bob in sales at Acme
        w.send(
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@acme.example", "job_title": "Marketing lead"}},
            {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"name": "Acme", "domain": "acme.example", "employees": 600}},
            {"type": "identify", "userId": "bob", "traits": {"email": "bob@acme.example", "job_title": "Sales"}},
            {"type": "group", "userId": "bob", "groupId": "acme", "traits": {"name": "Acme", "domain": "acme.example", "employees": 600}},
        )  # fmt: skip
        # ann: fit 30 + 10 = 40 of 50 = 80 (A), engagement 0: score 40 (warm); bob: fit 10 of 50 = 20 (D): 10
        assert _primary(w, "ann") == (40.0, 80.0, 0.0, "A", "warm")
        assert _primary(w, "bob") == (10.0, 20.0, 0.0, "D", "cold")
        check_all(w, "1 identified")

        # 2: a day later ann views pricing twice and asks for a demo
        w.clock += DAY
        w.send(
            {"type": "page", "userId": "ann", "properties": {"path": "/pricing"}},
            {"type": "page", "userId": "ann", "properties": {"path": "/pricing/team"}},
            {"type": "track", "userId": "ann", "event": "Demo Requested"},
        )
        # engagement 2 × 10 + 40 = 60 (level 2): score (80 + 60) / 2 = 70, hot, an MQL
        assert _primary(w, "ann") == (70.0, 80.0, 60.0, "A", "hot")
        check_all(w, "2 active")

        # 3: a trial user views pricing, then is aliased to ann: merged into her
        w.send({"type": "page", "userId": "ann-trial", "properties": {"path": "/pricing"}})
        w.send({"type": "alias", "userId": "ann", "previousId": "ann-trial"})
        # three pricing pages: engagement 30 + 40 = 70, score 75
        assert _primary(w, "ann") == (75.0, 80.0, 70.0, "A", "hot")
        check_all(w, "3 merged")
        # the merged-away id names her on the API and the CLI
        merged = httpx.get(f"{w.url}/v1/leads/ann-trial", headers={"Authorization": f"Bearer {w.read}"})
        assert merged.status_code == 200 and merged.json()["lead"]["id"] == w.lead("ann"), merged.text
        assert merged.json()["score"]["score"] == 75.0
        told = CliRunner().invoke(
            cli_app, ["explain", "ann-trial", "-f", "json", "--as-of", _stamp(w.clock), *w.db]
        )
        assert told.exit_code == 0 and json.loads(told.stdout)["score"] == 75.0, told.output

        # 4: fifteen days pass with no event: the pricing pages (day 1) leave the 14-day window on day 15,
        # the demo halves every 10 days. At day 16: engagement 40 × 0.5^1.5 = 14.142136, score 47.071068
        w.clock += 15 * DAY
        w.settle()
        assert _primary(w, "ann") == (47.071068, 80.0, 14.142136, "A", "warm")
        check_all(w, "4 time passed")

        # 5: a pricing page (10): engagement 24.142136, score 52.071068; then version 2 (a page 20):
        # 34.142136, 57.071068; then the rollback to version 1
        w.send({"type": "page", "userId": "ann", "properties": {"path": "/pricing"}})
        assert _primary(w, "ann") == (52.071068, 80.0, 24.142136, "A", "warm")
        first = _version(w)
        w.later()
        publish(store, loads_model(CORE_2), as_of=w.clock)
        w.settle()
        assert _primary(w, "ann") == (57.071068, 80.0, 34.142136, "A", "warm")
        check_all(w, "5 published")
        w.later()
        activate_version(store, first, action="rolled back", as_of=w.clock)
        w.settle()
        assert _primary(w, "ann") == (52.071068, 80.0, 24.142136, "A", "warm")
        check_all(w, "5 rolled back")

        # 6: a second named score: ann's four pricing pages × 25 = 100, bob 0
        w.later()
        publish(store, loads_model(PRODUCT), as_of=w.clock, score_name="product")
        w.names.append("product")
        w.settle()
        check_all(w, "6 named score")

        # 7: ann withdraws tracking consent; a day later
        w.clock += DAY
        w.send({"type": "identify", "userId": "ann", "traits": {"consent_tracking": False}})
        w.withdrawn.add("ann")
        check_all(w, "7 consent withdrawn")

        # 8: bob is erased
        w.later()
        erased = CliRunner().invoke(cli_app, ["privacy", "erase", "bob@acme.example", "--yes", *w.db])
        assert erased.exit_code == 0, erased.output
        w.gone.add("bob")
        w.settle()
        check_all(w, "8 erased")
        # ann was ready for hand-off (an MQL, assigned) and bob nurtured (a lead): both reports compared
        assert w.reported == {"nurtured", "handoff"}


def _version(w: World) -> int:
    with w.store.connect() as conn:
        active = active_model(conn)
    assert active is not None and active.version is not None
    return active.version.id


def test_a_group_call_without_a_name_keeps_the_accounts_name(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A group call updates the traits it gives (Segment's ``group``: ``analytics.group("acme",
    {employees: 400})``); one without a name left the account named by its group id: Acme became "acme"
    on every surface that shows a lead's company (``compile.sources.lead_company``: the account's name),
    and in every rule on ``company`` or ``account.name``. A new account without a name is still named by
    its group id."""
    with world(store, monkeypatch) as w:
        w.send(
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@acme.example"}},
            {
                "type": "group",
                "userId": "ann",
                "groupId": "acme",
                "traits": {"name": "Acme", "employees": 600},
            },
            {"type": "identify", "userId": "cy", "traits": {"email": "cy@initech.example"}},
            {"type": "group", "userId": "cy", "groupId": "initech", "traits": {"employees": 20}},
        )
        # ann: fit 10 (Big company) of 50 = 20; score 10
        assert _primary(w, "ann") == (10.0, 20.0, 0.0, "D", "cold")
        w.send({"type": "group", "userId": "ann", "groupId": "acme", "traits": {"employees": 400}})
        auth = {"Authorization": f"Bearer {w.read}"}
        listed = httpx.get(f"{w.url}/v1/leads", headers=auth).json()["leads"]
        assert {r["external_id"]: r["company"] for r in listed} == {"ann": "Acme", "cy": "initech"}
        one = httpx.get(f"{w.url}/v1/leads/ann", headers=auth).json()
        assert one["account"]["name"] == "Acme" and one["account"]["attributes"]["employees"] == 400
        # and the new employee count scores: no longer a big company
        assert _primary(w, "ann") == (0.0, 0.0, 0.0, "D", "cold")


# a named score of its own clock: a 5-day window and a 3-day half-life
TIMED = """
model: timed
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 25, window: 5d}
  - {id: demo, name: Demo, kind: once, event: {type: track, name: Demo Requested}, points: 50, half_life: 3d}
scale: {weights: {fit: 0, engagement: 1}, bands: {hot: 60, warm: 40}}
"""


def test_a_named_scores_window_and_decay_reach_every_surface(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second score whose window closes and whose demo decays: after each clock tick every surface,
    ``?score=timed`` included, shows that score's value now."""
    with world(store, monkeypatch) as w:
        w.later()
        publish(store, loads_model(TIMED), as_of=w.clock, score_name="timed")
        w.names.append("timed")
        w.send(
            {"type": "identify", "userId": "ann", "traits": {"email": "ann@acme.example", "job_title": "Marketing"}},
            {"type": "group", "userId": "ann", "groupId": "acme", "traits": {"name": "Acme", "employees": 600}},
            {"type": "identify", "userId": "bob", "traits": {"email": "bob@acme.example"}},
            {"type": "group", "userId": "bob", "groupId": "acme", "traits": {"name": "Acme", "employees": 600}},
            {"type": "page", "userId": "ann", "properties": {"path": "/pricing"}},
            {"type": "track", "userId": "ann", "event": "Demo Requested"},
        )  # fmt: skip
        check_all(w, "timed: sent")
        for days in (2, 4, 7):  # the demo decays; the page leaves the window on day 5
            w.clock += days * DAY
            w.settle()
            check_all(w, f"timed: {days} days on")
        with w.store.connect() as conn:
            row, _ = read_current(conn, w.lead("ann"), "timed")
        # day 13: the page out of its window, the demo 50 × 0.5^(13/3) = 2.480314 (of 100)
        assert row is not None and row["score"] == 2.480314
