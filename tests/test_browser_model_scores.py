"""The model page and its rule builder for a score other than the primary, in real headless Chromium
(issue #20): on the two-team store of ``tests/two_teams.py`` a manager picks ``analytics``, builds a fit rule
with the builder, publishes it as analytics' next version, and core is left as it was; retiring analytics
there is refused while the lifecycle's gates name it, saying which.

Hand-computed (a score is the mean of fit and engagement): the rule gives a title containing "data" 20 fit
points, so only dana (Data Analyst) matches: her analytics fit 80 + 20 = 100, score (100 + 80) / 2 = 90
(was 80); ann stays 90 (Marketing Analyst: no "data"). Core: carl (60 + 50) / 2 = 55, dana 0, unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect
from sqlalchemy import select

from browser_support import launched_chromium
from leadscore.api import create_app
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.model_versions import active_version
from leadscore.store.schema import scores
from live_server import serving
from test_web_browser import Tab
from two_teams import MANAGER, build


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    yield from launched_chromium()


def _scores(store: Store, ids: dict[str, int], name: str) -> dict[str, float]:
    with store.connect() as conn:
        rows = dict(
            conn.execute(select(scores.c.lead_id, scores.c.score).where(scores.c.score_name == name)).all()
        )
    return {user: float(rows[ids[user]]) for user in ("ann", "carl", "dana")}


def test_a_manager_builds_and_publishes_a_rule_of_the_analytics_score(
    chromium: Browser, tmp_path: Path
) -> None:
    store = Store.from_url(str(tmp_path / "scores.db"))
    ids = build(store)
    assert _scores(store, ids, "analytics") == {"ann": 90.0, "carl": 10.0, "dana": 80.0}
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    try:
        with serving(app) as url:
            tab = Tab(chromium, url)
            page = tab.page
            tab.sign_in(MANAGER)
            page.goto("/model")
            page.get_by_label("Score", exact=True).select_option("analytics")
            page.get_by_role("button", name="Show").click()
            expect(page.get_by_role("heading", level=1)).to_have_text("Model: analytics")
            expect(page.get_by_label("Model YAML")).to_have_value(re.compile(r"^\s*model: analytics"))
            expect(page.get_by_role("button", name="Retire analytics")).to_be_visible()
            assert tab.axe() == []  # the retire section included

            page.get_by_label("Kind of rule").select_option("fit")
            page.get_by_label("Id", exact=True).fill("data_role")
            page.get_by_label("Name", exact=True).fill("Data role")
            page.get_by_label("Points", exact=True).fill("20")
            page.get_by_label("Field of condition 1").fill("job_title")
            page.get_by_label("Field of condition 1").press("Tab")
            page.get_by_label("Comparison of condition 1").select_option("contains")
            page.get_by_label("Value of condition 1").fill("data")
            page.get_by_label("Value of condition 1").press("Tab")
            expect(page.locator("#b-count-0")).to_contain_text("Condition 1: 1 lead")
            page.get_by_role("button", name="Add the rule to the draft").click()
            expect(page.locator("#builder-notice")).to_contain_text("Rule 'data_role' added to the draft")
            # still the analytics score's page and draft after the builder's round trip
            expect(page.get_by_role("heading", level=1)).to_have_text("Model: analytics")
            draft = page.get_by_label("Model YAML").input_value()
            assert draft.lstrip().startswith("model: analytics") and "id: data_role" in draft

            page.get_by_label("Note for this version").fill("data people")
            page.get_by_role("button", name="Publish").click()
            expect(page.locator(".notice")).to_contain_text("Published analytics@2")
            expect(page.get_by_role("heading", level=1)).to_have_text("Model: analytics")

            # retiring analytics is refused while core's lifecycle gates on it
            page.get_by_role("button", name="Retire analytics").click()
            expect(page.locator("body")).to_contain_text("transition analytics_mql")
            assert tab.problems == [
                "Failed to load resource: the server responded with a status of 409 (Conflict)"
            ]
            tab.close()
    finally:
        store.dispose()
    with store.connect() as conn:
        assert active_version(conn, "analytics").label == "analytics@2"
        assert active_version(conn, "core").label == "core@1"
    assert _scores(store, ids, "analytics") == {"ann": 90.0, "carl": 10.0, "dana": 90.0}
    assert _scores(store, ids, "core") == {"ann": 50.0, "carl": 55.0, "dana": 0.0}
