"""Erasure is exact over a populated lifecycle store: after erasing her, no text, JSON or binary column of
any table (walked from the SQLAlchemy metadata, both stores) names her user ids, anonymous ids, e-mail,
name or a trait value only she had, while her colleague at the same account, a man who used a browser
she had used first, and the account's aggregate (recomputed without her, by hand) stay as they should.

The world: her browser's page view, then her identify (user id, e-mail, name, a distinct trait) and an
older lead of hers (another user id) merged into her by an alias; enough interest to reach MQL, be
assigned to a seller and notified (manager webhook with her name, seller mail with her e-mail, a hot
crossing webhook); a dead letter of hers; a staff member's export of the leads list searched by her
e-mail and by her name (audited); her colleague Carl at the account, and Bob, whose events carry the
browser id she had used before he identified on it.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON, LargeBinary, String, Text, cast, select

from leadscore.lifecycle.lead_filter import LeadFilter
from leadscore.lifecycle.runner import run_round
from leadscore.model import loads_model
from leadscore.privacy.erase import erase
from leadscore.privacy.person import find_person
from leadscore.privacy.tables import present_tables
from leadscore.scoring.pipeline import publish
from leadscore.store import Store, dead_letters
from leadscore.store.audit import audit
from leadscore.store.lifecycle_tables import read_account_stages
from leadscore.store.people import find_lead
from leadscore.store.results import read_current
from leadscore.store.schema import events, leads
from lifecycle_model import DAY, HOUR, MODEL, T0, send
from lifecycle_model import settings as lc_settings
from test_erasure import ENGINES, fresh_store

PEPPER = "test-pepper-0123456789-0123456789"
# the lifecycle tests' model, with an account score: committee engagement alone, two contacts
ACCOUNTS = """
  accounts:
    committee_size: 2
    engaged_at_least: 35
    weights: {fit: 0, engagement: 1}
    mqa: {score_at_least: 60, engaged_contacts_at_least: 2}
