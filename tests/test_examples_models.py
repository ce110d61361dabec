"""The example models load and round-trip, and the B2B SaaS model scores hand-computed leads exactly.

Every expected number below is worked out by hand in the comments from the rules in
examples/b2b_saas/model.yaml; none was copied from the program's output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from leadscore.ingest.segment import ms_to_iso, normalise, parse_time
from leadscore.model import dump_model, load_model, loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.people import find_lead
from leadscore.store.results import read_current

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PACKAGE_DEMO = ROOT / "src" / "leadscore" / "demo"
T = parse_time("2025-06-01T00:00:00Z", "t")
DAY = 86_400_000


@pytest.mark.parametrize("name", ["linda", "danish", "b2b_saas", "pql_trial"])
def test_example_loads_and_round_trips(name: str) -> None:
    model = load_model(EXAMPLES / name / "model.yaml")
    assert loads_model(dump_model(model)) == model
    for rule in (*model.fit, *model.engagement, *model.groups):
        assert rule.name
    if name != "linda":  # linda reproduces an article and keeps its bare item names
        assert all(rule.description for rule in (*model.fit, *model.engagement, *model.groups))


def test_pql_example_is_the_model_its_hand_computed_case_scores() -> None:
    """tests/cases/pql-trial.yaml (run on every engine) scores exactly the rules of the example."""
    case = yaml.safe_load((ROOT / "tests" / "cases" / "pql-trial.yaml").read_text(encoding="utf-8"))
    example = load_model(EXAMPLES / "pql_trial" / "model.yaml")
    # the rules and scale (the example adds a lifecycle, tested in tests/test_pql_stage.py)
    assert loads_model(yaml.safe_dump(case["model"])) == example.model_copy(update={"lifecycle": None})
    assert {rule.kind for rule in example.engagement} == {"threshold", "ratio", "recency"}


def test_demo_ships_the_example_model_unchanged() -> None:
    assert (PACKAGE_DEMO / "b2b_saas.yaml").read_bytes() == (
        EXAMPLES / "b2b_saas" / "model.yaml"
    ).read_bytes()
    for csv_file in (EXAMPLES / "b2b_saas" / "lists").glob("*.csv"):
        assert (PACKAGE_DEMO / "lists" / csv_file.name).read_bytes() == csv_file.read_bytes()


def test_b2b_saas_lists_come_from_csv() -> None:
    model = load_model(EXAMPLES / "b2b_saas" / "model.yaml")
    targets = model.lists["target_accounts"]
    assert targets.source == "target_accounts.csv"
    assert len(targets.values) == 40 and "northwind.com" in targets.values


def test_danish_model_points() -> None:
    model = load_model(EXAMPLES / "danish" / "model.yaml")
    points = {rule.id: rule.points for rule in model.engagement}
    assert points == {
        "product_service_page": 20,
        "ebook": 5,
        "newsletter_open": 3,
        "webinar": 10,
        "front_page": 2,
    }


def _msg(
    kind: str, user: str | None, at: int, *, anonymous: str | None = None, **fields: Any
) -> dict[str, Any]:
    _msg.count += 1  # type: ignore[attr-defined]
    raw: dict[str, Any] = {"type": kind, "messageId": f"m{_msg.count}", "timestamp": ms_to_iso(at), **fields}  # type: ignore[attr-defined]
    if user:
        raw["userId"] = user
    if anonymous:
        raw["anonymousId"] = anonymous
    return raw


_msg.count = 0  # type: ignore[attr-defined]


def _page(user: str | None, at: int, path: str, anonymous: str | None = None) -> dict[str, Any]:
    return _msg("page", user, at, anonymous=anonymous, properties={"path": path})


def _track(user: str, at: int, event: str, n: int = 1) -> list[dict[str, Any]]:
    return [_msg("track", user, at, event=event) for _ in range(n)]


def _journeys() -> list[dict[str, Any]]:
    maria = [
        _page(None, T - 30 * DAY, "/blog/what-is-lead-scoring", anonymous="anon-maria"),
        _page(None, T - 30 * DAY, "/blog/fit-vs-engagement", anonymous="anon-maria"),
        _msg(
            "identify",
            "maria",
            T - 30 * DAY,
            anonymous="anon-maria",
            traits={"email": "maria@northwind.com", "title": "VP Marketing"},
        ),
        _msg(
            "group",
            "maria",
            T - 30 * DAY,
            groupId="acc-northwind",
            traits={
                "name": "Northwind Group",
                "domain": "northwind.com",
                "industry": "Software",
                "employees": 250,
                "annual_revenue": 30_000_000,
            },
        ),
        _page("maria", T - 7 * DAY, "/pricing"),
        _page("maria", T - 7 * DAY, "/pricing/enterprise"),
        _page("maria", T, "/pricing"),
        *_track("maria", T, "Demo Requested"),
        *_track("maria", T - 30 * DAY, "Email Opened", 4),
        *_track("maria", T, "Email Link Clicked", 2),
    ]
    bob = [
        _msg(
            "identify",
            "bob",
            T - 10 * DAY,
            traits={"email": "bob.student@gmail.com", "title": "Marketing Student"},
        ),
        _page("bob", T, "/blog/a"),
        _page("bob", T, "/blog/b"),
        _page("bob", T, "/blog/c"),
        _page("bob", T - 10 * DAY, "/careers"),
    ]
    erik = [
        _msg(
            "identify",
            "erik",
            T - 60 * DAY,
            traits={"email": "erik@smallshop.se", "title": "Marketing Manager"},
        ),
        _msg(
            "group",
            "erik",
            T - 60 * DAY,
            groupId="acc-smallshop",
            traits={"name": "Smallshop", "domain": "smallshop.se", "industry": "Retail", "employees": 40},
        ),
        *_track("erik", T, "Email Opened", 20),
        *_track("erik", T - 100 * DAY, "Email Opened"),
        *_track("erik", T, "Email Link Clicked", 3),
        *_track("erik", T, "Ebook Downloaded", 3),
        _page("erik", T - 7 * DAY, "/pricing"),
        *_track("erik", T - 60 * DAY, "Unsubscribed"),
    ]
    spy = [
        _msg(
            "identify", "spy", T - 5 * DAY, traits={"email": "spy@rivalscore.io", "title": "Head of Growth"}
        ),
        _page("spy", T, "/pricing"),
    ]
    eva = [
        _msg("identify", "eva", T - 5 * DAY, traits={"email": "eva@townhall.gov", "title": "IT Manager"}),
        _msg(
            "group",
            "eva",
            T - 5 * DAY,
            groupId="acc-townhall",
            traits={"name": "Town Hall", "domain": "townhall.gov", "industry": "Government", "employees": 5},
        ),
    ]
    return [*maria, *bob, *erik, *spy, *eva]


def _scored(store: Store) -> dict[str, tuple[dict[str, Any], dict[str, dict[str, Any]]]]:
    messages = [normalise(raw, received_ms=T) for raw in _journeys()]
    ingest(store, messages, source="test")
    publish(store, load_model(EXAMPLES / "b2b_saas" / "model.yaml"), as_of=T)
    out = {}
    with store.connect() as conn:
        for user in ("maria", "bob", "erik", "spy", "eva"):
            lead_id = find_lead(conn, external_id=user)
            assert lead_id is not None
            row, lines = read_current(conn, lead_id)
            assert row is not None
            out[user] = (row, {line["rule_id"]: line for line in lines})
    return out


def _points(lines: dict[str, dict[str, Any]]) -> dict[str, float]:
    return {rule: pytest.approx(line["score_points"], abs=1e-9) for rule, line in lines.items()}


def test_b2b_saas_hand_computed_scores(store: Store) -> None:
    scored = _scored(store)

    # Maria, VP Marketing at Northwind (target account, Software, 250 people, revenue 30M).
    # Fit: persona 15 + executive 20 + size 50–1000 20 + core industry 15 + target 25 + revenue 5 = 100
    #      → fit score 100, grade A. Each fit point is worth 0.4 score points (weight 0.4, fit_max 100).
    # Engagement (each point worth 0.6):
    #   blog: 2 anonymous reads 30 d ago, default half-life 30 d → 2 × 0.5 = 1
    #   pricing: 2 views 7 d ago + 1 today, half-life 7 d → 5×0.5 + 5×0.5 + 5 = 10 (cap 15 not reached)
    #   pricing_intent: 3 views within 14 d → 15
    #   demo request today → 30
    #   e-mail: 4 opens 30 d ago → 4 × 0.5 = 2; 2 clicks today → 6; group total 8 < cap 15
    #   engagement = 1 + 10 + 15 + 30 + 2 + 6 = 64 → level 1 (≥ 60)
    # Score = 0.4 × 100 + 0.6 × 64 = 40 + 38.4 = 78.4 → hot (≥ 60).
    row, lines = scored["maria"]
    assert row["score"] == pytest.approx(78.4)
    assert (row["fit_score"], row["engagement_score"]) == (pytest.approx(100), pytest.approx(64))
    assert (row["grade"], row["level"], row["band"]) == ("A", 1, "hot")
    assert _points(lines) == {
        "persona_revenue_team": 6.0,
        "seniority_executive": 8.0,
        "size_core": 8.0,
        "industry_core": 6.0,
        "target_account": 10.0,
        "revenue_10m": 2.0,
        "blog": 0.6,
        "pricing_page": 6.0,
        "pricing_intent": 9.0,
        "demo_request": 18.0,
        "email_open": 1.2,
        "email_click": 3.6,
    }
    assert lines["blog"]["matched"] == 2  # anonymous reads stitched to her by the identify call
    assert lines["pricing_page"]["decay"] == pytest.approx(10 / 15)

    # Bob, "Marketing Student" with a gmail address.
    # Fit: persona 15 ("market") − free mail 10 − student 20 = −15 → floor +15 → fit 0, grade D.
    # Engagement: 3 blog reads today 3 − careers page (once, no decay) 10 = −7 → floor +7 → 0, level 4.
    # Score 0, cold. Ledger: 6 − 4 − 8 + 6 (fit floor) + 1.8 − 6 + 4.2 (engagement floor) = 0.
    row, lines = scored["bob"]
    assert row["score"] == pytest.approx(0, abs=1e-9)
    assert (row["grade"], row["level"], row["band"]) == ("D", 4, "cold")
    assert _points(lines) == {
        "persona_revenue_team": 6.0,
        "free_mail": -4.0,
        "student": -8.0,
        "floor:fit": 6.0,
        "blog": 1.8,
        "careers_page": -6.0,
        "floor:engagement": 4.2,
    }

    # Erik, Marketing Manager at Smallshop (Retail, 40 people: no size rule applies; Retail is served).
    # Fit: persona 15 + manager 10 = 25 → fit score 25, grade C (≥ 25).
    # Engagement:
    #   e-mail: 20 opens today 20 (the open 100 d ago is outside the 90-day window) + 3 clicks 9 = 29
    #           → group cap 15 (adjustment −14)
    #   e-books: 3 × 8 = 24 → rule cap 16
    #   pricing: 1 view 7 d ago → 2.5; intent needs 3 views, has 1 → 0
    #   unsubscribed 60 d ago: −15, no decay
    #   engagement = 15 + 16 + 2.5 − 15 = 18.5 → level 3 (≥ 15)
    # Score = 0.4 × 25 + 0.6 × 18.5 = 10 + 11.1 = 21.1 → cold.
    row, lines = scored["erik"]
    assert row["score"] == pytest.approx(21.1)
    assert (row["grade"], row["level"], row["band"]) == ("C", 3, "cold")
    assert _points(lines) == {
        "persona_revenue_team": 6.0,
        "seniority_manager": 4.0,
        "email_open": 12.0,
        "email_click": 5.4,
        "group:email": -8.4,
        "ebook": 9.6,
        "pricing_page": 1.5,
        "pricing_intent": 0.0,
        "unsubscribed": -9.0,
    }
    assert lines["email_open"]["matched"] == 20
    assert (lines["ebook"]["raw"], lines["ebook"]["value"]) == (pytest.approx(24), pytest.approx(16))

    # A Head of Growth at a competitor: persona 15 + executive 20 − competitor 50 = −15 → fit 0 (floor +15).
    # One pricing view today: 5 (the intent rule counts it, 1 of 3, for 0 points) → engagement 5, level 4.
    # Score = 0.6 × 5 = 3, grade D, cold.
    row, lines = scored["spy"]
    assert row["score"] == pytest.approx(3)
    assert (row["grade"], row["level"], row["band"]) == ("D", 4, "cold")
    assert _points(lines) == {
        "persona_revenue_team": 6.0,
        "seniority_executive": 8.0,
        "competitor": -20.0,
        "floor:fit": 6.0,
        "pricing_page": 3.0,
        "pricing_intent": 0.0,
    }

    # An IT Manager at a 5-person town hall: manager 10 − micro company 10 − unserved industry 10 = −10
    # → fit 0 (floor +10). No engagement. Score 0.
    row, lines = scored["eva"]
    assert row["score"] == pytest.approx(0, abs=1e-9)
    assert _points(lines) == {
        "seniority_manager": 4.0,
        "size_micro": -4.0,
        "industry_unserved": -4.0,
        "floor:fit": 4.0,
    }
