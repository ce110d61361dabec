"""An ``alias`` whose previous id and user id each have a lead merges them: one person, one lead, its
score computed again from the merged history (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.ingest.apply import EVER, Applied
from leadscore.ingest.segment import normalise, parse_time
from leadscore.model import loads_model
from leadscore.privacy.erase import erase
from leadscore.privacy.person import find_person
from leadscore.scoring.pipeline import ingest, publish, rescore_touched
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.keys import create_key
from leadscore.store.lead_merge import TABLES
from leadscore.store.people import resolve_lead_ref
from leadscore.store.results import read_current, read_history
from leadscore.store.schema import events, identities, leads, metadata, outcomes
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

MODEL = """
model: merge
fit:
  - {id: cto, name: CTO, when: {attribute: job_title, equals: CTO}, points: 10}
engagement:
  - id: probe
    name: Probe
    event: {type: track, name: Probe}
    points: 10
scale: {fit_max: 10, engagement_max: 100, weights: {fit: 0.5, engagement: 0.5}, bands: {hot: 70, warm: 30}}
"""
T0 = parse_time("2024-06-01T00:00:00Z", "t0")
MINUTE = 60_000


def message(n: int, **fields: Any) -> Any:
    return normalise(
        {"messageId": f"m-{n}", "timestamp": T0 + n * MINUTE, **fields}, received_ms=T0 + n * MINUTE
    )


# old: identified with an e-mail and a title, one Probe; new: a Probe, a first name; then the alias
HISTORY = [
    message(1, type="identify", userId="old", traits={"email": "ann@x.com", "title": "CTO"}),
    message(2, type="track", userId="old", event="Probe"),
    message(3, type="track", userId="new", event="Probe"),
    message(4, type="identify", userId="new", traits={"firstName": "Ann", "title": "VP"}),
    message(5, type="alias", previousId="old", userId="new"),
    message(6, type="track", userId="new", event="Probe"),
]


def test_every_table_with_a_lead_id_is_accounted_for() -> None:
    assert {t.name for t in TABLES} == {t.name for t in metadata.sorted_tables if "lead_id" in t.c}


@pytest.mark.parametrize("batches", ["one batch", "one message a batch"])
def test_an_alias_whose_previous_id_has_a_lead_merges_the_two(store: Store, batches: str) -> None:
    publish(store, loads_model(MODEL))
    for part in [HISTORY] if batches == "one batch" else [[m] for m in HISTORY]:
        ingest(store, part, source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 1
        lead = conn.execute(select(leads)).mappings().one()
        assert resolve_lead_ref(conn, "old") == resolve_lead_ref(conn, "new") == lead["id"]
        keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead["id"])).scalars())
        score, lines = read_current(conn, lead["id"])
        history = read_history(conn, lead["id"])
    # new's lead was the second: its numeric id is a key of the kept lead
    assert keys == {"u:old", "u:new", "a:old", "lead:2"}
    # the older lead (old's) stays: its e-mail and id; the title seen last (new's VP, at minute 4) wins
    assert (lead["external_id"], lead["email"], lead["first_name"]) == ("old", "ann@x.com", "Ann")
    assert lead["attributes"]["job_title"] == "VP"
    # three Probes of 10 (engagement 30 of 100), no CTO: 0.5 * 0 + 0.5 * 30 = 15
    assert score is not None and score["score"] == pytest.approx(15.0)
    assert sum(line["score_points"] for line in lines) == pytest.approx(score["score"])  # adds up
    assert history[-1]["score"] == pytest.approx(15.0)


def test_an_alias_to_a_new_user_id_makes_no_second_lead(store: Store) -> None:
    publish(store, loads_model(MODEL))
    ingest(store, [HISTORY[0], HISTORY[1], HISTORY[4], HISTORY[5]], source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        (lead_id,) = conn.execute(select(leads.c.id)).scalars().all()
        assert resolve_lead_ref(conn, "new") == lead_id
        score, _ = read_current(conn, lead_id)
    # CTO (fit 100) and two Probes (engagement 20): 0.5 * 100 + 0.5 * 20 = 60
    assert score is not None and score["score"] == pytest.approx(60.0)


def test_the_merged_leads_outcomes_move_to_the_kept_lead(store: Store) -> None:
    publish(store, loads_model(MODEL))
    ingest(store, HISTORY[:4], source="test", as_of=T0 + 10 * MINUTE)
    with store.begin() as conn:
        newer = resolve_lead_ref(conn, "new")
        conn.execute(
            outcomes.insert().values(lead_id=newer, kind="won", at_ms=T0, source="test", recorded_ms=T0)
        )
    ingest(store, HISTORY[4:], source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        kept = resolve_lead_ref(conn, "old")
        assert conn.execute(select(outcomes.c.lead_id, outcomes.c.kind)).all() == [(kept, "won")]
        assert kept != newer


def test_a_rescore_waiting_for_a_lead_merged_meanwhile_skips_it(store: Store) -> None:
    """The processor scores a batch after applying it (and may apply the next first); a lead the next
    batch merged away is gone by then: its rescore is nothing, not an error that would stall scoring."""
    publish(store, loads_model(MODEL))
    ingest(store, HISTORY[:4], source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        newer = resolve_lead_ref(conn, "new")
    ingest(store, HISTORY[4:5], source="test", as_of=T0 + 10 * MINUTE)
    waiting = Applied(touched={newer: T0 + 3 * MINUTE}, since={newer: EVER}, causes={newer: ["m-3"]})
    with store.begin() as conn:
        assert rescore_touched(conn, store.sources(), waiting, T0 + 10 * MINUTE) == (0, 0)
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 1


def test_erasing_the_previous_id_after_the_merge_leaves_nothing_of_her(store: Store) -> None:
    """Before the merge, erasing ``old`` left the alias event and the key ``a:old`` on new's lead (the
    erasure's own report named them); now her one lead holds every key, and all of it goes."""
    publish(store, loads_model(MODEL))
    ingest(store, HISTORY, source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        person = find_person(conn, "old")
    assert set(person.keys) == {"u:old", "u:new", "a:old", "lead:2"}
    report = erase(store, person, "pepper", T0 + 20 * MINUTE, "test")
    assert report.mentions == {}
    assert report.deleted["events"] == len(HISTORY)
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(identities)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(events)).scalar() == 0


