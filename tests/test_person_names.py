"""A person's name, one rule at every entry point (``ingest.person_names.person_name``, docs/ingest.md
"Names"): a CSV import (``First Name``, ``Last Name``, ``Name``), a Segment identify over HTTP
(``traits.firstName``/``lastName``/``name``) and a PostHog event's ``$set`` over HTTP, on SQLite and
PostgreSQL. Before, each split a full name its own way: a CSV ``Name`` of one word was a first name with
a blank last name, a Segment ``name`` of one word was no name (an attribute ``name``), a full name beside a
given first name was read by CSV not at all and by Segment for its last name; no path folded spaces or line
breaks, read "Last, First", or refused control characters.

The table is written by hand from the rule: each case is the (first, last) stored, or the field refused
with the reason (a refusal refuses that row or message alone)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, NamedTuple

import httpx
from sqlalchemy import select

from leadscore.ingest.csv_import import import_leads
from leadscore.store import Store
from leadscore.store.schema import leads
from live_server import tracking
from test_api_tracking import _drained, basic, wait_until


class Case(NamedTuple):
    given: dict[str, str]  # of first_name, last_name, name
    stored: tuple[str | None, str | None] | None  # None: refused
    refused: tuple[str, str] | None = None  # (the field refused, the reason)


LONG = "f" * 256
CASES: list[Case] = [
    Case({"name": "Ada Lovelace"}, ("Ada", "Lovelace")),
    Case({"name": "Madonna"}, ("Madonna", None)),  # one word: a first name
    Case({"name": "山田太郎"}, ("山田太郎", None)),
    Case({"name": "Anna van der Berg"}, ("Anna", "van der Berg")),  # first word, then the rest
    Case({"name": "van der Berg, Anna"}, ("Anna", "van der Berg")),  # "Last, First"
    Case({"name": "Lovelace,Ada King"}, ("Ada King", "Lovelace")),
    Case({"name": "John Smith, Jr."}, ("John", "Smith, Jr.")),  # a suffix stays with the last name
    Case({"name": "Madonna,"}, ("Madonna", None)),  # a comma with nothing on one side is no "Last, First"
    Case({"name": "  Ada \t  Lovelace  "}, ("Ada", "Lovelace")),  # runs of spaces are one
    Case({"name": "Ada\r\nLovelace"}, ("Ada", "Lovelace")),
    Case({"name": "Ada\u00a0\u3000Lovelace"}, ("Ada", "Lovelace")),  # any Unicode space
    Case({"name": " \t "}, (None, None)),  # whitespace only: no name
    Case({"first_name": "  Mary   Jane "}, ("Mary Jane", None)),
    Case({"first_name": "Ann", "last_name": "Lee", "name": "Ada Lovelace"}, ("Ann", "Lee")),
    Case({"last_name": "Byron", "name": "Ada Lovelace"}, ("Ada", "Byron")),  # each given field wins alone
    Case({"first_name": "Ann", "name": LONG + " Lee"}, ("Ann", "Lee")),  # the unused part is not stored
    Case({"name": "é" * 255 + " " + "😀" * 255}, ("é" * 255, "😀" * 255)),  # at the columns' length
    Case({"name": "Ada\x1bLovelace"}, None, ("name", "has a control character (U+001B)")),
    Case({"last_name": "Lee\x7f"}, None, ("last_name", "has a control character (U+007F)")),
    Case({"name": LONG + " Lee"}, None, ("name", "gives a first name of 256 characters; at most 255 are allowed")),
    Case({"name": "Lee, " + LONG}, None, ("name", "gives a first name of 256 characters; at most 255 are allowed")),
    Case({"name": "Ann " + LONG}, None, ("name", "gives a last name of 256 characters; at most 255 are allowed")),
    Case({"name": "x" * 1000}, None, ("name", "gives a first name of 1000 characters; at most 255 are allowed")),
    Case({"last_name": LONG}, None, ("last_name", "is 256 characters long; at most 255 are allowed")),
]  # fmt: skip
IDS = [f"n{i}" for i in range(len(CASES))]
MODEL = """
model: names
engagement:
  - {id: demo, name: Demo request, event: {type: track, name: Demo Requested}, points: 50}
