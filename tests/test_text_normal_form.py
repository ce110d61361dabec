"""Attribute values, event properties, model literals and list entries in either Unicode normal form
compare as one text: a marketer types ``Geschäftsführer`` (NFC, one ``ä``) in a rule, a CSV exported on a
Mac or a trait carries it decomposed (NFD: ``a`` and U+0308); the rule never matched and ``validate``
said ok.

Expected points are worked out by hand from the model written here: a managing director (``gf``) is 40,
a bakery (``bakery``) 10, a company on the target list (``target``) 20, a demo form submitted (``form``)
30 engagement points.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from leadscore.api import create_app
from leadscore.cli.main import app as cli
from leadscore.lifecycle.lead_filter import LeadFilter
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.keys import create_key
from leadscore.store.schema import events, leads
from live_server import serving
from test_api_tracking import _drained, basic, wait_until


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def nfd(text: str) -> str:
    return unicodedata.normalize("NFD", text)


GF, BAKERY, MUELLER, FORM = "Geschäftsführer", "Bäckerei", "Müller GmbH", "Anfrage für Demo"
assert nfc(GF) != nfd(GF) and nfc(BAKERY) != nfd(BAKERY) and nfc(MUELLER) != nfd(MUELLER)


def _model(tmp_path: Path) -> Path:
    """The rule literals as typed on a keyboard (NFC), but for ``bakery``'s (NFD, pasted from a Mac); the
    target list's file holds Müller GmbH decomposed and Acme."""
    (tmp_path / "targets.csv").write_text(f"company\n{nfd(MUELLER)}\nAcme\n", encoding="utf-8")
    text = f"""model: nfc
fit:
  - {{id: gf, name: Managing director, when: {{attribute: job_title, equals: "{nfc(GF)}"}}, points: 40}}
  - {{id: bakery, name: Bakery, when: {{attribute: industry, in: ["{nfd(BAKERY)}", Retail]}}, points: 10}}
  - {{id: target, name: Target account, when: {{attribute: company, in_list: targets}}, points: 20}}
engagement:
  - id: form
    name: Demo form
    event: {{type: track, name: Form Submitted}}
    where: {{property: form, equals: "{nfc(FORM)}"}}
    points: 30
lists:
  targets: {{csv: targets.csv}}
"""
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _cli(store: Store, *args: str) -> Any:
    out = CliRunner().invoke(cli, [*args, "--db", str(store.url)])
    assert out.exit_code == 0, out.output
    return out.output


def _json(store: Store, *args: str) -> Any:
    return json.loads(_cli(store, *args, "--format", "json"))


def _fit(store: Store, who: str) -> tuple[float, list[str]]:
    explained = _json(store, "explain", who)
    return explained["fit_score"], sorted(line["rule_id"] for line in explained["lines"])


def _attributes(store: Store, email: str) -> dict[str, Any]:
    with store.connect() as conn:
        return dict(conn.execute(select(leads.c.attributes).where(leads.c.email == email)).scalar_one())


def test_csv_import_scores_either_form_against_either_form(store: Store, tmp_path: Path) -> None:
    """Ann's title is decomposed, the rule's composed: 40; her industry composed, the rule's decomposed:
    10; her company composed, the list file's decomposed: 20. Bob has each the other way: the same 70.
    Cy (ASCII) is a retailer on the list as Acme: 30."""
    model = _model(tmp_path)
    validated = CliRunner().invoke(cli, ["validate", str(model)])
    assert validated.exit_code == 0, validated.output
    _cli(store, "model", "publish", str(model))
    rows = [
        ("Email", "Job Title", "Industry", "Company"),
        ("ann@example.com", nfd(GF), nfc(BAKERY), nfc(MUELLER)),
        ("bob@example.com", nfc(GF), nfd(BAKERY), nfd(MUELLER)),
        ("cy@example.com", "Engineer", "Retail", "Acme"),
    ]
    path = tmp_path / "leads.csv"
    path.write_text("".join(",".join(r) + "\n" for r in rows), encoding="utf-8")
    _cli(store, "import", "leads", str(path))
    _cli(store, "score")
    assert _fit(store, "ann@example.com") == (70.0, ["bakery", "gf", "target"])
    assert _fit(store, "bob@example.com") == (70.0, ["bakery", "gf", "target"])
    assert _fit(store, "cy@example.com") == (30.0, ["bakery", "target"])
    scored = {row["email"]: row["fit_score"] for row in _json(store, "score")}
    assert scored == {"ann@example.com": 70.0, "bob@example.com": 70.0, "cy@example.com": 30.0}
    # the values are kept composed (NFC); an NFC value and an ASCII one byte for byte as they came
    assert _attributes(store, "ann@example.com")["job_title"].encode() == nfc(GF).encode()
    assert _attributes(store, "bob@example.com")["industry"].encode() == nfc(BAKERY).encode()
    assert _attributes(store, "cy@example.com")["industry"] == "Retail"


