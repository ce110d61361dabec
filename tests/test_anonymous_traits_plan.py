"""What an anonymous person said about itself (its identifies) is read, when its id is linked to a lead,
through the person's (person_key, ts) index on both stores (``event_log.identifies_of_keys``), never
through the (type, ts, path) index: that walks every identify of every person, a search that grows with
the whole log, once per batch that links an anonymous id."""

from __future__ import annotations

from sqlalchemy import text

from leadscore.store import Store
from leadscore.store.event_log import _IDENTIFIES_OF_KEYS, append_events, identifies_of_keys


def _row(i: int, person: str, kind: str, context: dict[str, object]) -> dict[str, object]:
    return {"message_id": f"m{i}", "type": kind, "name": None, "person_key": person, "user_id": None,
            "anonymous_id": person[2:], "group_id": None, "previous_id": None, "path": "/p", "url": None,
            "properties": {}, "context": context, "ts": 1_000 + i, "received_ms": 1_000 + i,
            "source": "test"}  # fmt: skip


def test_identifies_of_keys_search_by_person(store: Store) -> None:
    # 400 people with 5 page views each, and identifies rare: 4 in all
    rows = [_row(i, f"a:p{i % 400}", "page", {}) for i in range(2000)]
    rows += [_row(2000 + i, f"a:p{i}", "identify", {"traits": {"plan": f"x{i}"}}) for i in range(4)]
    with store.begin() as conn:
        append_events(conn, rows)
        conn.execute(text("ANALYZE"))
    with store.connect() as conn:
        found = identifies_of_keys(conn, ["a:p1", "a:p3", "a:p9"])
        assert [(r.person_key, r.message_id, r.context) for r in found] == [
            ("a:p1", "m2001", {"traits": {"plan": "x1"}}),
            ("a:p3", "m2003", {"traits": {"plan": "x3"}}),
        ]
        statement = str(_IDENTIFIES_OF_KEYS.compile(conn))
        if conn.dialect.name == "sqlite":
            plan = " ".join(
                r[-1] for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", ('["a:p1"]',))
            )
        else:
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", {"keys": ["a:p1"]}))
    assert "ix_events_person_ts" in plan, plan
    assert "ix_events_type_ts_path" not in plan, plan