scale: {engagement_max: 100, weights: {fit: 0, engagement: 1}, bands: {hot: 70, warm: 30}}
"""


def _names(store: Store) -> dict[str, tuple[str | None, str | None]]:
    with store.connect() as conn:
        rows = conn.execute(select(leads.c.external_id, leads.c.first_name, leads.c.last_name)).all()
    return {who: (first, last) for who, first, last in rows}


def _expected() -> dict[str, tuple[str | None, str | None]]:
    return {who: case.stored for who, case in zip(IDS, CASES, strict=True) if case.stored is not None}


def test_a_csv_import_reads_names_by_the_one_rule(store: Store, tmp_path: Path) -> None:
    headers = {"first_name": "First Name", "last_name": "Last Name", "name": "Name"}
    path = tmp_path / "leads.csv"
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["User ID", *headers.values()])
        for who, case in zip(IDS, CASES, strict=True):
            writer.writerow([who, *(case.given.get(field, "") for field in headers)])
    report = import_leads(store, path)
    assert [(p.line, p.field, p.message) for p in report.problems] == [
        (row, headers[case.refused[0]], case.refused[1])
        for row, case in enumerate(CASES, 2)
        if case.refused is not None
    ]
    assert _names(store) == _expected()


def _answer(url: str, path: str, body: dict[str, Any], headers: dict[str, str]) -> list[tuple[int, str, str]]:
    with httpx.Client(base_url=url) as http:
        r = http.post(
            path, content=json.dumps(body).encode(), headers={**headers, "Content-Type": "application/json"}
        )
    assert r.status_code == 200, r.text
    return [(e["index"], e["field"], e["message"]) for e in r.json()["rejected"]]


def test_a_segment_identify_and_a_posthog_set_read_names_by_the_one_rule(store: Store) -> None:
    segment_keys = {"first_name": "firstName", "last_name": "lastName", "name": "name"}
    with tracking(store, MODEL, "site") as (url, write):
        segment = [
            {"type": "identify", "userId": f"s-{who}", "messageId": f"s-{who}",
             "traits": {segment_keys[k]: v for k, v in case.given.items()}}
            for who, case in zip(IDS, CASES, strict=True)
        ]  # fmt: skip
        posthog = [
            {
                "event": "$set",
                "distinct_id": f"p-{who}",
                "uuid": f"p-{who}",
                "properties": {"$set": case.given},
            }
            for who, case in zip(IDS, CASES, strict=True)
        ]
        refused_segment = _answer(url, "/v1/batch", {"batch": segment}, basic(write))
        refused_posthog = _answer(url, "/batch/", {"api_key": write, "batch": posthog}, {})
        assert wait_until(lambda: _drained(store))
    assert refused_segment == [
        (
            i,
            f"batch[{i}].traits.{segment_keys[c.refused[0]]}",
            f"traits.{segment_keys[c.refused[0]]} {c.refused[1]}",
        )
        for i, c in enumerate(CASES)
        if c.refused is not None
    ]
    assert refused_posthog == [
        (i, f"batch[{i}].properties.$set.{c.refused[0]}", f"properties.$set.{c.refused[0]} {c.refused[1]}")
        for i, c in enumerate(CASES)
        if c.refused is not None
    ]
    stored = _names(store)
    for prefix in ("s-", "p-"):
        assert {who[2:]: names for who, names in stored.items() if who.startswith(prefix)} == _expected()


def test_a_group_messages_name_is_its_accounts_not_its_senders(store: Store) -> None:
    """A group message's ``name`` names the account: before, with an e-mail among its traits, "Acme Inc"
    became its sender's first and last name ("Acme", "Inc"), and a group name of 300 characters in one
    word is refused as no person's name only where it names a person."""
    from leadscore.ingest.segment import normalise
    from leadscore.scoring.pipeline import ingest

    messages = [
        {"type": "identify", "userId": "g", "messageId": "g-0", "traits": {"name": "Ada Lovelace"}},
        {"type": "group", "userId": "g", "groupId": "acme", "messageId": "g-1",
         "traits": {"email": "ada@acme.example", "name": "Acme Inc"}},
        {"type": "group", "userId": "g", "groupId": "long", "messageId": "g-2", "traits": {"name": "n" * 300}},
    ]  # fmt: skip
    ingest(
        store,
        [normalise(m, received_ms=1_717_200_000_000 + i) for i, m in enumerate(messages)],
        source="test",
    )
    assert _names(store) == {"g": ("Ada", "Lovelace")}
