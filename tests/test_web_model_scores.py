"""The model page for each named score (issue #20): the two-team store of ``tests/two_teams.py`` (core, the
primary, and analytics). The page shows the picked score's versions and active YAML; a draft posted with
``score=analytics`` is diffed, published and rescored as analytics' next version, and core's numbers stay.

Hand-computed: a score is the mean of fit and engagement (each 0–100). Analytics v1: ann (Marketing Analyst:
fit 80; Report Built 80 + Demo Requested 20) 90, dana (Data Analyst: 80; report 80) 80, carl (no fit; demo 20)
10. The draft gives a report 50 points: ann (80 + 70) / 2 = 75, dana (80 + 50) / 2 = 65, carl 10. Core
(marketing 60; demo 40, webinar 10) stays: carl (60 + 50) / 2 = 55, ann (60 + 40) / 2 = 50, dana 0.
"""

from __future__ import annotations

import re

from sqlalchemy import select

from leadscore.api import create_app
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.model_versions import active_version
from leadscore.store.schema import scores
from live_server import serving
from two_teams import ANALYTICS, MANAGER, build
from web_support import csrf_of, signed_in


def _scores(store: Store, ids: dict[str, int], name: str) -> dict[str, float]:
    with store.connect() as conn:
        rows = conn.execute(select(scores.c.lead_id, scores.c.score).where(scores.c.score_name == name))
        by_id = {int(lead): float(score) for lead, score in rows}
    return {user: by_id[i] for user, i in ids.items() if user in ("ann", "carl", "dana")}


def _versions(html: str) -> list[str]:
    table = html.split('<table class="versions">')[1].split("</table>")[0]
    return re.findall(r'<a href="/model\?version=\d+">([^<]+)</a>', table)


def test_the_model_page_edits_the_score_picked(store: Store) -> None:
    ids = build(store)
    assert _scores(store, ids, "analytics") == {"ann": 90.0, "carl": 10.0, "dana": 80.0}
    draft = ANALYTICS.replace("Report Built}, points: 80", "Report Built}, points: 50")
    assert draft != ANALYTICS
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        core = client.get("/model")
        analytics = client.get("/model", params={"score": "analytics"})
        unknown = client.get("/model", params={"score": "partners"})
        nul = client.get("/model", params={"score": "core\x00"})
        long = client.get("/model", params={"score": "a" * 64})  # a score name is at most 63 characters
        token = csrf_of(client)
        checked = client.post(
            "/model/validate", data={"csrf_token": token, "draft": draft, "score": "analytics"}
        )
        published = client.post(
            "/model/publish",
            data={"csrf_token": token, "draft": draft, "score": "analytics", "note": "report 50"},
        )
        after = client.get(published.headers["location"])
    assert core.status_code == analytics.status_code == 200
    assert "<h1>Model: core</h1>" in core.text and _versions(core.text) == ["core@1"]
    assert "<h1>Model: analytics</h1>" in analytics.text and _versions(analytics.text) == ["analytics@1"]
    assert 'name="score" value="analytics"' in analytics.text  # the draft form posts as analytics'
    assert unknown.status_code == 404 and "partners" in unknown.text
    assert nul.status_code == long.status_code == 422
    # diffed against analytics' active model, not core's
    assert checked.status_code == 200 and "analytics@1" in checked.text and "core@1" not in checked.text
    assert published.status_code == 303 and published.headers["location"].endswith("&score=analytics")
    assert "Published analytics@2" in after.text and _versions(after.text) == ["analytics@2", "analytics@1"]
    with store.connect() as conn:
        assert active_version(conn, "analytics").version == 2
        assert active_version(conn, "core").version == 1
    assert _scores(store, ids, "analytics") == {"ann": 75.0, "carl": 10.0, "dana": 65.0}
    assert _scores(store, ids, "core") == {"ann": 50.0, "carl": 55.0, "dana": 0.0}