def test_values_stored_decomposed_before_still_match(store: Store, tmp_path: Path) -> None:
    """A lead whose title was stored decomposed before values were normalised (written here straight
    into the row) still gets the composed rule's 40: the model reads both forms. Re-importing her row
    stores it composed."""
    model = _model(tmp_path)
    _cli(store, "model", "publish", str(model))
    path = tmp_path / "leads.csv"
    path.write_text(f"Email,Job Title\ndee@example.com,{nfc(GF)}\n", encoding="utf-8")
    _cli(store, "import", "leads", str(path))
    with store.begin() as conn:
        conn.execute(
            update(leads)
            .where(leads.c.email == "dee@example.com")
            .values(attributes={"job_title": nfd(GF), "industry": nfc(BAKERY)})
        )
    _cli(store, "score")
    assert _fit(store, "dee@example.com") == (50.0, ["bakery", "gf"])
    assert _attributes(store, "dee@example.com")["job_title"] == nfd(GF)  # kept as it was stored
    _cli(store, "import", "leads", str(path))
    assert _attributes(store, "dee@example.com")["job_title"].encode() == nfc(GF).encode()


@pytest.fixture
def api(store: Store, tmp_path: Path) -> Iterator[tuple[str, str, Store]]:
    _cli(store, "model", "publish", str(_model(tmp_path)))
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
    app = create_app(Settings(database_url="unused", processor_idle_s=0.05), store=store)
    with serving(app) as url:
        yield url, write, store


def test_identify_traits_and_event_properties_decomposed_score(api: tuple[str, str, Store]) -> None:
    """An identify with a decomposed title and company (40 + 20) and a form submission whose form name is
    decomposed (30): fit 60, engagement 30, each line its rule. The event keeps the form's name composed; one
    kept decomposed before still counts."""
    url, write, store = api
    traits = {"email": "eva@example.com", "title": nfd(GF), "company": nfd(MUELLER)}
    track = {"userId": "eva", "event": "Form Submitted", "properties": {"form": nfd(FORM)}}
    with httpx.Client(base_url=url) as client:
        r = client.post("/v1/identify", json={"userId": "eva", "traits": traits}, headers=basic(write))
        assert r.status_code == 200, r.text
        r = client.post("/v1/track", json=track, headers=basic(write))
        assert r.status_code == 200, r.text
        assert wait_until(lambda: _drained(store))
    explained = _json(store, "explain", "eva")
    assert (explained["fit_score"], explained["engagement_score"]) == (60.0, 30.0)
    assert sorted(line["rule_id"] for line in explained["lines"]) == ["form", "gf", "target"]
    assert _attributes(store, "eva@example.com")["job_title"].encode() == nfc(GF).encode()
    with store.connect() as conn:
        properties = conn.execute(
            select(events.c.properties).where(events.c.name == "Form Submitted")
        ).scalar_one()
    assert properties["form"].encode() == nfc(FORM).encode()
    # an event stored decomposed before (written here straight into its row) still counts its 30
    with store.begin() as conn:
        conn.execute(
            update(events).where(events.c.name == "Form Submitted").values(properties={"form": nfd(FORM)})
        )
    _cli(store, "score")
    assert _json(store, "explain", "eva")["engagement_score"] == 30.0


def test_the_search_box_finds_either_form(store: Store, tmp_path: Path) -> None:
    """The leads list's company filter and search box, typed decomposed, find Müller GmbH (composed)."""
    path = tmp_path / "leads.csv"
    path.write_text(
        f"Email,Company\nfay@example.com,{nfc(MUELLER)}\ngus@example.com,Acme\n", encoding="utf-8"
    )
    _cli(store, "import", "leads", str(path))
    with store.connect() as conn:
        for found in (LeadFilter(company=nfd("müller")), LeadFilter(q=nfd("MÜLLER"))):
            ids = conn.execute(found.lead_ids()).scalars().all()
            emails = conn.execute(select(leads.c.email).where(leads.c.id.in_(ids))).scalars().all()
            assert emails == ["fay@example.com"]


def test_the_normaliser_keeps_nfc_and_refuses_nothing() -> None:
    """NFC and ASCII texts come back as they are (the same object); NUL and a lone surrogate do not make
    it fail (they are refused where values are checked, not here); nested values are normalised and
    a structure with nothing to change is returned as it is."""
    from leadscore.model.text_case import normalise_text, normalise_values

    composed = nfc(GF)
    assert normalise_text(composed) is composed
    assert normalise_text(nfd(GF)) == composed
    assert normalise_text("a\x00b") == "a\x00b"
    assert normalise_text("a\ud800" + nfd("ä")) == "a\ud800ä"
    nested = {"form": nfd(FORM), "list": [nfd(GF), 3, None], "n": 1.5, "ok": True}
    assert normalise_values(nested) == {"form": nfc(FORM), "list": [nfc(GF), 3, None], "n": 1.5, "ok": True}
    plain = {"a": ["x", composed], "b": 2}
    assert normalise_values(plain) is plain
