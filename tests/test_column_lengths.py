"""Every bounded text column hostile input reaches, probed on both stores: PostgreSQL enforces a
``String(N)``'s length (in characters, not bytes) and refuses NUL in text, SQLite does neither. A value
at a column's length in multi-byte letters ("é": 2 bytes of UTF-8, "😀": 4) is stored whole on both; one
character more, or a NUL, is refused naming its field (and row or line), and never fails the other rows
or messages of its file or batch. The lengths come from ``store/schema.py`` through ``ingest/limits.py``:
the expected numbers here are written by hand from the schema."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, select, text
from typer.testing import CliRunner

from leadscore.cli.main import app
from leadscore.errors import MessageError
from leadscore.ingest import csv_import
from leadscore.ingest.csv_import import ImportOptions, ImportReport, import_accounts, import_leads
from leadscore.ingest.jsonl_import import import_events
from leadscore.ingest.posthog import as_sent, to_segment
from leadscore.ingest.segment import normalise
from leadscore.scoring.pipeline import ingest
from leadscore.store import Store
from leadscore.store.schema import accounts, events, leads, outcomes

NOW = 1_717_200_000_000  # 2024-06-01T00:00:00Z
DOMAIN = "@x.example"
HEADERS = ["Email", "User ID", "First Name", "Last Name", "Company"]
# header → (leads column, its length in store/schema.py)
LEAD_COLUMNS = {"Email": ("email", 320), "User ID": ("external_id", 255), "First Name": ("first_name", 255),
                "Last Name": ("last_name", 255), "Company": ("company", 500)}  # fmt: skip
runner = CliRunner()


def long_text(header: str, length: int, letter: str) -> str:
    """``length`` characters of ``letter`` (an e-mail address: its local part, then ``DOMAIN``)."""
    return letter * (length - len(DOMAIN)) + DOMAIN if header == "Email" else letter * length


def write_csv(path: Path, headers: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        csv.writer(out).writerows([headers, *rows])


def lead_row(n: int, **cells: str) -> list[str]:
    row = {
        "Email": f"r{n}@y.example",
        "User ID": f"u{n}",
        "First Name": "F",
        "Last Name": "L",
        "Company": "C",
    }
    return [cells.get(h, row[h]) for h in HEADERS]


@pytest.mark.parametrize("header", LEAD_COLUMNS)
def test_csv_lead_text_at_over_and_with_nul(store: Store, tmp_path: Path, header: str) -> None:
    column, length = LEAD_COLUMNS[header]
    at_2, at_4 = long_text(header, length, "é"), long_text(header, length, "😀")
    rows = [
        lead_row(2),
        lead_row(3, **{header: at_2}),
        lead_row(4, **{header: at_4}),
        lead_row(5, **{header: long_text(header, length + 1, "é")}),
        lead_row(6, **{header: "a\x00b" + (DOMAIN if header == "Email" else "")}),
        lead_row(7),
    ]
    path = tmp_path / "leads.csv"
    write_csv(path, HEADERS, rows)
    report = import_leads(store, path)
    # e-mail addresses and names are refused as a message's traits are (``limits.email_refusal``,
    # ``person_names.person_name``), the other columns by the CSV import's own words
    shared = header in ("Email", "First Name", "Last Name")
    too_long = (
        f"is {length + 1} characters long; at most {length} are allowed"
        if shared
        else f"longer than {length} characters ({length + 1}); it cannot be stored"
    )
    assert [(p.line, p.field, p.message) for p in report.problems] == [
        (5, header, too_long),
        (6, header, "contains a NUL character"),
    ]
    assert report.created == 4
    with store.connect() as conn:
        stored = dict(conn.execute(select(leads.c.external_id, leads.c[column])).all())
    if header == "User ID":
        assert set(stored) == {"u2", at_2, at_4, "u7"}
    else:
        assert (stored["u3"], stored["u4"]) == (at_2, at_4)
        assert set(stored) == {"u2", "u3", "u4", "u7"}


def test_csv_email_longer_in_lower_case_is_refused_alone(store: Store, tmp_path: Path) -> None:
    """An address is stored in lower case, and "İ" is two characters in lower case ("i̇"): 320 characters
    given, 630 stored. SQLite stored it, past the column's length; PostgreSQL refused the chunk, and the
    rows tried again one by one had lost the values the first try had read: row 2, a good one, was
    refused too ("no e-mail and no id")."""
    path = tmp_path / "leads.csv"
    write_csv(path, ["Email", "User ID"], [["ok1@x.example", "u1"], ["İ" * 310 + DOMAIN, "u2"],
                                           ["ok2@x.example", "u3"]])  # fmt: skip
    report = import_leads(store, path)
    assert [(p.line, p.field, p.message) for p in report.problems] == [
        (3, "Email", "is 320 characters long, 630 in lower case as it is stored; at most 320 are allowed")
    ]
    with store.connect() as conn:
        assert dict(conn.execute(select(leads.c.external_id, leads.c.email)).all()) == {
            "u1": "ok1@x.example",
            "u3": "ok2@x.example",
        }


def test_rows_tried_again_after_the_database_refused_their_chunk_are_read_whole(
    store: Store, tmp_path: Path
) -> None:
    """A row the database refuses (here a handler failing on row 3, as a value past a column fails on
    PostgreSQL) sends its chunk back row by row: each row is tried as read from the file, so the good
    ones are stored with all their values and only row 3 is refused, naming the database's reason."""
    path = tmp_path / "leads.csv"
    write_csv(path, HEADERS, [lead_row(2), lead_row(3), lead_row(4)])

    def refusing(conn: Connection, row: Any, now: int, report: ImportReport) -> str:
        outcome = csv_import._apply_lead(conn, row, now, report)
        if row.number == 3:
            conn.execute(text("SELECT no_such_column FROM leads"))
        return outcome

    report = csv_import._import(store, path, ImportOptions(), refusing, ("email",), None)
    assert [(p.line, p.message.startswith("cannot be stored: ")) for p in report.problems] == [(3, True)]
    with store.connect() as conn:
        stored = {tuple(r) for r in conn.execute(select(leads.c.external_id, leads.c.email, leads.c.company))}
    assert stored == {("u2", "r2@y.example", "C"), ("u4", "r4@y.example", "C")}


