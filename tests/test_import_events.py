"""JSONL imports of Segment messages: bad lines, idempotence, gzip, anonymous history stitched by identify.

tests/data/import/events.jsonl, line by line (expected values below are read off it by hand):
    1  page anon-7 /pricing (m-1)              6  identify u-42 + anon-7, Linda's traits (m-5)
    2  page anon-7 /pricing/enterprise (m-2)   7  page u-42 /blog/scoring, no messageId (derived id)
    3  blank                                   8  whitespace only
    4  invalid JSON (a quote ' at column 41)   9  track "Ebook Downloaded" u-42 (m-7)
    5  track without 'event' (m-4)            10  page anon-9 /pricing, never identified (m-8)
"""

from __future__ import annotations

import csv
import gzip
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from leadscore.cli.imports import app
from leadscore.errors import Problem
from leadscore.ingest.jsonl_import import EventImportReport, import_events, read_messages
from leadscore.ingest.segment import Message
from leadscore.model import load_model
from leadscore.scoring.pipeline import Backfill, IngestReport, ingest, publish
from leadscore.store import Store
from leadscore.store.schema import events, leads, scores

DATA = Path(__file__).parent / "data" / "import"
EVENTS = DATA / "events.jsonl"
runner = CliRunner()


def run_import(store: Store, path: Path = EVENTS, **options: Any) -> EventImportReport:
    def send(messages: Sequence[Message]) -> IngestReport:
        return ingest(store, messages, source="import")

    return import_events(path, send, **options)


def event_count(store: Store) -> int:
    with store.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def test_bad_lines_are_reported_and_good_lines_kept(store: Store) -> None:
    report = run_import(store)
    assert [(p.line, p.column) for p in report.problems] == [(4, 41), (5, None)]
    assert report.problems[0].message == "invalid JSON: unexpected character, expected a JSON value"
    assert report.problems[1].message == "a track message needs 'event'"
    assert (report.lines, report.accepted, report.duplicates, report.aborted) == (8, 6, 0, False)
    assert event_count(store) == 6
    with store.connect() as conn:
        sources = set(conn.execute(select(events.c.source)).scalars())
        path = conn.execute(select(events.c.path).where(events.c.message_id == "m-2")).scalar_one()
    assert sources == {"import"}
    assert path == "/pricing/enterprise"  # taken from the URL


def test_reimport_adds_nothing(store: Store) -> None:
    run_import(store)
    again = run_import(store)
    assert (again.accepted, again.duplicates, again.rejected) == (0, 6, 2)
    assert event_count(store) == 6  # line 7 has no messageId; its derived id is stable


@pytest.mark.parametrize("chunk_size", [5000, 1])
def test_anonymous_events_count_once_identify_stitches_them(store: Store, chunk_size: int) -> None:
    publish(store, load_model(DATA / "model.yaml"))
    report = run_import(store, chunk_size=chunk_size)
    assert report.leads_created == 1
    with store.connect() as conn:
        linda = conn.execute(select(leads).where(leads.c.external_id == "u-42")).mappings().one()
        row = conn.execute(select(scores).where(scores.c.lead_id == linda["id"])).mappings().one()
    assert (linda["email"], linda["first_name"]) == ("linda@nordtech.se", "Linda")
    assert linda["attributes"] == {"job_title": "Marketing Manager", "employees": 60}
    # fit: marketer 30 + mid_size 20 = 50; engagement: 2 anonymous pricing pages × 5 + e-book 20 = 30
    # (anon-9's pricing page belongs to nobody); score = ½·50 + ½·30 = 40
    assert (row["fit_score"], row["engagement_score"], row["score"]) == pytest.approx((50, 30, 40))
    assert (row["grade"], row["band"]) == ("B", "warm")


def test_gzip_file(store: Store, tmp_path: Path) -> None:
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(EVENTS.read_bytes()))
    report = run_import(store, packed)
    assert [(p.line, p.column) for p in report.problems] == [(4, 41), (5, None)]
    assert report.accepted == 6
    assert run_import(store, EVENTS).accepted == 0  # the same messages, whatever the packing


def test_truncated_gzip_keeps_the_lines_before(store: Store, tmp_path: Path) -> None:
    packed = gzip.compress(EVENTS.read_bytes())
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(packed[: len(packed) - 12])  # the trailer and the last bytes are gone
    report = run_import(store, broken)
    assert "corrupt or truncated" in report.problems[-1].message
    assert report.accepted >= 1


