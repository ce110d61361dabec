"""A lead's display name, one rule on every surface (store/lead_names.py): the full name is the first and
last name, each with its whitespace folded and stripped, joined by one space; the display name is the full
name, else the e-mail address, else "Lead <id>". The cases are rows as a store may hold them (names
written before ingest folded them, or by hand), run through the dashboard's lead page and leads list, the
lifecycle's lead context (what webhooks and segment messages say), the CLI's ``explain`` and ``score``,
and the privacy report.

Before, the seven copies disagreed: the lead page stripped only the ends (" Ann ", " Lee " → "Ann   Lee"),
the context, the CLI and the privacy report not at all (" Ann   Lee "), a name of blanks only was the
lead's name in the context, the CLI and the privacy report ("   \\t") but not on the dashboard (its
e-mail), and a lead of no name and no e-mail was "Lead 7" on the dashboard, "lead 7" in the context
and the id typed on the CLI; ``explain`` read a name as console markup ("[red]Ann" printed "Ann").
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from markupsafe import escape
from sqlalchemy import update
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.lifecycle.context import lead_context
from leadscore.lifecycle.notify import note_name
from leadscore.privacy.person import find_person
from leadscore.scoring.pipeline import publish
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.lead_names import display_name, full_name
from leadscore.store.people import find_lead
from leadscore.store.schema import leads
from leadscore.store.users import add_user
from lifecycle_model import model, person, send
from live_server import serving
from web_support import PASSWORD, signed_in

# (first, last, email) as stored → (full name, display name); "{id}": the lead's id. Hand-written.
CASES: list[tuple[str | None, str | None, str | None, str, str]] = [
    ("Ann", "Lee", "ann@x.example", "Ann Lee", "Ann Lee"),
    (None, "Lee", "lee@x.example", "Lee", "Lee"),
    ("Ann", None, None, "Ann", "Ann"),
    (None, None, "only@x.example", "", "only@x.example"),
    ("  ", "\t", "blank@x.example", "", "blank@x.example"),
    (" Ann ", " Lee ", "pad@x.example", "Ann Lee", "Ann Lee"),
    ("Mary  Ann", "van\u00a0der Berg", None, "Mary Ann van der Berg", "Mary Ann van der Berg"),
    ("Zoë", "Þórsdóttir", "zoe@x.example", "Zoë Þórsdóttir", "Zoë Þórsdóttir"),
    ("山田", "", None, "山田", "山田"),
    ("", "", None, "", "Lead {id}"),
    (None, None, None, "", "Lead {id}"),
    ("<b>", "O'Hara & Co", None, "<b> O'Hara & Co", "<b> O'Hara & Co"),
    ("[red]Ann", "Lee[/red]", None, "[red]Ann Lee[/red]", "[red]Ann Lee[/red]"),  # no console markup
]
USERS = [f"n{i}" for i in range(len(CASES))]


@pytest.mark.parametrize(("first", "last", "email", "full", "shown"), CASES)
def test_the_rule(first: str | None, last: str | None, email: str | None, full: str, shown: str) -> None:
    assert full_name(first, last) == full
    assert display_name(first, last, email, 7) == shown.format(id=7)


@pytest.fixture
def named(store: Store) -> dict[str, int]:
    """One scored lead per case, its names and e-mail then set as the case stores them."""
    publish(store, model())
    send(store, [person(u) for u in USERS])
    ids = {}
    with store.begin() as conn:
        for user, (first, last, email, _, _) in zip(USERS, CASES, strict=True):
            lead_id = int(find_lead(conn, external_id=user))  # type: ignore[arg-type]
            conn.execute(
                update(leads)
                .where(leads.c.id == lead_id)
                .values(first_name=first, last_name=last, email=email)
            )
            ids[user] = lead_id
        add_user(conn, "admin@example.test", "A", "admin", hash_password(PASSWORD), 0)
    return ids


def _expected(user: str, ids: dict[str, int]) -> tuple[str, str]:
    _, _, _, full, shown = CASES[USERS.index(user)]
    return full, shown.format(id=ids[user])


def test_every_surface_names_each_lead_alike(store: Store, named: dict[str, int]) -> None:
    shown_by: dict[str, dict[str, Any]] = {"page": {}, "list": {}, "context": {}, "note": {}, "privacy": {}}
    with store.connect() as conn:
        for user, lead_id in named.items():
            context = lead_context(conn, model(), lead_id, Settings())["lead"]
            shown_by["context"][user] = context["name"]
            shown_by["note"][user] = note_name(context)
            shown_by["privacy"][user] = find_person(conn, f"lead:{lead_id}").name
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url, signed_in(url, "admin@example.test") as web:
        for user, lead_id in named.items():
            page = web.get(f"/leads/{lead_id}")
            assert page.status_code == 200, page.text
            shown_by["page"][user] = re.search(r"<h1>(.*?)</h1>", page.text, re.S).group(1)  # type: ignore[union-attr]
        listed = web.get("/leads", params={"size": 100})
        assert listed.status_code == 200
        for user, lead_id in named.items():
            link = re.search(rf'<a href="/leads/{lead_id}">(.*?)</a>', listed.text, re.S)
            shown_by["list"][user] = link.group(1) if link else None
    explained = {}
    for user, lead_id in named.items():
        out = CliRunner().invoke(
            cli, ["explain", str(lead_id), "--db", str(store.url)], env={"COLUMNS": "400"}
        )
        assert out.exit_code == 0, out.output
        explained[user] = out.output.split(" <", 1)[0].strip()
    out = CliRunner().invoke(cli, ["score", "--format", "json", "--db", str(store.url)])
    assert out.exit_code == 0, out.output
    scored = {row["lead_id"]: row["name"] for row in json.loads(out.output)}
    differ = []
    for user, lead_id in named.items():
        full, shown = _expected(user, named)
        wanted = {
            "page": str(escape(shown)),
            "list": str(escape(shown)),
            "context": shown,
            # messages to sellers never carry the e-mail address: the full name, else "Lead <id>"
            "note": full or f"Lead {lead_id}",
            "privacy": full or None,
            "explain": shown,
            "score": full,
        }
        got = {
            **{k: v[user] for k, v in shown_by.items()},
            "explain": explained[user],
            "score": scored[lead_id],
        }
        differ += [(CASES[USERS.index(user)][:3], k, got[k], w) for k, w in wanted.items() if got[k] != w]
    assert differ == [], "\n".join(map(repr, differ))