def test_a_review_draft_opens_as_its_scores_draft(store: Store) -> None:
    """The review page's accepted proposals for analytics open in the model page as analytics' draft: its
    YAML with the edit applied (a report 50 points), posted back with ``score=analytics``."""
    build(store)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        token = csrf_of(client)
        opened = client.post(
            "/review/draft", data={"csrf_token": token, "edit": "points|report|50", "score": "analytics"}
        )
        unknown = client.post("/review/draft", data={"csrf_token": token, "edit": "points|report|50",
                                                     "score": "partners"})  # fmt: skip
    assert opened.status_code == 200, opened.text
    assert "<h1>Model: analytics</h1>" in opened.text
    editor = opened.text.split('<textarea id="draft"')[1].split("</textarea>")[0]
    assert "model: analytics" in editor and re.search(
        r"id: report\n(?:  .*\n)*?  points: 50(?:\.0)?\n", editor
    )
    assert 'name="score" value="analytics"' in opened.text
    assert unknown.status_code == 404 and "partners" in unknown.text


def test_the_builder_keeps_the_score_picked(store: Store) -> None:
    """The builder's buttons post the draft form, with its ``score`` field: the page given back is still
    analytics' (its heading, its hidden field), so that Publish after an edit in the builder publishes
    analytics' next version, not core's; the check of the edited draft is diffed against analytics@1."""
    build(store)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        token = csrf_of(client)
        removed = client.post(
            "/model/builder/remove",
            data={"csrf_token": token, "draft": ANALYTICS, "edit": "engagement:demo", "score": "analytics"},
        )
        edited = client.post(
            "/model/builder/edit",
            data={"csrf_token": token, "draft": ANALYTICS, "edit": "engagement:report", "score": "analytics"},
        )
        hostile = client.post(
            "/model/builder/edit",
            data={"csrf_token": token, "draft": ANALYTICS, "edit": "engagement:report", "score": "x'<y"},
        )
        unknown = client.post(
            "/model/builder/remove",
            data={"csrf_token": token, "draft": ANALYTICS, "edit": "engagement:demo", "score": "partners"},
        )
        # the rule's form is read field by field: its score is checked where the page resolves it
        hostile_rule = client.post(
            "/model/builder/rule", data={"csrf_token": token, "draft": ANALYTICS, "score": "<b>x"}
        )
    assert removed.status_code == 200, removed.text
    assert "<h1>Model: analytics</h1>" in removed.text
    assert (
        'name="score" value="analytics"' in removed.text and 'name="score" value="core"' not in removed.text
    )
    assert (
        "analytics@1" in removed.text.split('id="check"')[1]
        and "demo" not in removed.text.split('<textarea id="draft"')[1].split("</textarea>")[0]
    )
    assert edited.status_code == 200 and "<h1>Model: analytics</h1>" in edited.text
    assert 'name="score" value="analytics"' in edited.text
    assert hostile.status_code == 422 and "<y" not in hostile.text
    assert unknown.status_code == 404 and "partners" in unknown.text
    assert hostile_rule.status_code == 422 and "bad score name" in hostile_rule.text
    assert "<b>x" not in hostile_rule.text


def test_the_builders_distribution_compares_with_the_scores_stored_scores(store: Store) -> None:
    """The builder's 'before' is the picked score's stored scores: analytics' (ann 90, dana 80, bob, carl,
    eve and frank 10 each: a demo's 20 engagement points, no analyst title), not core's; the analytics
    YAML itself as the draft scores every lead the same (after = before)."""
    build(store)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, MANAGER) as client:
        token = csrf_of(client)
        page_html = client.get("/model", params={"score": "analytics"}).text
        shown = client.post(
            "/model/builder/distribution",
            data={"csrf_token": token, "draft": ANALYTICS, "score": "analytics"},
            headers={"hx-request": "true"},
        )
    # the button sends the draft form's score field with the draft
    button = page_html.split('hx-post="/model/builder/distribution"')[1].split(">")[0]
    included = re.search(r'hx-include="([^"]+)"', button)
    assert included is not None and "#draft-score" in included.group(1).split(",")
    assert 'id="draft-score" name="score" value="analytics"' in page_html
    assert shown.status_code == 200, shown.text
    table = shown.text.split('id="b-distribution"')[1].split("</table>")[0]
    cells = re.findall(r'<td class="num">([\d,]+)</td><td class="num">([\d,]+)</td>', table)
    before = [int(b) for b, _ in cells]
    after = [int(a) for _, a in cells]
    assert before == [0, 4, 0, 0, 0, 0, 0, 0, 1, 1]
    assert after == before
