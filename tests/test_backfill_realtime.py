"""A backfill (``import events``: chunks stored without scoring, one rescore and history pass at the end)
leaves the same scores, ledgers and history rows as the same file's messages fed through the real-time
path (``pipeline.ingest``, what the processor runs per batch), on SQLite and PostgreSQL.

The files are drawn by Hypothesis: identify (traits that move the fit), alias, group, page and track
messages about a few people, times out of order (ties included), resent messages (duplicate ids, within
a chunk and across chunks) and rejected lines between them. Both runs score "now" at the same frozen time,
and rows are compared by the people they belong to (lead ids may differ between the runs).

The real-time path gets the file in batches of the backfill's chunk size: which lead a key joins depends
on arrival order across batches (first link wins; within a batch, event-time order), so differently cut
batches may legitimately link differently (an alias naming u2 before u2's own earlier message arrives).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, example, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select

from leadscore.ingest.jsonl_import import import_events
from leadscore.model import loads_model
from leadscore.scoring import pipeline
from leadscore.scoring.pipeline import Backfill, ingest, publish
from leadscore.store import Store
from leadscore.store.ledger_lines import read_lines
from leadscore.store.schema import leads, score_history, scores
from pg_schema import PG_URL, pg_schema_store

T0 = 1_717_200_000_000
DAY = 86_400_000
NOW = T0 + 40 * DAY  # "now" of both runs (decay and windows read it)
USERS = ["u1", "u2", "u3"]
ANONS = ["a1", "a2", "a3", "a4"]
MODEL = """
model: backfill_realtime
fit:
  - {id: marketer, name: Marketing title, when: {attribute: job_title, regex: market}, points: 30}
  - {id: big, name: 50 or more employees, when: {attribute: employees, gte: 50}, points: 20}
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 10, half_life: 7d}
  - {id: demo, name: Demo requested, event: {type: track, name: Demo Requested}, points: 40, half_life: none}
  - {id: busy, name: Three clicks in a week, kind: threshold, event: {type: track, name: Clicked}, at_least: 3, within: 7d, points: 15}
