"""Two managers reassign the same lead at the same moment, each on what they saw (a page, a request): the
first one's reassignment stands, the second is refused (``MovedMeanwhile``, a 409 over the API), as the
desk refuses a decision taken on a stay the lead has left. Exactly one assignment stays open, the new
seller's, and the outbox holds the seller mail of the assignment that stands, none of the refused one.

Ann becomes an MQL at day 1 (70 points, grade B): Lena's, EMEA's rotation at position 0 (as in
tests/test_lifecycle.py), with the seller mail to Lena."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from leadscore.errors import InputError
from leadscore.lifecycle import feedback
from leadscore.lifecycle.feedback import MovedMeanwhile, Reassigned, reassign
from leadscore.lifecycle.runner import run_round
from leadscore.scoring.pipeline import publish
from leadscore.store import Store
from leadscore.store.audit import read_audit
from leadscore.store.lifecycle_tables import list_assignments
from leadscore.store.outbox import read_outbox
from leadscore.store.people import find_lead
from lifecycle_model import DAY, HOUR, T0, model, person, points, send, settings

AT = T0 + DAY + HOUR


@pytest.fixture
def ann(store: Store) -> int:
    publish(store, model())
    send(store, [person("ann"), *points("ann", 70)])
    run_round(store, settings(), now_ms=T0 + DAY, deliver=False)
    with store.connect() as conn:
        found = find_lead(conn, external_id="ann")
        assert found is not None
        [row] = list_assignments(conn)
    assert row["seller"] == "lena"
    return found


def _mails(store: Store) -> list[str]:
    with store.connect() as conn:
        return [o["target"] for o in read_outbox(conn) if o["action"] == "seller_mail"]


def _stands(store: Store) -> tuple[str, list[str]]:
    """The one assignment's seller, and the sellers the audit log says it was given to, in that order (the
    log reads newest first)."""
    with store.connect() as conn:
        [row] = list_assignments(conn)
        given = [a["details"]["seller"] for a in read_audit(conn) if a["action"] == "lead.reassign"]
    return str(row["seller"]), given[::-1]


def test_two_managers_reassigning_at_once_one_is_refused(store: Store, ann: int) -> None:
    """Tom gives Ann to Paul and Maja gives her to Ines at the same moment, both having seen her Lena's:
    whichever locks her first wins, the other is refused, on either store."""
    start = threading.Barrier(2)
    done: dict[str, Any] = {}

    def manager(seller: str, by: str) -> None:
        start.wait()
        try:
            done[seller] = reassign(
                store, model(), ann, seller, by=by, settings=settings(), now_ms=AT, seen_seller="lena"
            )
        except Exception as exc:  # asserted below
            done[seller] = exc

    threads = [threading.Thread(target=manager, args=a) for a in (("paul", "Tom"), ("ines", "Maja"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [s for s, r in done.items() if isinstance(r, Reassigned)]
    lost = [s for s, r in done.items() if isinstance(r, MovedMeanwhile)]
    assert len(won) == 1 and len(lost) == 1, done
    winner, loser = won[0], lost[0]
    assert f"it is {winner}'s" in str(done[loser]) and "not lena's" in str(done[loser])
    assert _stands(store) == (winner, [winner])
    assert _mails(store) == ["lena@vendor.example", f"{winner}@vendor.example"]


def test_a_reassignment_stating_no_view_takes_the_one_at_its_start(
    store: Store, ann: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that states no holder (the API without ``from``, the CLI without ``--from``) is taken to
    have seen the one holding the lead when its call began: Maja's reassignment to Ines lands between
    Tom's reading Lena and his lock, so Tom's (to Paul) is refused; each call is alone, in one thread."""
    real = feedback.current_assignment
    calls: list[int] = []

    def seam(conn: Any, lead_id: int) -> Any:
        seen = real(conn, lead_id)
        calls.append(lead_id)
        if len(calls) == 1:  # Tom's read: Maja's whole reassignment runs before his transaction
            reassign(store, model(), ann, "ines", by="Maja", settings=settings(), now_ms=AT)
        return seen

    monkeypatch.setattr(feedback, "current_assignment", seam)
    with pytest.raises(MovedMeanwhile, match=r"it is ines's .* not lena's"):
        reassign(store, model(), ann, "paul", by="Tom", settings=settings(), now_ms=AT)
    assert _stands(store) == ("ines", ["ines"])
    assert _mails(store) == ["lena@vendor.example", "ines@vendor.example"]


def test_a_stale_reassignment_over_the_api_and_the_cli_is_refused(store: Store, ann: int) -> None:
    """POST /v1/leads/ann/assignment with ``from`` (the seller the caller saw): Tom's from Lena to Paul
    stands; Maja's from Lena to Ines is a 409 and changes nothing; hers from Paul to Ines stands. The
    CLI's ``--from lena`` is refused the same way; ``--from ines`` gives her back to Lena."""
    import httpx
    from typer.testing import CliRunner

    from leadscore.api import create_app
    from leadscore.cli.main import app as cli
    from leadscore.settings import Settings
    from leadscore.store.keys import create_key
    from live_server import serving

    with store.begin() as conn:
        _, admin = create_key(conn, "admin", "crm", 0)
    bearer = {"Authorization": f"Bearer {admin}"}
    api = create_app(Settings(database_url="unused", run_processor=False), store=store)
    with serving(api) as url, httpx.Client(base_url=url, timeout=10, headers=bearer) as client:
        r = client.post("/v1/leads/ann/assignment", json={"seller": "paul", "by": "Tom", "from": "lena"})
        assert r.status_code == 200 and r.json()["from"] == "lena", r.text
        r = client.post("/v1/leads/ann/assignment", json={"seller": "ines", "by": "Maja", "from": "lena"})
        assert r.status_code == 409, r.text
        assert "it is paul's" in r.json()["error"] and "nothing was done" in r.json()["error"], r.text
        assert _stands(store) == ("paul", ["paul"])
        r = client.post("/v1/leads/ann/assignment", json={"seller": "ines", "by": "Maja", "from": "paul"})
        assert r.status_code == 200, r.text
    db = store.engine.url.render_as_string(hide_password=False)
    runner = CliRunner()
    result = runner.invoke(cli, ["reassign", "ann", "lena", "--by", "Tom", "--from", "lena", "--db", db])
    # refused as ``leadscore`` refuses any (``cli.main.main`` prints it): the runner hands it back
    assert isinstance(result.exception, MovedMeanwhile) and "it is ines's" in str(result.exception)
    result = runner.invoke(cli, ["reassign", "ann", "lena", "--by", "Tom", "--from", "ines", "--db", db])
    assert result.exit_code == 0, result.output
    assert _stands(store) == ("lena", ["paul", "ines", "lena"])
    assert _mails(store) == [f"{s}@vendor.example" for s in ("lena", "paul", "ines", "lena")]


def test_a_from_with_a_nul_is_refused_naming_it(store: Store, ann: int) -> None:
    """A NUL in ``from`` (the API's field, the CLI's --from) is refused as one in ``by`` is: a 422 naming
    the field, not a 409 telling the manager that another reassigned the lead meanwhile (no one did)."""
    with pytest.raises(InputError) as caught:
        reassign(
            store, model(), ann, "paul", by="Tom", settings=settings(), now_ms=AT, seen_seller="le\x00na"
        )
    assert (caught.value.problem.field, caught.value.problem.message) == (
        "from",
        "has a NUL character (\\u0000)",
    )
    assert _stands(store) == ("lena", [])
