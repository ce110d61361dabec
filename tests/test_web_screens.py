"""Every dashboard page in real headless Chromium at 1440 px and at 390 px (a phone): a full-page
screenshot of each is written to ``build/screenshots/`` (or ``$LEADSCORE_SCREENSHOTS``; not committed),
axe-core finds no serious or critical violation, and at 390 px nothing scrolls sideways and every
navigation link is on screen.

The pages are derived from the app's routes (``web_pages.page_routes``): a GET route of the dashboard
that no screenshot shows, and that is not listed as a non-page with its reason, fails the test, so a new
page cannot be forgotten."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import func, select

from browser_support import launched_chromium
from leadscore.store import dead_letters
from leadscore.store.schema import leads, model_versions, score_history
from test_web_authz import ROUTES
from test_web_browser import Tab
from web_pages import NOT_PAGES, page_routes
from web_support import Site, site

ROOT = Path(__file__).resolve().parent.parent
SCREENSHOTS = Path(os.environ.get("LEADSCORE_SCREENSHOTS") or ROOT / "build" / "screenshots")
WIDTHS = {"desktop": 1440, "phone": 390}
HEIGHT = {"desktop": 900, "phone": 844}


@dataclass(frozen=True)
class Shot:
    name: str  # the screenshot's file name (without width and extension)
    route: str  # the route template it shows
    url: str
    role: str | None  # signed in as; None: anonymous
    status: int = 200
    after: str | None = None  # a button to press before the screenshot (a state of the page)


def shots(lead_id: int, account_id: int, letter_id: int, old: int, new: int) -> list[Shot]:
    return [
        Shot("signin", "/signin", "/signin", None),
        Shot("leads", "/leads", "/leads", "marketing"),
        Shot("leads-hot", "/leads", "/leads?band=hot", "marketing"),
        Shot("matrix", "/leads/matrix", "/leads/matrix", "marketing"),
        Shot("lead", "/leads/{lead_id}", f"/leads/{lead_id}", "marketing"),
        # every event behind one line of the demo model (the lead page links its older events here)
        Shot(
            "lead-line",
            "/leads/{lead_id}/lines/{rule_id}",
            f"/leads/{lead_id}/lines/product_pages",
            "marketing",
        ),
        Shot("handoff-seller", "/handoff", "/handoff", "sales"),
        Shot("handoff-admin", "/handoff", "/handoff", "admin"),
        Shot("funnel", "/funnel", "/funnel", "marketing"),
        Shot("accounts", "/accounts", "/accounts", "marketing"),
        Shot("account", "/accounts/{account_id}", f"/accounts/{account_id}", "marketing"),
        Shot("model", "/model", "/model", "marketing"),
        Shot("model-check", "/model", "/model", "marketing", after="Validate"),
        Shot("model-backtest", "/model", "/model", "marketing", after="Backtest against the active model"),
        Shot("model-diff", "/model/diff", f"/model/diff?old={old}&new={new}", "marketing"),
        Shot("evaluation", "/evaluation", "/evaluation", "marketing"),
        Shot("review", "/review", "/review", "marketing"),
        Shot("review-proposals", "/review", "/review?proposals=1", "marketing"),
        Shot("deadletters", "/deadletters", "/deadletters", "admin"),
        Shot("deadletter", "/deadletters/{letter_id}", f"/deadletters/{letter_id}", "admin"),
        Shot("tracking", "/tracking", "/tracking", "admin"),
        Shot("users", "/users", "/users", "admin"),
        Shot("user-notifications", "/users/{user_id}/notifications", "/users/1/notifications", "admin"),
        Shot("profile-seller", "/profile", "/profile", "sales"),
        Shot("keys", "/keys", "/keys", "admin"),
        Shot("error-not-found", "/leads/{lead_id}", "/leads/999999999", "marketing", status=404),
        Shot("error-not-allowed", "/users", "/users", "sales", status=403),
    ]


def test_every_page_route_has_a_screenshot() -> None:
    shown = {s.route for s in shots(1, 1, 1, 1, 2)}
    missing = page_routes() - shown
    assert not missing, f"GET pages without a screenshot in {__file__}: {sorted(missing)}"
    assert not shown - page_routes(), f"screenshots of routes that are gone: {sorted(shown - page_routes())}"
    # the same pages as the authorization test's walk over the whole app finds
    assert page_routes() == {path for method, path, _ in ROUTES if method == "GET"} - set(NOT_PAGES)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("screens"), leads=60, seed=8) as s:
        yield s


def _ids(demo: Site) -> tuple[int, int, int, int, int]:
    """The busiest lead (the longest journey), the account with most contacts, a dead letter, and the two
    model versions to compare (a second one published from the first's YAML with one change)."""
    from leadscore.model import dump_model, loads_model
    from leadscore.scoring.pipeline import active_model
    from leadscore.store.model_versions import add_version, list_versions

    with demo.store.connect() as conn:
        lead_id = conn.execute(
            select(score_history.c.lead_id)
            .group_by(score_history.c.lead_id)
            .order_by(func.count().desc(), score_history.c.lead_id)
            .limit(1)
        ).scalar_one()
        account_id = conn.execute(
            select(leads.c.account_id)
            .where(leads.c.account_id.is_not(None))
            .group_by(leads.c.account_id)
            .order_by(func.count().desc(), leads.c.account_id)
            .limit(1)
        ).scalar_one()
        active = active_model(conn)
        versions = conn.execute(select(func.count()).select_from(model_versions)).scalar_one()
    assert active is not None and active.version is not None
    with demo.store.begin() as conn:
        if versions < 2:  # a draft version beside the active one (not activated: the scores stay)
            changed = active.version.yaml.replace("points: 25", "points: 24", 1)
            assert changed != active.version.yaml
            add_version(conn, active.model.model, dump_model(loads_model(changed)), 0, "screenshots")
        letters = dead_letters.listed(conn)
        letter_id = (
            letters[0].id
            if letters
            else dead_letters.add(
                conn,
                {"message_id": "screens-1", "type": "track"},
                "could not be applied (a test's letter)",
                0,
            )
        )
        old, new = (v.id for v in list(list_versions(conn))[:2])
    return int(lead_id), int(account_id), int(letter_id), int(old), int(new)


@pytest.mark.parametrize("size", WIDTHS)
def test_every_page_screenshot_axe_and_fit(chromium: Browser, demo: Site, size: str) -> None:
    width = WIDTHS[size]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    every = shots(*_ids(demo))
    problems: list[str] = []
    for role in dict.fromkeys(s.role for s in every):
        tab = Tab(chromium, demo.url)
        page = tab.page
        page.set_viewport_size({"width": width, "height": HEIGHT[size]})
        if role is not None:
            tab.sign_in(demo.email(role))
        for shot in (s for s in every if s.role == role):
            seen = len(tab.problems)
            response = page.goto(shot.url)
            assert response is not None and response.status == shot.status, (shot.name, response)
            if shot.status != 200:  # Chromium logs the page's own status as a console error
                tab.problems[seen:] = [p for p in tab.problems[seen:] if f"status of {shot.status}" not in p]
            expect(page.locator("h1")).to_be_visible()
            if shot.after:
                page.get_by_role("button", name=shot.after).click()
                expect(page.locator("#check > *").first).to_be_visible(timeout=180_000)
            page.wait_for_load_state("networkidle")
            for canvas in page.locator("canvas[data-chart]").all():
                expect(canvas).to_have_attribute("data-drawn", "1")
            page.screenshot(path=str(SCREENSHOTS / f"{shot.name}-{width}.png"), full_page=True)
            if violations := tab.axe():
                problems.append(f"{shot.name} at {width} px: {violations}")
            if size == "phone":
                wide = page.evaluate("document.scrollingElement.scrollWidth")
                if wide > width:
                    problems.append(f"{shot.name} is {wide} px wide at {width} px")
                links = page.get_by_role("navigation", name="Main").get_by_role("link")
                for i in range(links.count()):
                    box = links.nth(i).bounding_box()
                    if box is None or box["x"] < 0 or box["x"] + box["width"] > width:
                        problems.append(f"{shot.name}: navigation link {i} off screen at {box}")
                if shot.status == 200 and role is not None:  # error pages: no navigation
                    assert links.count() >= 3, shot.name
        assert tab.problems == [], (role, tab.problems)
        tab.close()
    assert problems == [], "\n".join(problems)
    written = {p.name for p in SCREENSHOTS.glob(f"*-{width}.png")}
    assert {f"{s.name}-{width}.png" for s in every} <= written