def test_the_merged_away_lead_id_finds_her_for_export_and_erasure_as_it_does_on_the_api(store: Store) -> None:
    """New's lead (2) was merged into old's (1). ``/v1/leads/2`` and ``leadscore explain 2`` show lead 1,
    but ``leadscore privacy export 2`` and ``privacy erase lead:2`` said "no lead": the id a CRM was sent
    before the merge named her everywhere but where she asks for her data. Both now find lead 1."""
    publish(store, loads_model(MODEL))
    ingest(store, HISTORY, source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        assert resolve_lead_ref(conn, "2") == 1
        found = [find_person(conn, ref) for ref in ("2", "lead:2")]
    assert [p.lead_id for p in found] == [1, 1]
    report = erase(store, found[1], "pepper", T0 + 20 * MINUTE, "test")
    assert (report.deleted["leads"], report.deleted["events"]) == (1, len(HISTORY))


ACCOUNT_MODEL = """
model: merge-accounts
engagement:
  - {id: team, name: 2+ people of the account, kind: threshold, scope: account, event: {type: track, name: Probe},
     count: {distinct: person}, at_least: 2, within: 30d, points: 40}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""


def test_a_merge_out_of_an_account_rescores_the_colleagues_it_leaves(store: Store) -> None:
    """new and carl (the group y.com) both probed: two people of y.com, 40 points each. The alias makes
    new one person with old (ann@x.com, the group x.com), whose account the merged lead keeps: y.com is then carl
    alone, below the rule's two people, so carl's score is 0 at once, not at his next event."""
    publish(store, loads_model(ACCOUNT_MODEL))
    before = [
        message(1, type="identify", userId="old", traits={"email": "ann@x.com"}),
        message(2, type="identify", userId="new", traits={"email": "bob@y.com"}),
        message(3, type="identify", userId="carl", traits={"email": "carl@y.com"}),
        message(4, type="group", userId="old", groupId="x", traits={"domain": "x.com"}),
        message(5, type="group", userId="new", groupId="y", traits={"domain": "y.com"}),
        message(6, type="group", userId="carl", groupId="y", traits={"domain": "y.com"}),
        message(7, type="track", userId="new", event="Probe"),
        message(8, type="track", userId="carl", event="Probe"),
    ]
    ingest(store, before, source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        carl = resolve_lead_ref(conn, "carl")
        score, _ = read_current(conn, carl)
    assert score is not None and score["score"] == pytest.approx(40.0)
    ingest(
        store,
        [message(9, type="alias", previousId="old", userId="new")],
        source="test",
        as_of=T0 + 10 * MINUTE,
    )
    with store.connect() as conn:
        assert resolve_lead_ref(conn, "new") == resolve_lead_ref(conn, "old")
        merged = conn.execute(
            select(leads.c.email).where(leads.c.id == resolve_lead_ref(conn, "new"))
        ).scalar()
        score, lines = read_current(conn, carl)
    assert merged == "ann@x.com"
    assert score is not None and score["score"] == pytest.approx(0.0)
    assert sum(line["score_points"] for line in lines) == pytest.approx(0.0)


def test_a_merged_away_leads_id_resolves_to_the_kept_lead_and_the_merge_is_audited(store: Store) -> None:
    """The alias merges new's lead into old's. The API answers /v1/leads/<new's id> with old's record,
    the dashboard's /leads/<new's id> redirects to old's page, and the audit log says new's lead went
    into old's by the alias m-5. Before: 404 on both, nothing audited."""
    publish(store, loads_model(MODEL))
    ingest(store, HISTORY[:4], source="test", as_of=T0 + 10 * MINUTE)
    with store.begin() as conn:
        kept, gone = resolve_lead_ref(conn, "old"), resolve_lead_ref(conn, "new")
        _, read = create_key(conn, "read", "crm", 0)
        add_user(conn, "admin@example.test", "A", "admin", hash_password(PASSWORD), 0)
    never = max(kept, gone) + 1  # an id no lead ever had
    ingest(store, HISTORY[4:], source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        assert resolve_lead_ref(conn, str(gone)) == kept
        merges = [(r["target"], r["details"]) for r in read_audit(conn) if r["action"] == "lead.merge"]
    assert merges == [(f"lead:{gone}", {"into": kept, "message_id": "m-5"})]
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        with httpx.Client(base_url=url, timeout=30) as client:
            found = client.get(f"/v1/leads/{gone}", headers={"Authorization": f"Bearer {read}"})
            missing = client.get(f"/v1/leads/{never}", headers={"Authorization": f"Bearer {read}"})
        assert found.status_code == 200
        assert (found.json()["lead"]["id"], found.json()["lead"]["email"]) == (kept, "ann@x.com")
        assert missing.status_code == 404
        with signed_in(url, "admin@example.test") as web:
            moved = web.get(f"/leads/{gone}")
            assert (moved.status_code, moved.headers["location"]) == (301, f"/leads/{kept}")
            assert web.get(f"/leads/{kept}").status_code == 200
            assert web.get(f"/leads/{never}").status_code == 404
            # a page of a line's events (linked from the lead page) follows the lead as its page does
            line = web.get(f"/leads/{gone}/lines/probe?offset=25")
            assert (line.status_code, line.headers["location"]) == (
                301,
                f"/leads/{kept}/lines/probe?offset=25",
            )
            assert web.get(f"/leads/{kept}/lines/probe").status_code == 200


def test_a_lead_merged_twice_resolves_to_the_last_kept_lead(store: Store) -> None:
    """carl's lead merged into new's, then new's into old's: both old ids resolve to old's lead."""
    publish(store, loads_model(MODEL))
    ingest(store, [*HISTORY[:4], message(7, type="track", userId="carl", event="Probe")], source="test")
    with store.connect() as conn:
        old, new, carl = (resolve_lead_ref(conn, who) for who in ("old", "new", "carl"))
    ingest(store, [message(8, type="alias", previousId="new", userId="carl")], source="test")
    ingest(store, [message(9, type="alias", previousId="old", userId="new")], source="test")
    with store.connect() as conn:
        assert [resolve_lead_ref(conn, str(n)) for n in (carl, new, old)] == [old, old, old]
        assert conn.execute(select(func.count()).select_from(leads)).scalar() == 1


@pytest.mark.parametrize("remover", ["new", "old"])
@pytest.mark.parametrize("batches", ["one batch", "one message a batch"])
def test_a_removal_observed_last_survives_the_merge(store: Store, remover: str, batches: str) -> None:
    """One lead says CTO (minute 1), the other removes the title later (PostHog's ``$unset``, minute 4):
    the merged lead has no title, whichever of the two is kept (the older, old's). Before, the kept lead's
    title stayed, or the other's filled what the kept lead had removed as a gap. Three Probes of 10, no
    CTO: 0.5 * 0 + 0.5 * 30 = 15 (with the title it was 0.5 * 100 + 0.5 * 30 = 65)."""
    publish(store, loads_model(MODEL))
    setter = "old" if remover == "new" else "new"
    history = [
        message(1, type="identify", userId=setter, traits={"title": "CTO"}),
        message(2, type="track", userId="old", event="Probe"),
        message(3, type="track", userId="new", event="Probe"),
        message(4, type="identify", userId=remover, traits={}, context={"traits_unset": ["title"]}),
        message(5, type="alias", previousId="old", userId="new"),
        message(6, type="track", userId="new", event="Probe"),
    ]
    if remover == "old":  # old's lead must be the older one, kept: it is made first
        history[0], history[1] = message(0, type="track", userId="old", event="Probe"), history[0]
    for part in [history] if batches == "one batch" else [[m] for m in history]:
        ingest(store, part, source="test", as_of=T0 + 10 * MINUTE)
    with store.connect() as conn:
        lead = conn.execute(select(leads)).mappings().one()
        score, _ = read_current(conn, lead["id"])
    assert lead["external_id"] == "old" and "job_title" not in lead["attributes"]
    assert score is not None and score["score"] == pytest.approx(15.0)
