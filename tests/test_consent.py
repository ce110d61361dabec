"""Consent: behaviour is scored only with tracking consent; withdrawal removes behavioural points on the
next scoring and takes the person out of exports. Set from identify traits, CSV import and the API."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import select

from leadscore.api import create_app
from leadscore.ingest.attributes import consent_traits
from leadscore.ingest.csv_import import ImportOptions, import_leads
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle import segments
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.scoring.run import all_leads, score
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.people import find_lead
from leadscore.store.schema import leads
from live_server import serving

NOW = parse_time("2024-06-01T00:00:00Z", "now")
MODEL = """
model: consent
fit:
  - {id: vp, name: VP, when: {attribute: job_title, contains: vp}, points: 10}
engagement:
  - {id: visit, name: Visit, event: {type: page}, points: 5}
scale: {fit_max: 10, engagement_max: 10, weights: {fit: 1, engagement: 1}}
"""


def _scores(store: Store, model_text: str = MODEL) -> dict[str, tuple[float, float]]:
    model = loads_model(model_text)
    with store.connect() as conn:
        ids = {user: find_lead(conn, external_id=user) for user in ("yes", "no", "unknown")}
        by_id = {lg.lead_id: lg for lg in score(conn, model, store.sources(), all_leads(NOW))}
    return {u: (by_id[i].fit_score, by_id[i].engagement_score) for u, i in ids.items() if i is not None}


def _people(store: Store) -> None:
    msgs = []
    for user, consent in (
        ("yes", {"consent": {"tracking": True}}),
        ("no", {"tracking_consent": "no"}),
        ("unknown", {}),
    ):
        msgs.append(
            {
                "type": "identify",
                "userId": user,
                "traits": {"title": "VP", **consent},
                "timestamp": NOW - 1000,
            }
        )
        msgs.append({"type": "page", "userId": user, "messageId": f"p-{user}", "timestamp": NOW - 500})
    ingest(store, [normalise(m, received_ms=NOW) for m in msgs], source="test")


def test_traits_set_consent() -> None:
    assert consent_traits({"consent": {"tracking": "yes", "marketing_email": False}}) == {
        "consent_tracking": True,
        "consent_email": False,
    }
    assert consent_traits({"unsubscribed": True}) == {"consent_email": False}
    assert consent_traits({"trackingConsent": "opt-out"}) == {"consent_tracking": False}


def test_no_tracking_consent_means_no_behavioural_points(store: Store) -> None:
    _people(store)
    # assumed: only an explicit "no" stops engagement scoring (one visit = 5 of 10 → 50)
    assert _scores(store) == {"yes": (100.0, 50.0), "no": (100.0, 0.0), "unknown": (100.0, 50.0)}
    required = MODEL + "privacy: {tracking_consent: required}\n"
    assert _scores(store, required) == {"yes": (100.0, 50.0), "no": (100.0, 0.0), "unknown": (100.0, 0.0)}
    with store.connect() as conn:
        lead = find_lead(conn, external_id="no")
        (ledger,) = score(conn, loads_model(MODEL), store.sources(), all_leads(NOW, [lead]))  # type: ignore[list-item]
    assert [(line.rule_id, line.score_points) for line in ledger.lines] == [
        ("vp", 50.0),
        ("consent:tracking", 0.0),
    ]


def test_withdrawal_takes_effect_on_next_scoring_and_exports(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=NOW)
    _people(store)
    with store.begin() as conn:
        _, read = create_key(conn, "read", "crm", 0)
    auth = {"Authorization": f"Bearer {read}"}
    app = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(app) as url, httpx.Client(base_url=url) as client:
        exported = client.get("/v1/leads?format=ndjson", headers=auth).text
        # "no" withdrew consent already: only "yes" and "unknown" are exported
        assert sorted(line.split('"external_id":"')[1].split('"')[0] for line in exported.splitlines()) == [
            "unknown",
            "yes",
        ]
        withdraw = normalise(
            {
                "type": "identify",
                "userId": "yes",
                "traits": {"consent": {"tracking": False}},
                "timestamp": NOW,
            },
            received_ms=NOW,
        )
        ingest(store, [withdraw], source="test", as_of=NOW)
        assert _scores(store)["yes"] == (100.0, 0.0)
        lead = client.get("/v1/leads/yes", headers=auth).json()
        assert lead["score"]["engagement_score"] == 0.0
        exported = client.get("/v1/leads?format=csv", headers=auth).text
        assert '"yes"' not in exported and ",yes," not in exported and len(exported.splitlines()) == 2


SEGMENTED = (
    MODEL
    + "lifecycle:\n  initial: lead\n  stages:\n    - {id: lead, name: Lead}\n  segments:\n"
    + "    - {id: everyone, name: Everyone, stages: [lead]}\n"
)


def test_a_segment_export_leaves_out_whoever_withdrew_tracking_consent(store: Store) -> None:
    """ "no" is a member of the segment of every lead, but withdrew tracking consent: the segment's exports
    (the members API as JSON and as CSV) list "unknown" and "yes" only, as the leads export does; they
    listed "no" too."""
    publish(store, loads_model(SEGMENTED), as_of=NOW)
    _people(store)
    run_round(store, Settings(), now_ms=NOW, timers=False, deliver=False)
    with store.connect() as conn:
        assert len(segments.members(conn, loads_model(SEGMENTED).lifecycle.segments[0])) == 3  # type: ignore[union-attr]
    with store.begin() as conn:
        _, read = create_key(conn, "read", "crm", 0)
    auth = {"Authorization": f"Bearer {read}"}
    app = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(app) as url, httpx.Client(base_url=url, headers=auth) as client:
        listed = client.get("/v1/segments/everyone/members").json()["members"]
        exported = client.get("/v1/segments/everyone/members?format=csv").text.splitlines()
    assert sorted(m["external_id"] for m in listed) == ["unknown", "yes"]
    assert sorted(line.split(",")[1] for line in exported[1:]) == ["unknown", "yes"]


def test_csv_import_sets_consent(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "leads.csv"
    path.write_text("Email,Tracking Consent\na@example.com,yes\nb@example.com,no\nc@example.com,maybe\n")
    report = import_leads(store, path, ImportOptions())
    assert [(p.line, p.field) for p in report.problems] == [(4, "Tracking Consent")]
    assert "not a consent value" in report.problems[0].message
    publish(store, loads_model(MODEL), as_of=NOW)
    with store.connect() as conn:
        attrs = dict(conn.execute(select(leads.c.email, leads.c.attributes)).all())
    assert attrs["a@example.com"]["consent_tracking"] is True
    assert attrs["b@example.com"]["consent_tracking"] is False
    assert "c@example.com" not in attrs


def test_events_without_consent_can_be_dropped(store: Store) -> None:
    """LEADSCORE_UNCONSENTED_EVENTS=drop: a refusing person's events are not kept at all."""
    from sqlalchemy import func

    from leadscore.store.schema import events

    publish(store, loads_model(MODEL), as_of=NOW)
    msgs = [
        {
            "type": "identify",
            "userId": "no",
            "traits": {"consent": {"tracking": False}},
            "timestamp": NOW - 1000,
        },
        {"type": "page", "userId": "no", "messageId": "p-no", "timestamp": NOW - 500},
        {"type": "page", "userId": "yes", "messageId": "p-yes", "timestamp": NOW - 500},
    ]
    ingest(store, [normalise(m, received_ms=NOW) for m in msgs], source="test", drop_unconsented=True)
    with store.connect() as conn:
        kept = set(conn.execute(select(events.c.message_id)).scalars())
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 1
    assert kept == {"p-yes"}


def test_withdrawn_consent_stops_mail(store: Store) -> None:
    from leadscore.lifecycle.mail import consent_problem

    _people(store)
    withdraw = {
        "type": "identify",
        "userId": "yes",
        "traits": {"consent": {"marketing_email": False}},
        "timestamp": NOW,
    }
    ingest(store, [normalise(withdraw, received_ms=NOW)], source="test")
    with store.connect() as conn:
        ids = {u: find_lead(conn, external_id=u) for u in ("yes", "no", "unknown")}
        problems = {u: consent_problem(conn, None, i, f"{u}@example.com", "") for u, i in ids.items()}
    assert problems == {
        "yes": "consent withdrawn (consent_email is false)",
        "no": "consent withdrawn (consent_tracking is false)",
        "unknown": None,
    }
