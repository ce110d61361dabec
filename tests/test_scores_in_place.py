"""The current scores as ``save_current_scores`` writes them: on SQLite in place (a lead's first row
inserted, a stored row updated only in the columns whose values changed, ``scored_ms`` always), on
PostgreSQL deleted and inserted; the same rows on both, and the states before returned for the
crossings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from leadscore.compile import Ledger, LedgerLine
from leadscore.store import Store
from leadscore.store.ledger_lines import read_lines
from leadscore.store.model_versions import add_version
from leadscore.store.results import NamedResults, save_current_scores
from leadscore.store.schema import leads, scores

YAML = "model: tiny\n"


def _ledger(lead_id: int, as_of: int, score: float, band: str = "cold", fit: float = 0.0) -> Ledger:
    line = LedgerLine("seen", "seen", "engagement", "each", score_points=score, value=score, matched=1)
    return Ledger(lead_id, as_of, score, fit, score, fit, score, "D", 4, band, (line,))


def _rows(conn: Connection) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            select(scores.c.lead_id, scores.c.score_name, scores.c.score, scores.c.fit_score, scores.c.band,
                   scores.c.as_of_ms, scores.c.scored_ms, scores.c.due_ms).order_by(scores.c.lead_id, scores.c.score_name)
        )
    ]  # fmt: skip


def test_rows_updated_in_place(store: Store) -> None:
    with store.begin() as conn:
        conn.execute(leads.insert(), [{"attributes": {}, "created_ms": 1, "updated_ms": 1}] * 3)
        ids = sorted(conn.execute(select(leads.c.id)).scalars())
        v = add_version(conn, "tiny", YAML, 1)[0].id
        w = add_version(conn, "tiny", YAML, 1, score_name="other")[0].id
        first = [_ledger(ids[0], 100, 5.0), _ledger(ids[1], 100, 0.0)]
        assert save_current_scores(conn, [NamedResults("primary", v, first, {ids[0]: 900})], 1000) == {}
        assert _rows(conn) == [(ids[0], "primary", 5.0, 0.0, "cold", 100, 1000, 900),
                               (ids[1], "primary", 0.0, 0.0, "cold", 100, 1000, None)]  # fmt: skip
        # lead 0 unchanged (only scored_ms moves), lead 1 warmer and due, lead 2 new; a second score
        second = [_ledger(ids[0], 100, 5.0), _ledger(ids[1], 200, 40.0, "warm"), _ledger(ids[2], 200, 1.5)]
        other = [_ledger(ids[0], 200, 2.0), _ledger(ids[1], 200, 3.0), _ledger(ids[2], 200, 4.0)]
        before = save_current_scores(
            conn,
            [NamedResults("primary", v, second, {ids[0]: 900, ids[1]: 950}), NamedResults("other", w, other)],
            2000,
        )
        assert {k: (s["band"], s["score"], s["level"]) for k, s in before.items()} == {
            (ids[0], "primary"): ("cold", 5.0, 4),
            (ids[1], "primary"): ("cold", 0.0, 4),
        }
        assert _rows(conn) == [
            (ids[0], "other", 2.0, 0.0, "cold", 200, 2000, None),
            (ids[0], "primary", 5.0, 0.0, "cold", 100, 2000, 900),
            (ids[1], "other", 3.0, 0.0, "cold", 200, 2000, None),
            (ids[1], "primary", 40.0, 0.0, "warm", 200, 2000, 950),
            (ids[2], "other", 4.0, 0.0, "cold", 200, 2000, None),
            (ids[2], "primary", 1.5, 0.0, "cold", 200, 2000, None),
        ]
        points = [
            (line["lead_id"], line["score_name"], line["score_points"])
            for line in read_lines(conn, None, every_score=True)
        ]
        assert points == [
            (ids[0], "other", 2.0), (ids[0], "primary", 5.0), (ids[1], "other", 3.0),
            (ids[1], "primary", 40.0), (ids[2], "other", 4.0), (ids[2], "primary", 1.5),
        ]  # fmt: skip


def test_a_zero_changes_by_its_sign(store: Store) -> None:
    """``-0.0 == 0.0``, but the stored zero takes the new one's sign, as a delete and insert gives it
    (PostgreSQL keeps the sign of a double; SQLite reads either back as 0.0)."""
    with store.begin() as conn:
        conn.execute(leads.insert(), [{"attributes": {}, "created_ms": 1, "updated_ms": 1}])
        lead = conn.execute(select(leads.c.id)).scalar_one()
        v = add_version(conn, "tiny", YAML, 1)[0].id
        save_current_scores(conn, [NamedResults("primary", v, [_ledger(lead, 100, 1.0, fit=0.0)])], 1000)
        save_current_scores(conn, [NamedResults("primary", v, [_ledger(lead, 100, 1.0, fit=-0.0)])], 2000)
        fit = conn.execute(select(scores.c.fit_score)).scalar_one()
        expected = "-0x0.0p+0" if conn.dialect.name == "postgresql" else "0x0.0p+0"
        assert float(fit).hex() == expected


# every column of a scores row, as the test below writes and reads them
_ALL = ("lead_id", "score_name", "model_version_id", "as_of_ms", "score", "fit_score", "engagement_score",
        "grade", "level", "band", "scored_ms", "due_ms")  # fmt: skip


def _full(
    lead_id: int, as_of: int, score: float, fit: float, engagement: float, cell: tuple[str, int, str]
) -> Ledger:
    line = LedgerLine("seen", "seen", "engagement", "each", score_points=score, value=score, matched=1)
    return Ledger(lead_id, as_of, score, fit, engagement, fit, engagement, *cell, (line,))


def test_every_column_follows_each_save(store: Store, monkeypatch: Any) -> None:
    """Each column alone changes (the version, the time, each number, the grade and level without the band,
    the due time from none to a time and back), two scores of the same leads, over chunks of two leads: the
    stored rows are the ones last saved, every column of them."""
    import leadscore.store.results as results

    monkeypatch.setattr(results, "CHUNK", 2)
    cold, c3, hot = ("D", 4, "cold"), ("C", 3, "cold"), ("A", 1, "hot")
    with store.begin() as conn:
        conn.execute(leads.insert(), [{"attributes": {}, "created_ms": 1, "updated_ms": 1}] * 3)
        a, b, c = sorted(conn.execute(select(leads.c.id)).scalars())
        v1 = add_version(conn, "m", "model: one\n", 1)[0].id
        v2 = add_version(conn, "m", "model: two\n", 1)[0].id
        w = add_version(conn, "n", "model: other\n", 1, score_name="other")[0].id

        def save(
            version: int, primary: list[Ledger], due: dict[int, int | None], other: list[Ledger], at: int
        ) -> None:
            save_current_scores(
                conn, [NamedResults("primary", version, primary, due), NamedResults("other", w, other)], at
            )

        def stored() -> list[tuple[Any, ...]]:
            query = select(*(scores.c[k] for k in _ALL)).order_by(scores.c.lead_id, scores.c.score_name)
            return [tuple(r) for r in conn.execute(query)]

        same = [_full(x, 100, 1.0, 2.0, 3.0, cold) for x in (a, b, c)]
        save(v1, same, {a: 5}, same, 1000)
        assert stored() == [
            (a, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 1000, None),
            (a, "primary", v1, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 1000, 5),
            (b, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 1000, None),
            (b, "primary", v1, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 1000, None),
            (c, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 1000, None),
            (c, "primary", v1, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 1000, None),
        ]
        # a: only the stamp moves; b: the fit alone, due from none to 6; c: the engagement, grade and level
        # but not the band; the other score: a hotter
        primary = [same[0], _full(b, 100, 1.0, 2.5, 3.0, cold), _full(c, 100, 1.0, 2.0, 3.5, c3)]
        save(v1, primary, {a: 5, b: 6}, [_full(a, 100, 9.0, 2.0, 3.0, hot), same[1], same[2]], 2000)
        assert stored() == [
            (a, "other", w, 100, 9.0, 2.0, 3.0, "A", 1, "hot", 2000, None),
            (a, "primary", v1, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 2000, 5),
            (b, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 2000, None),
            (b, "primary", v1, 100, 1.0, 2.5, 3.0, "D", 4, "cold", 2000, 6),
            (c, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 2000, None),
            (c, "primary", v1, 100, 1.0, 2.0, 3.5, "C", 3, "cold", 2000, None),
        ]
        # a new version: the version and the time of every lead, a's due time moves, b's goes back to none
        later = [_full(x, 200, 1.0, 2.0, 3.0, cold) for x in (a, b, c)]
        save(v2, later, {a: 7}, [_full(a, 100, 9.0, 2.0, 3.0, hot), same[1], same[2]], 3000)
        assert [(r[0], r[1], r[2], r[3], r[10], r[11]) for r in stored()] == [
            (a, "other", w, 100, 3000, None), (a, "primary", v2, 200, 3000, 7),
            (b, "other", w, 100, 3000, None), (b, "primary", v2, 200, 3000, None),
            (c, "other", w, 100, 3000, None), (c, "primary", v2, 200, 3000, None),
        ]  # fmt: skip
        # the version alone (a rollback to the same numbers)
        save(v1, later, {a: 7}, [_full(a, 100, 9.0, 2.0, 3.0, hot), same[1], same[2]], 4000)
        assert stored() == [
            (a, "other", w, 100, 9.0, 2.0, 3.0, "A", 1, "hot", 4000, None),
            (a, "primary", v1, 200, 1.0, 2.0, 3.0, "D", 4, "cold", 4000, 7),
            (b, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 4000, None),
            (b, "primary", v1, 200, 1.0, 2.0, 3.0, "D", 4, "cold", 4000, None),
            (c, "other", w, 100, 1.0, 2.0, 3.0, "D", 4, "cold", 4000, None),
            (c, "primary", v1, 200, 1.0, 2.0, 3.0, "D", 4, "cold", 4000, None),
        ]


def test_ledger_rows_follow_each_save(store: Store) -> None:
    """A lead's score's ledger row holds the lines last saved: replaced when they change, removed when the
    score has no lines any more (a score without lines has no row), kept for the other score of the same
    lead, and added for a score that gains lines (SQLite writes them in place, PostgreSQL deletes and
    inserts: the same rows)."""

    def lined(lead_id: int, *points: float) -> Ledger:
        lines = tuple(
            LedgerLine(f"r{i}", f"r{i}", "engagement", "each", score_points=p, value=p, matched=1)
            for i, p in enumerate(points)
        )
        return Ledger(lead_id, 100, sum(points), 0.0, 0.0, 0.0, 0.0, "D", 4, "cold", lines)

    def stored(conn: Connection) -> list[tuple[Any, ...]]:
        return [
            (line["lead_id"], line["score_name"], line["rule_id"], line["score_points"])
            for line in read_lines(conn, None, every_score=True)
        ]

    with store.begin() as conn:
        conn.execute(leads.insert(), [{"attributes": {}, "created_ms": 1, "updated_ms": 1}] * 2)
        a, b = sorted(conn.execute(select(leads.c.id)).scalars())
        v = add_version(conn, "tiny", YAML, 1)[0].id
        w = add_version(conn, "tiny", YAML, 1, score_name="other")[0].id

        def save(primary: list[Ledger], other: list[Ledger], at: int) -> None:
            save_current_scores(
                conn, [NamedResults("primary", v, primary), NamedResults("other", w, other)], at
            )

        save([lined(a, 1.0, 2.0), lined(b)], [lined(a, 3.0), lined(b, 4.0)], 1000)
        assert stored(conn) == [
            (a, "other", "r0", 3.0), (a, "primary", "r0", 1.0), (a, "primary", "r1", 2.0), (b, "other", "r0", 4.0),
        ]  # fmt: skip
        # a's primary down to one line, a's other without lines, b's primary gains a line, b's other the same
        save([lined(a, 5.0), lined(b, 6.0)], [lined(a), lined(b, 4.0)], 2000)
        assert stored(conn) == [
            (a, "primary", "r0", 5.0), (b, "other", "r0", 4.0), (b, "primary", "r0", 6.0),
        ]  # fmt: skip