"""
WALK_MODEL = MODEL.replace("  segments:\n", ACCOUNTS + "  segments:\n", 1)
# her name and identifiers as whole words: not inside a longer id, address or word
WORD = r"(?<![\w.@+-]){}(?![\w@+-]|\.\w)"


def _msg(kind: str, at: int, mid: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": at, "messageId": mid, **fields}


def _interest(user: str, n: int, at: int) -> list[dict[str, Any]]:
    return [_msg("track", at, f"{user}-plus-{i}", userId=user, event="Plus") for i in range(n)]


@st.composite
def hers(draw: st.DrawFn) -> dict[str, str]:
    tag = draw(st.from_regex(r"[a-z]{3,6}", fullmatch=True))
    return {
        "user": f"u{tag}7",
        "old_user": f"old{tag}",
        "anon": f"dev{tag}",
        "shared": f"kiosk{tag}",  # the browser Bob identified on after her
        "email": f"{tag}.q@acme.example",
        "old_email": f"old{tag}@home.example",
        "first": f"Zo{tag}",
        "last": f"Quill{tag}",
        "trait": f"orchid{uuid.uuid4().hex[:10]}",
    }


def _build(store: Store, her: dict[str, str], old_email: bool) -> None:
    publish(store, loads_model(WALK_MODEL))
    group = {"groupId": "acme", "traits": {"domain": "acme.example", "name": "Acme"}}
    send(store, [
        _msg("page", T0 - DAY, "h-1", anonymousId=her["anon"], properties={"path": "/pricing"}),
        _msg("page", T0 - DAY, "h-2", anonymousId=her["shared"], properties={"path": "/kiosk"}),
        # an older lead of hers, under another user id, merged into her by the alias below
        _msg("identify", T0 - DAY, "h-3", userId=her["old_user"],
             traits={"firstName": her["first"],
                     **({"email": her["old_email"]} if old_email else {})}),
        _msg("identify", T0, "h-4", userId=her["user"], anonymousId=her["anon"],
             traits={"email": her["email"], "firstName": her["first"], "lastName": her["last"],
                     "title": "Marketing Manager", "country": "se", "flower": her["trait"]}),
        _msg("identify", T0, "h-5", userId=her["user"], anonymousId=her["shared"]),
        _msg("alias", T0, "h-6", userId=her["user"], previousId=her["old_user"]),
        _msg("group", T0, "h-7", userId=her["user"], **group),
        *_interest(her["user"], 75, T0 + HOUR),
        _msg("identify", T0, "c-1", userId="carl",
             traits={"email": "carl@acme.example", "firstName": "Carl", "title": "Marketing Lead",
                     "country": "de", "note": f"met {her['first']}"}),
        _msg("group", T0, "c-2", userId="carl", **group),
        *_interest("carl", 40, T0 + HOUR),
        # Bob on the browser she had used before: his events, her browser id beside his user id
        _msg("identify", T0 + DAY, "b-1", userId="bob", anonymousId=her["shared"],
             traits={"email": "bob@other.example", "firstName": "Bob"}),
        _msg("page", T0 + DAY, "b-2", userId="bob", anonymousId=her["shared"], properties={"path": "/x"}),
    ])  # fmt: skip
    run_round(store, lc_settings(), now_ms=T0 + DAY, deliver=False)
    with store.begin() as conn:
        dead_letters.add(
            conn,
            {"message_id": "h-dl", "user_id": her["user"], "traits": {"email": her["email"]}},
            f"could not apply {her['email']}",
            T0 + DAY,
        )
        # the leads list export, audited as /leads/export.csv audits it: searched by her e-mail, her name
        for q in (her["email"], f"{her['first']} {her['last']}"):
            audit(conn, T0 + DAY, "maja@vendor.example", "leads.export", "leads",
                  filter=LeadFilter(q=q).params(), sort="score", order="desc")  # fmt: skip


def _traces(store: Store, her: dict[str, str]) -> dict[str, list[str]]:
    """Every text, JSON and binary column of every table, read as text, where one of her identifiers
    stands as a whole word (her shared browser's id left out: Bob's events keep it, as his)."""
    wanted = {k: v for k, v in her.items() if k != "shared"}
    patterns = {k: re.compile(WORD.format(re.escape(v)), re.IGNORECASE) for k, v in wanted.items()}
    found: dict[str, list[str]] = {}
    with store.connect() as conn:
        for table in present_tables(conn):
            for column in table.columns:
                if not isinstance(column.type, String | Text | JSON | LargeBinary):
                    continue
                read = column if isinstance(column.type, String) else cast(column, Text)
                if isinstance(column.type, LargeBinary):
                    read = column
                for value in conn.execute(select(read).where(column.is_not(None))).scalars():
                    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
                    hits = [k for k, p in patterns.items() if p.search(text)]
                    if hits:
                        found.setdefault(f"{table.name}.{column.name}", []).extend(hits)
    return found


def _lead(store: Store, user: str) -> int:
    with store.connect() as conn:
        found = find_lead(conn, external_id=user)
    assert found is not None
    return found


# old_email: her older lead had an address, which the merge keeps as hers; the searches name her newer one
@pytest.mark.parametrize("old_email", [False, True], ids=["one-address", "older-address-kept"])
@pytest.mark.parametrize("engine", ENGINES)
@given(her=hers())
# no shrinking: a world takes seconds to build, and any of them shows what is left
@settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)
def test_no_column_of_any_table_names_her_after_erasure(
    engine: str, her: dict[str, str], old_email: bool
) -> None:
    with fresh_store(engine) as store:
        _build(store, her, old_email)
        before = _traces(store, her)
        # the world holds her where the brief says: leads, events, outbox, audit, dead letters
        assert {"events.user_id", "outbox.payload", "audit_log.details", "dead_letters.message"} <= set(
            before
        )
        carl, bob = _lead(store, "carl"), _lead(store, "bob")
        with store.connect() as conn:
            carl_before = read_current(conn, carl)
            account = conn.execute(select(leads.c.account_id).where(leads.c.id == carl)).scalar()
            assert account is not None
            # committee of two: her 75 and Carl's 40 engagement, both engaged (35 or more)
            stored = read_account_stages(conn, [account])[account]
            assert (stored["engagement_score"], stored["engaged_contacts"]) == (57.5, 2)
            bob_events = sorted(
                conn.execute(select(events.c.message_id).where(events.c.user_id == "bob")).scalars()
            )
            person = find_person(conn, her["user"])
        erase(store, person, PEPPER, T0 + 2 * DAY, "test")
        # only Carl's own note naming her first name stays (his data, as he wrote it)
        assert _traces(store, her) == {"events.context": ["first"], "leads.attributes": ["first"]}
        with store.connect() as conn:
            # Carl keeps his score (engagement counts his own events only) and his lead
            assert read_current(conn, carl) == carl_before
            # the account without her: Carl's 40 and a missing second contact's 0, over two: 20; one engaged
            stored = read_account_stages(conn, [account])[account]
            assert (stored["engagement_score"], stored["engaged_contacts"], stored["stage"]) == (
                20.0,
                1,
                "none",
            )
            assert (
                sorted(conn.execute(select(events.c.message_id).where(events.c.user_id == "bob")).scalars())
                == bob_events
                == ["b-1", "b-2"]
            )
            assert find_lead(conn, external_id="bob") == bob
            assert find_lead(conn, external_id=her["user"]) is None
            assert find_lead(conn, external_id=her["old_user"]) is None