def test_undecodable_and_oversized_lines(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    good = b'{"type":"track","userId":"u-1","event":"Signed Up","messageId":"x-1"}\n'
    latin1 = '{"type":"track","userId":"u-1","event":"Café","messageId":"x-2"}\n'.encode("latin-1")
    huge = b'{"type":"track","userId":"u-1","event":"Big","properties":{"blob":"' + b"a" * 40_000 + b'"}}\n'
    path.write_bytes(good + latin1 + huge + good)
    report = run_import(store, path)
    assert [(p.line, p.column) for p in report.problems] == [(2, 44), (3, None)]  # "é" is byte 44
    assert "not UTF-8" in report.problems[0].message and "32 KiB" in report.problems[1].message
    assert (report.accepted, report.duplicates) == (1, 1)  # line 4 repeats line 1


def test_lines_read_from_their_bytes_as_from_their_text(tmp_path: Path) -> None:
    """A line that is valid UTF-8 JSON is decoded from its bytes; a byte order mark (allowed on line 1
    only), bad UTF-8 and blank lines still take the path through text, whose problems name them."""
    path = tmp_path / "bytes.jsonl"
    track = (
        '{"type":"track","userId":"u-1","event":"%s","messageId":"%s","timestamp":"2024-01-31T12:00:00.250Z"}'
    )
    path.write_bytes(
        b"\xef\xbb\xbf" + (track % ("Signed Up", "b-1")).encode() + b"\n"  # 1: BOM, allowed here
        + b" \t\n"  # 2: blank
        + (track % ("Café", "b-2")).encode("latin-1") + b"\n"  # 3: "é" in Latin-1 is byte 44
        + b"\xef\xbb\xbf" + (track % ("Late BOM", "b-3")).encode() + b"\n"  # 4: a BOM after line 1
        + (track % ("Démo", "b-4")).encode() + b"\n"  # 5: UTF-8 beyond ASCII
        + b'{"type":"track","userId":"u-1"}\n'  # 6: a message without its event
    )  # fmt: skip
    items = list(read_messages(path, received_ms=1_706_702_400_000))
    messages = [m for m in items if isinstance(m, Message)]
    problems = [(p.line, p.column, p.field, p.message) for p in items if isinstance(p, Problem)]
    assert [(m.message_id, m.name, m.ts) for m in messages] == [
        ("b-1", "Signed Up", 1_706_702_400_250),  # 2024-01-31T12:00:00.250Z
        ("b-4", "Démo", 1_706_702_400_250),
    ]
    assert problems == [
        (3, 44, None, "not UTF-8 text (byte 44)"),
        (4, 1, None, "invalid JSON: UTF-8 byte order mark (BOM) is not supported"),
        (6, None, "event", "a track message needs 'event'"),
    ]


@pytest.mark.parametrize("backfill", [False, True])
def test_a_message_id_repeated_within_and_across_chunks_is_stored_once(
    store: Store, tmp_path: Path, backfill: bool
) -> None:
    """The chunk's ids are looked up once (on SQLite, ``append_events(unknown=True)`` inserts what the
    lookup did not find): a repeat within a chunk, or of an earlier chunk's id, is a duplicate."""
    path = tmp_path / "repeats.jsonl"
    ids = ["d-1", "d-1", "d-2", "d-1", "d-3", "d-2", "d-3"]  # chunks of 2: [1 1] [2 1] [3 2] [3]
    path.write_text("".join(
        f'{{"type":"track","userId":"u-{n % 2}","event":"E","messageId":"{mid}",'
        f'"timestamp":"2024-01-31T12:00:0{n}Z"}}\n' for n, mid in enumerate(ids)
    ))  # fmt: skip
    filled = Backfill(store, source="import", cause_ref="test")
    report = import_events(path, filled.add if backfill else (lambda ms: ingest(store, ms, source="import")),
                           chunk_size=2)  # fmt: skip
    # d-1, d-2, d-3 stored (lines 1, 3, 5); lines 2 (same chunk), 4, 6, 7 (earlier chunks) repeat them
    assert (report.accepted, report.duplicates) == (3, 4)
    with store.connect() as conn:
        stored = conn.execute(select(events.c.message_id, events.c.ts).order_by(events.c.message_id)).all()
    assert [(mid, ts - 1_706_702_400_000) for mid, ts in stored] == [("d-1", 0), ("d-2", 2000), ("d-3", 4000)]


def test_max_errors_stops_and_keeps_earlier_lines(store: Store) -> None:
    report = run_import(store, max_errors=1)
    assert report.aborted and report.rejected == 1
    assert report.accepted == 2  # lines 1 and 2; reading stopped after the bad line 4
    assert event_count(store) == 2


def test_cli_events(store: Store, tmp_path: Path) -> None:
    url = store.engine.url.render_as_string(hide_password=False)
    errors = tmp_path / "errors.csv"
    result = runner.invoke(app, ["events", str(EVENTS), "--db", url, "--errors-out", str(errors)])
    assert result.exit_code == 1
    assert "invalid JSON: unexpected character, expected a JSON value" in result.output
    with errors.open(newline="", encoding="utf-8") as fh:
        assert [(r["line"], r["column"]) for r in csv.DictReader(fh)] == [("4", "41"), ("5", "")]
    again = runner.invoke(app, ["events", str(EVENTS), "--db", url])
    assert "already imported" in again.output
    assert event_count(store) == 6


def test_an_empty_timestamp_is_refused_with_its_line_not_stored_at_import_time(
    store: Store, tmp_path: Path
) -> None:
    path = tmp_path / "stamps.jsonl"
    path.write_text(
        '{"type":"track","userId":"u-1","event":"A","messageId":"t-1","timestamp":"2024-05-01T00:00:00Z"}\n'
        '{"type":"track","userId":"u-1","event":"B","messageId":"t-2","timestamp":""}\n'
        '{"type":"track","userId":"u-1","event":"C","messageId":"t-3","originalTimestamp":"  "}\n'
    )
    report = run_import(store, path)
    assert [(p.line, p.field) for p in report.problems] == [(2, "timestamp"), (3, "originalTimestamp")]
    assert "timestamp is empty" in report.problems[0].message
    with store.connect() as conn:
        assert conn.execute(select(func.max(events.c.ts))).scalar_one() == 1_714_521_600_000


def _parsed(path: Path, workers: int, **options: Any) -> tuple[list[tuple[Any, ...]], list[Message]]:
    sent: list[Message] = []

    def keep(messages: Sequence[Message]) -> IngestReport:
        sent.extend(messages)
        return IngestReport(accepted=len(messages))

    report = import_events(path, keep, workers=workers, chunk_size=3, **options)
    problems = [(p.line, p.column, p.message) for p in report.problems]
    return [(report.lines, report.accepted, report.aborted), *problems], sent


def _fields(m: Message) -> tuple[Any, ...]:
    return (m.message_id, m.type, m.user_id, m.anonymous_id, m.name, m.path, m.url, m.properties, m.traits)


def test_parsing_in_another_process_reports_and_sends_the_same(tmp_path: Path) -> None:
    """The same lines, problems (line, column, message) and messages, in file order, whether lines are
    parsed here or in a worker process: a plain file with bad lines, the file gzipped and truncated, and
    a stop after the first bad line."""
    packed = gzip.compress(EVENTS.read_bytes())
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(packed[: len(packed) - 12])
    for path, options in [(EVENTS, {}), (broken, {}), (EVENTS, {"max_errors": 1})]:
        (here, sent_here), (there, sent_there) = _parsed(path, 0, **options), _parsed(path, 1, **options)
        assert here == there
        # received_ms is each run's import time (and so is ts where a line gives no time)
        assert [_fields(m) for m in sent_here] == [_fields(m) for m in sent_there]
    summary, sent = _parsed(EVENTS, 1)
    assert summary == [
        (8, 6, False),
        (4, 41, "invalid JSON: unexpected character, expected a JSON value"),
        (5, None, "a track message needs 'event'"),
    ]
    assert [m.message_id for m in sent][:2] == ["m-1", "m-2"]
    assert _parsed(EVENTS, 1, max_errors=1)[0][0] == (3, 2, True)  # lines 1, 2 and the bad line 4


def test_chunks_are_sent_as_before_with_the_collector_paused_for_each(store: Store) -> None:
    """Chunks of two good messages (the file's six: lines 1, 2, 6, 7, 9, 10; the bad lines 4 and 5 go to
    the report), each handed over with the cyclic collector paused, which is on again after the import;
    a stop at the second bad line sends the first chunk only (lines 1, 2 and 4 read)."""
    import gc

    chunks: list[tuple[list[str], bool]] = []

    def keep(messages: Sequence[Message]) -> IngestReport:
        chunks.append(([m.message_id for m in messages], gc.isenabled()))
        return IngestReport(accepted=len(messages))

    assert gc.isenabled()
    report = import_events(EVENTS, keep, workers=0, chunk_size=2)
    assert [len(ids) for ids, _ in chunks] == [2, 2, 2]
    assert chunks[0][0] == ["m-1", "m-2"]
    assert chunks[1][0][0] == "m-5" and chunks[2][0] == ["m-7", "m-8"]  # line 7's id is derived
    assert [collecting for _, collecting in chunks] == [False, False, False]
    assert (report.lines, report.accepted, report.rejected, report.aborted) == (8, 6, 2, False)
    assert gc.isenabled()

    chunks.clear()
    report = import_events(EVENTS, keep, workers=0, chunk_size=2, max_errors=1)
    assert [ids for ids, _ in chunks] == [["m-1", "m-2"]]
    assert (report.lines, report.accepted, report.rejected, report.aborted) == (3, 2, 1, True)
    assert gc.isenabled()


def test_a_line_of_200_mb_in_a_small_gzip_file_is_refused_without_being_held(tmp_path: Path) -> None:
    """A 200 KB gzip file holding one 200 MB line (no newline) between two good lines: the line was read
    whole before its size was checked, so such a file (a gzip bomb, or a dump whose newlines were lost)
    took its size in memory, and a larger one exhausted it. The line is refused as over 32 KiB after
    reading at most a bounded piece of it at a time, and the line after it is read."""
    good = b'{"type":"track","userId":"u-1","event":"E","messageId":"%d"}\n'
    path = tmp_path / "bomb.jsonl.gz"
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(good % 1)
        for _ in range(200):
            out.write(b"a" * 1_000_000)
        out.write(b"\n" + good % 3)
    tracemalloc.start()
    try:
        items = list(read_messages(path, received_ms=0))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [i.line if isinstance(i, Problem) else i.message_id for i in items] == ["1", 2, "3"]
    assert isinstance(items[1], Problem) and "32 KiB" in items[1].message
    assert peak < 20_000_000, peak  # the line is 200,000,000 bytes