scale: {fit_max: 50, engagement_max: 60, bands: {hot: 70, warm: 30}}
"""


@st.composite
def _line(draw: st.DrawFn, index: int) -> bytes:
    kind = draw(st.sampled_from(["identify", "alias", "group", "page", "page", "track", "track", "bad"]))
    if kind == "bad":  # rejected: not JSON, or a message without its type's required field
        return draw(
            st.sampled_from([b'{"type": "track", "messageId": "x"', b'{"type": "alias", "userId": "u1"}'])
        )
    # out of order, with ties: times in days and hours over six weeks
    message: dict[str, Any] = {
        "type": kind,
        "messageId": f"m{index:03d}",
        "timestamp": T0 + draw(st.integers(0, 40)) * DAY // 2 + draw(st.sampled_from([0, 3_600_000])),
    }
    user, anon = draw(st.none() | st.sampled_from(USERS)), draw(st.none() | st.sampled_from(ANONS))
    if kind == "alias":
        message |= {
            "userId": draw(st.sampled_from(USERS)),
            "previousId": draw(st.sampled_from(ANONS + USERS)),
        }
        return orjson.dumps(message)
    if user is None and anon is None:
        anon = draw(st.sampled_from(ANONS))
    message |= {"userId": user} if user else {}
    message |= {"anonymousId": anon} if anon else {}
    if kind == "identify":
        message["traits"] = {
            "job_title": draw(st.sampled_from(["Marketing Lead", "CTO"])),
            "employees": draw(st.sampled_from([10, 80])),
        }
    elif kind == "group":
        org = draw(st.sampled_from(["acme", "beta"]))
        message |= {"groupId": org, "traits": {"name": org, "website": f"https://{org}.example"}}
    elif kind == "page":
        message["properties"] = {"path": draw(st.sampled_from(["/pricing", "/blog"]))}
    else:
        message["event"] = draw(st.sampled_from(["Demo Requested", "Clicked", "Clicked"]))
    return orjson.dumps(message)


@st.composite
def _files(draw: st.DrawFn) -> list[bytes]:
    lines = [draw(_line(i)) for i in range(draw(st.integers(1, 24)))]
    for _ in range(draw(st.integers(0, 3))):  # resent copies, anywhere in the file
        good = [line for line in lines if not line.startswith(b'{"type": ')]
        if good:
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(good)))
    return lines


def _person(conn: Connection) -> dict[int, str]:
    return {
        r.id: f"{r.external_id}/{r.email}"
        for r in conn.execute(select(leads.c.id, leads.c.external_id, leads.c.email))
    }


def _results(store: Store) -> dict[str, Any]:
    """Scores, ledger lines and history rows, keyed by person instead of lead id."""
    with store.connect() as conn:
        who = _person(conn)
        skip = {"lead_id", "id", "recorded_ms", "scored_ms", "model_version_id"}

        def rows(table: Any) -> list[tuple[Any, ...]]:
            out = []
            found = read_lines(conn, None, every_score=True) if table is None else conn.execute(select(table))
            for r in found if table is None else found.mappings():
                values = tuple(
                    round(v, 9) if isinstance(v, float) else v for k, v in r.items() if k not in skip
                )
                out.append((who[r["lead_id"]], *values))
            return sorted(out, key=repr)

        return {"scores": rows(scores), "ledger": rows(None), "history": rows(score_history)}


def _backfill(store: Store, path: Path, chunk_size: int) -> tuple[Any, ...]:
    run = Backfill(store, source="import", cause_ref="import")
    report = import_events(path, run.add, chunk_size=chunk_size)
    run.finish()
    return report.lines, report.accepted, report.duplicates, [(p.line, p.column) for p in report.problems]


def _realtime(store: Store, path: Path, batch: int) -> tuple[Any, ...]:
    report = import_events(path, lambda messages: ingest(store, messages, source="import"), chunk_size=batch)
    return report.lines, report.accepted, report.duplicates, [(p.line, p.column) for p in report.problems]


def _pair(engine: str, tmp: Path) -> Iterator[tuple[Store, Store]]:
    if engine == "sqlite":
        one, two = Store.from_url(str(tmp / "a.db")), Store.from_url(str(tmp / "b.db"))
        try:
            yield one, two
        finally:
            one.dispose()
            two.dispose()
        return
    with pg_schema_store("bf") as one, pg_schema_store("rt") as two:
        yield one, two


PARSED = loads_model(MODEL, "model.yaml")
# a file a full run drew (its lines are whole messages, resent ones included), in chunks of 4: the last
# chunk's identify of u2 (m007, an hour after m002) moved job_title's stamp past m002's time, so from the
# earlier stamp (m000's) the history as known changed; the real-time path rewrote u2's rows only from
# m007's time on and missed the row at m002's (see test_history_reopens_from_the_stamp_an_identify_moves)
_SEEN = [
    ("m004", 1_717_290_000_000, "group", {"userId": "u1", "groupId": "acme", "traits": {"name": "acme"}}),
    ("m002", 1_717_588_800_000, "identify", {"anonymousId": "a4", "traits": {"job_title": "Marketing Lead", "employees": 10}}),
    ("m003", 1_717_200_000_000, "identify", {"userId": "u2", "traits": {"job_title": "CTO", "employees": 80}}),
    ("m002", 1_717_588_800_000, "identify", {"anonymousId": "a4", "traits": {"job_title": "Marketing Lead", "employees": 10}}),
    ("m001", 1_717_416_000_000, "identify", {"anonymousId": "a4", "traits": {"job_title": "CTO", "employees": 10}}),
    ("m006", 1_717_588_800_000, "alias", {"userId": "u2", "previousId": "a4"}),
    ("m000", 1_717_459_200_000, "identify", {"userId": "u2", "anonymousId": "a2", "traits": {"job_title": "CTO", "employees": 10}}),
    ("m005", 1_717_588_800_000, "track", {"anonymousId": "a2", "event": "Clicked"}),
    ("m007", 1_717_592_400_000, "identify", {"userId": "u2", "traits": {"job_title": "Marketing Lead", "employees": 80}}),
    ("m005", 1_717_588_800_000, "track", {"anonymousId": "a2", "event": "Clicked"}),
]  # fmt: skip
SEEN_FAILING = [
    orjson.dumps({"type": kind, "messageId": mid, "timestamp": ts, **rest}) for mid, ts, kind, rest in _SEEN
]


# drawn in CI (nineteenth session): an anonymous identify's traits reach the lead its browser joins later,
# and the lead's own identify of the same traits; history as known must read the identifies for both
SEEN_FAILING_2 = [
    b'{"type":"group","messageId":"m000","timestamp":1718107200000,"anonymousId":"a1","groupId":"acme","traits":{"name":"acme","website":"https://acme.example"}}',
    b'{"type":"track","messageId":"m001","timestamp":1718064000000,"userId":"u2","event":"Clicked"}',
    b'{"type":"track","messageId":"m002","timestamp":1717419600000,"anonymousId":"a4","event":"Clicked"}',
    b'{"type":"identify","messageId":"m006","timestamp":1717200000000,"anonymousId":"a4","traits":{"job_title":"CTO","employees":80}}',
    b'{"type":"page","messageId":"m003","timestamp":1718413200000,"anonymousId":"a3","properties":{"path":"/blog"}}',
    b'{"type": "alias", "userId": "u1"}',
    b'{"type":"group","messageId":"m005","timestamp":1717506000000,"anonymousId":"a4","groupId":"beta","traits":{"name":"beta","website":"https://beta.example"}}',
    b'{"type":"identify","messageId":"m006","timestamp":1717200000000,"anonymousId":"a4","traits":{"job_title":"CTO","employees":80}}',
    b'{"type":"track","messageId":"m007","timestamp":1718841600000,"userId":"u1","anonymousId":"a3","event":"Clicked"}',
    b'{"type":"page","messageId":"m008","timestamp":1718193600000,"anonymousId":"a2","properties":{"path":"/pricing"}}',
    b'{"type":"track","messageId":"m009","timestamp":1717549200000,"userId":"u3","anonymousId":"a4","event":"Demo Requested"}',
    b'{"type":"track","messageId":"m010","timestamp":1718845200000,"userId":"u3","event":"Demo Requested"}',
    b'{"type":"track","messageId":"m011","timestamp":1718409600000,"userId":"u3","anonymousId":"a2","event":"Clicked"}',
    b'{"type":"alias","messageId":"m012","timestamp":1718841600000,"userId":"u2","previousId":"u1"}',
    b'{"type":"alias","messageId":"m013","timestamp":1717765200000,"userId":"u1","previousId":"a2"}',
    b'{"type":"track","messageId":"m014","timestamp":1718928000000,"userId":"u2","event":"Clicked"}',
    b'{"type":"group","messageId":"m015","timestamp":1717290000000,"userId":"u2","groupId":"acme","traits":{"name":"acme","website":"https://acme.example"}}',
    b'{"type": "alias", "userId": "u1"}',
    b'{"type":"page","messageId":"m017","timestamp":1718629200000,"userId":"u2","properties":{"path":"/blog"}}',
    b'{"type":"track","messageId":"m011","timestamp":1718409600000,"userId":"u3","anonymousId":"a2","event":"Clicked"}',
    b'{"type": "track", "messageId": "x"',
    b'{"type":"identify","messageId":"m019","timestamp":1717333200000,"userId":"u3","traits":{"job_title":"CTO","employees":80}}',
    b'{"type": "alias", "userId": "u1"}',
]


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@settings(
    max_examples=20,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking two stores a step takes minutes
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(lines=_files(), chunk_size=st.sampled_from([1, 4, 5000]))
@example(lines=SEEN_FAILING, chunk_size=4)
@example(lines=SEEN_FAILING_2, chunk_size=1)
def test_a_backfill_leaves_what_the_real_time_path_leaves(
    engine: str,
    lines: list[bytes],
    chunk_size: int,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if engine == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    monkeypatch.setattr(pipeline, "now_ms", lambda: NOW)
    tmp = tmp_path_factory.mktemp("bf")
    path = tmp / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    note(f"chunk {chunk_size}:\n" + b"\n".join(lines).decode())
    pairs = _pair(engine, tmp)
    backfilled, realtime = next(pairs)
    try:
        for store in (backfilled, realtime):
            publish(store, PARSED, as_of=NOW)
        assert _backfill(backfilled, path, chunk_size) == _realtime(realtime, path, chunk_size)
        assert _results(backfilled) == _results(realtime)
    finally:
        pairs.close()


def test_the_comparison_sees_a_difference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The harness can fail: one page more in the real-time run shows in its scores and history."""
    monkeypatch.setattr(pipeline, "now_ms", lambda: NOW)
    page = {
        "type": "page",
        "userId": "u1",
        "messageId": "m1",
        "timestamp": T0,
        "properties": {"path": "/pricing"},
    }
    more = {**page, "messageId": "m2", "timestamp": T0 + DAY}
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    one.write_bytes(orjson.dumps(page) + b"\n")
    two.write_bytes(orjson.dumps(page) + b"\n" + orjson.dumps(more) + b"\n")
    pairs = _pair("sqlite", tmp_path)
    backfilled, realtime = next(pairs)
    try:
        for store in (backfilled, realtime):
            publish(store, PARSED, as_of=NOW)
        _backfill(backfilled, one, 5000)
        _realtime(realtime, two, 5000)
        left, right = _results(backfilled), _results(realtime)
        # one pricing page 40 days old (7-day half-life) against two, 40 and 39 days old
        assert left["scores"] != right["scores"] and len(right["history"]) == len(left["history"]) + 1
    finally:
        pairs.close()


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_history_reopens_from_the_stamp_an_identify_moves(
    engine: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """u2 is a CTO (minute 1); anonymous a4 says Marketing Lead (minute 2) and is aliased to u2 (minute
    3); u2's identify at minute 4 says CTO again. By the definition of attributes as known (docs/ingest.md,
    Score history), job_title's current value counts from minute 4 now, so at minute 2 the latest
    identify before it (a4's, linked) shows: Marketing Lead, 30 fit points of 50 (60 %), a score of 30
    (0.5 x 60) at minute 2, back to 0 at minute 4. A backfill recomputes it all; the real-time path,
    three batches, rewrote rows from minute 4 only and kept the 0 computed at minute 2 before it."""
    if engine == "postgres" and not PG_URL:
        pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
    monkeypatch.setattr(pipeline, "now_ms", lambda: NOW)
    minute = 60_000
    batches = [
        [{"type": "identify", "userId": "u2", "traits": {"job_title": "CTO"}}],
        [
            {"type": "identify", "anonymousId": "a4", "traits": {"job_title": "Marketing Lead"}},
            {"type": "alias", "userId": "u2", "previousId": "a4"},
        ],
        [{"type": "identify", "userId": "u2", "traits": {"job_title": "CTO"}}],
    ]
    lines, n = [], 0
    for batch in batches:
        for fields in batch:
            n += 1
            lines.append(orjson.dumps({"messageId": f"m{n}", "timestamp": T0 + n * minute, **fields}))
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    pairs = _pair(engine, tmp_path)
    backfilled, realtime = next(pairs)
    try:
        for store in (backfilled, realtime):
            publish(store, PARSED, as_of=NOW)
        _backfill(backfilled, path, 5000)
        for cut in ((0, 1), (1, 3), (3, 4)):  # the three batches, each one ingest
            part = tmp_path / f"part{cut[0]}.jsonl"
            part.write_bytes(b"\n".join(lines[cut[0] : cut[1]]) + b"\n")
            _realtime(realtime, part, 5000)
        for store in (backfilled, realtime):
            with store.connect() as conn:
                rows = conn.execute(
                    select(score_history.c.at_ms, score_history.c.score, score_history.c.cause_ref).order_by(
                        score_history.c.at_ms
                    )
                ).all()
            assert [(at - T0, score, ref) for at, score, ref in rows] == [
                (minute - 1, 0.0, "before any activity"),
                (2 * minute, 30.0, "m2"),
                (4 * minute, 0.0, "m4"),
            ]
    finally:
        pairs.close()
