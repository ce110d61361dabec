"""``ix_leads_withdrawn`` (migration 0032wd): the leads who withdrew tracking consent, read from a partial
index whose predicate ``lead_filter.Withdrawn`` writes to the letter, so that a list takes the few apart
without reading every lead's attributes. The index finds exactly the leads ``exportable`` refuses: a
``consent_tracking`` of JSON false, nothing else (a string "false", 0, null, true, absent or nested are
consent as far as exports go), on both stores; the engines use it; downgrading drops it."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, text

from leadscore.lifecycle.lead_filter import exportable, withdrawn_ids
from leadscore.store import Store
from leadscore.store.schema import leads
from migration_steps import migrate

# attributes → withdrew? (by hand: only the JSON value false is a withdrawal)
PEOPLE = [
    ({"consent_tracking": False}, True),
    ({"consent_tracking": True}, False),
    ({"consent_tracking": "false"}, False),
    ({"consent_tracking": 0}, False),
    ({"consent_tracking": None}, False),
    ({"consent_tracking": [False]}, False),
    ({"consent_tracking": {"x": False}}, False),
    ({"job_title": "CTO"}, False),
    ({}, False),
    ({"consent_tracking": False, "job_title": "VP"}, True),
]


def _fill(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(
            insert(leads),
            [
                {
                    "id": i,
                    "email": f"p{i}@x.example",
                    "attributes": a,
                    "attribute_ts": {},
                    "created_ms": 0,
                    "updated_ms": 0,
                }
                for i, (a, _) in enumerate(PEOPLE, start=1)
            ],
        )


def test_the_index_finds_exactly_who_exports_leave_out(store: Store) -> None:
    _fill(store)
    expected = [i for i, (_, withdrew) in enumerate(PEOPLE, start=1) if withdrew]
    assert expected == [1, 10]
    with store.connect() as conn:
        assert sorted(conn.execute(withdrawn_ids()).scalars()) == expected
        refused = select(leads.c.id).where(~exportable(leads.c.attributes)).order_by(leads.c.id)
        assert list(conn.execute(refused).scalars()) == expected


def test_each_engine_reads_the_withdrawn_from_the_index(store: Store) -> None:
    _fill(store)
    query = withdrawn_ids()
    with store.connect() as conn:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        if store.dialect == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}"))
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            plan = " ".join(str(r[0]) for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
    assert "ix_leads_withdrawn" in plan, plan


def _has_index(store: Store) -> bool:
    with store.connect() as conn:
        if store.dialect == "sqlite":
            found = "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'ix_leads_withdrawn'"
        else:
            # this test's schema only: other tests' stores beside it have theirs
            found = (
                "SELECT indexname FROM pg_indexes WHERE indexname = 'ix_leads_withdrawn' "
                "AND schemaname = current_schema()"
            )
        return conn.execute(text(found)).first() is not None


def test_downgrading_drops_the_index_and_upgrading_makes_it_again(store: Store) -> None:
    _fill(store)
    assert _has_index(store)
    migrate(store, "downgrade", "0031en")
    assert not _has_index(store)
    migrate(store, "upgrade", "heads")
    assert _has_index(store)
    with store.connect() as conn:
        assert sorted(conn.execute(withdrawn_ids()).scalars()) == [1, 10]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_query_writes_the_index_predicate_to_the_letter(dialect: str) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    from leadscore.store.schema import WITHDRAWN_SQL

    engine = {"sqlite": sqlite, "postgresql": postgresql}[dialect].dialect()
    sql = str(withdrawn_ids().compile(dialect=engine))
    assert WITHDRAWN_SQL[dialect].format(attributes="withdrawn_leads.attributes") in sql
    assert sql.rstrip().endswith(WITHDRAWN_SQL[dialect].format(attributes="withdrawn_leads.attributes"))