def test_csv_full_name_parts_fit_the_name_columns(store: Store, tmp_path: Path) -> None:
    """A full name (``Name``) fills first and last name: a part past its column's 255 characters refuses
    the row naming the column, as a message's full name is refused (``limits.check_traits``). Before, the
    parts were cut to 255 characters without a word."""
    path = tmp_path / "leads.csv"
    rows = [["a@x.example", "é" * 255 + " " + "😀" * 255], ["b@x.example", "é" * 256 + " L"],
            ["c@x.example", "F " + "😀" * 256], ["d@x.example", "Ann Lee"]]  # fmt: skip
    write_csv(path, ["Email", "Name"], rows)
    report = import_leads(store, path)
    assert [(p.line, p.field, p.message) for p in report.problems] == [
        (3, "Name", "gives a first name of 256 characters; at most 255 are allowed"),
        (4, "Name", "gives a last name of 256 characters; at most 255 are allowed"),
    ]
    with store.connect() as conn:
        stored = {r.email: (r.first_name, r.last_name) for r in conn.execute(select(leads))}
    assert stored == {"a@x.example": ("é" * 255, "😀" * 255), "d@x.example": ("Ann", "Lee")}


def test_csv_account_name_and_domain(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    long_domain = "d" * 250 + ".com"  # 254 characters: past a domain's 253
    rows = [["a.example", "A"], ["b.example", "é" * 500], ["c.example", "😀" * 501], ["d.example", "x\x00y"],
            [long_domain, "E"], ["f.example", "F"]]  # fmt: skip
    write_csv(path, ["Domain", "Company"], rows)
    report = import_accounts(store, path)
    assert [(p.line, p.field, p.message) for p in report.problems] == [
        (4, "Company", "longer than 500 characters (501); it cannot be stored"),
        (5, "Company", "contains a NUL character"),
        (6, "Domain", f"not a domain or website: {long_domain!r}"),
    ]
    with store.connect() as conn:
        stored = dict(conn.execute(select(accounts.c.domain, accounts.c.name)).all())
    assert stored == {"a.example": "A", "b.example": "é" * 500, "f.example": "F"}


def test_csv_outcomes_with_hostile_lead_columns(store: Store, tmp_path: Path) -> None:
    """A lead named by an e-mail with a NUL, or by a user id longer than any lead's, is no lead: its row
    is refused and the others recorded, on both stores (PostgreSQL refuses NUL even in a lookup)."""
    ingest(store, [normalise({"type": "identify", "userId": "ann", "messageId": "id-ann",
                              "traits": {"email": "ann@a.example"}}, received_ms=NOW)], source="test")  # fmt: skip
    path = tmp_path / "crm.csv"
    write_csv(path, ["Email", "User ID", "Outcome", "Date"], [
        ["ann@a.example", "", "won", "2024-05-02"],
        ["x\x00y@a.example", "", "won", "2024-05-02"],
        ["", "é" * 300, "won", "2024-05-02"],
        ["", "ann", "opportunity", "2024-05-01"],
    ])  # fmt: skip
    url = store.engine.url.render_as_string(hide_password=False)
    result = runner.invoke(app, ["outcomes", "import", str(path), "--db", url])
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "2 outcomes recorded" in result.output, result.output
    assert "crm.csv:3" in result.output and "crm.csv:4" in result.output, result.output
    with store.connect() as conn:
        assert sorted(conn.execute(select(outcomes.c.kind)).scalars()) == ["opportunity", "won"]


def at_the_limits() -> list[dict[str, Any]]:
    """One message of each type with every bounded field at its column's length, in multi-byte letters."""
    email = "é" * (320 - len(DOMAIN)) + DOMAIN
    return [
        {"type": "identify", "userId": "é" * 255, "anonymousId": "😀" * 255, "messageId": "é" * 300,
         "traits": {"email": email, "firstName": "é" * 255, "lastName": "😀" * 255, "company": "é" * 500}},
        {"type": "track", "userId": "é" * 255, "messageId": "😀" * 300, "event": "😀" * 500},
        {"type": "page", "anonymousId": "é" * 255, "messageId": "m-page", "name": "é" * 500,
         "properties": {"path": "/" + "é" * 499 + "p"}},
        {"type": "group", "userId": "é" * 255, "groupId": "😀" * 255, "messageId": "m-group",
         "traits": {"company": "😀" * 500}},
        {"type": "alias", "userId": "ü" * 255, "previousId": "é" * 255, "messageId": "m-alias"},
    ]  # fmt: skip


def test_segment_messages_at_the_limits_are_stored_whole(store: Store) -> None:
    messages = [normalise(raw, received_ms=NOW) for raw in at_the_limits()]
    report = ingest(store, messages, source="test")
    assert report.accepted == 5
    with store.connect() as conn:
        rows = {r.message_id: r for r in conn.execute(select(events))}
        lead = conn.execute(select(leads)).one()  # one person: the alias joins "é" * 255 to "ü" * 255
        account_names = set(conn.execute(select(accounts.c.name)).scalars())
    assert set(rows) == {"é" * 300, "😀" * 300, "m-page", "m-group", "m-alias"}
    assert rows["😀" * 300].name == "😀" * 500
    assert rows["m-page"].path == "/" + "é" * 499 + "p"
    assert (rows["m-group"].group_id, rows["m-alias"].previous_id) == ("😀" * 255, "é" * 255)
    assert (lead.external_id, lead.email) == ("ü" * 255, "é" * 310 + DOMAIN)
    assert (lead.first_name, lead.last_name, lead.company) == ("é" * 255, "😀" * 255, "é" * 500)
    assert "😀" * 500 in account_names


# Segment field → (message, the error's text), one character over in multi-byte letters, or a NUL
OVER: dict[str, tuple[dict[str, Any], str]] = {
    "userId": ({"type": "track", "userId": "é" * 256, "event": "E"},
               "userId is 256 characters long; at most 255 are allowed"),
    "anonymousId": ({"type": "track", "anonymousId": "😀" * 256, "event": "E"},
                    "anonymousId is 256 characters long; at most 255 are allowed"),
    "messageId": ({"type": "track", "userId": "u", "messageId": "é" * 301, "event": "E"},
                  "messageId is 301 characters long; at most 300 are allowed"),
    "event": ({"type": "track", "userId": "u", "event": "😀" * 501},
              "event is 501 characters long; at most 500 are allowed"),
    "groupId": ({"type": "group", "userId": "u", "groupId": "é" * 256},
                "groupId is 256 characters long; at most 255 are allowed"),
    "previousId": ({"type": "alias", "userId": "u", "previousId": "é" * 256},
                   "previousId is 256 characters long; at most 255 are allowed"),
    "name": ({"type": "page", "userId": "u", "name": "é" * 501},
             "name is 501 characters long; at most 500 are allowed"),
    "traits.email": ({"type": "identify", "userId": "u", "traits": {"email": "é" * 311 + DOMAIN}},
                     "traits.email is 321 characters long; at most 320 are allowed"),
    "traits.firstName": ({"type": "identify", "userId": "u", "traits": {"firstName": "😀" * 256}},
                         "traits.firstName is 256 characters long; at most 255 are allowed"),
    "traits.company": ({"type": "identify", "userId": "u", "traits": {"company": "é" * 501}},
                       "traits.company is 501 characters long; at most 500 are allowed"),
    "properties.path": ({"type": "page", "userId": "u", "properties": {"path": "/" + "é" * 500}},
                        "properties.path is 1,001 bytes long in UTF-8; a page path may have at most 1,000"),
    "anonymousId NUL": ({"type": "track", "anonymousId": "a\x00", "event": "E"},
                        "anonymousId has a NUL character (\\u0000)"),
    "traits.lastName NUL": ({"type": "identify", "userId": "u", "traits": {"lastName": "L\x00"}},
                            "traits.lastName has a NUL character (\\u0000)"),
}  # fmt: skip


@pytest.mark.parametrize("case", OVER)
def test_a_segment_value_over_its_column_is_refused_naming_it(case: str) -> None:
    raw, message = OVER[case]
    with pytest.raises(MessageError) as caught:
        normalise(raw, received_ms=NOW)
    assert (caught.value.problem.field, str(caught.value)) == (case.removesuffix(" NUL"), message)


def test_a_jsonl_file_refuses_each_over_long_line_alone(store: Store, tmp_path: Path) -> None:
    """``import events``: every message of ``OVER`` between two good ones, on both stores."""
    good = [{"type": "track", "userId": "g", "event": "E", "messageId": f"good-{i}"} for i in (1, 2)]
    lines = [good[0], *(raw for raw, _ in OVER.values()), good[1]]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    report = import_events(path, lambda messages: ingest(store, messages, source="import"), workers=0)
    assert [(p.line, p.field) for p in report.problems] == [
        (n, case.removesuffix(" NUL")) for n, case in enumerate(OVER, start=2)
    ]
    assert report.accepted == 2
    with store.connect() as conn:
        assert set(conn.execute(select(events.c.message_id)).scalars()) == {"good-1", "good-2"}


@pytest.mark.parametrize(
    ("event", "field"),
    [
        ({"event": "e", "distinct_id": "é" * 256, "uuid": "u1"}, "distinct_id"),
        ({"event": "😀" * 501, "distinct_id": "d", "uuid": "u1"}, "event"),
        ({"event": "$identify", "distinct_id": "d", "uuid": "u1", "properties": {"$set": {"email": "é" * 311 + DOMAIN}}},
         "properties.$set.email"),
        ({"event": "$groupidentify", "distinct_id": "d", "uuid": "u1",
          "properties": {"$group_type": "company", "$group_key": "é" * 256}}, "properties.$group_key"),
    ],
)  # fmt: skip
def test_a_posthog_value_over_its_column_is_refused_naming_the_field_sent(
    event: dict[str, Any], field: str
) -> None:
    with pytest.raises(MessageError) as caught:
        for raw in to_segment(event):
            normalise(raw, received_ms=NOW)
    assert as_sent(caught.value, event).problem.field == field


# U+FB2C (a Hebrew presentation form) is three characters in NFC, the form an event's or page's name is
# kept in (``model.text_case.normalise_text``): 200 of them, under the column's 500 as sent, are 600 kept
EXPANDS = "\ufb2c" * 200
LONGER_IN_NFC = {
    "event": {"type": "track", "userId": "u", "event": EXPANDS},
    "name": {"type": "page", "userId": "u", "name": EXPANDS},
    "properties.name": {"type": "screen", "userId": "u", "properties": {"name": EXPANDS}},
}


@pytest.mark.parametrize("field", LONGER_IN_NFC)
def test_a_name_over_its_column_in_nfc_is_refused_naming_it(field: str) -> None:
    """Its length is checked as it is kept, after normalisation (NFC lengthens a few letters)."""
    with pytest.raises(MessageError) as caught:
        normalise(LONGER_IN_NFC[field], received_ms=NOW)
    assert (caught.value.problem.field, str(caught.value)) == (
        field,
        f"{field} is 600 characters long; at most 500 are allowed",
    )


def test_a_jsonl_file_refuses_each_name_longer_in_nfc_alone(store: Store, tmp_path: Path) -> None:
    """On both stores: PostgreSQL refused the 600 characters in varchar(500), SQLite kept them."""
    good = [{"type": "track", "userId": "g", "event": "E", "messageId": f"good-{i}"} for i in (1, 2)]
    lines = [good[0], *LONGER_IN_NFC.values(), good[1]]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    report = import_events(path, lambda messages: ingest(store, messages, source="import"), workers=0)
    assert [(p.line, p.field) for p in report.problems] == [(2, "event"), (3, "name"), (4, "properties.name")]
    assert report.accepted == 2
    with store.connect() as conn:
        assert set(conn.execute(select(events.c.message_id)).scalars()) == {"good-1", "good-2"}
