"""md5 of every stored result after a scenario on the bench data (the clock frozen), to compare two
versions of the code (issue #20, the ledger a row per lead and score): scores, the ledger lines as the
readers return them (``read_lines`` where it exists, else the row-per-line table's rows by lead, score
and rule id), history, crossings, ``read_current`` of a sample of leads of every score (on PostgreSQL
the lines by rule id: the row-per-line table gave them in its heap's order), the reasons and the gate
facts' rule points; after publishing the three realistic models, rescorings at the bench's ``as_of``, an
hour and a day later (two scores active), EVENTS processor events, a rescoring "now" and the second
model published in shadow beside the primary score (its shadow scores' digest).

    PYTHONPATH=<src> python bench/ledger_md5.py sqlite|postgres LEADS EVENTS

Run it with each version's ``src`` and compare the printed digests.
"""

from __future__ import annotations

import hashlib
import random
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, select, text

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
from multi_scores import _message, _others_active, score_models  # noqa: E402
from rescore import PG_URL, bench_store  # noqa: E402

import leadscore  # noqa: E402
from leadscore.ingest.apply import event_row  # noqa: E402
from leadscore.ingest.segment import normalise  # noqa: E402
from leadscore.lifecycle.gates import read_facts  # noqa: E402
from leadscore.lifecycle.reasons import top_reasons_of  # noqa: E402
from leadscore.scoring.pipeline import publish, rescore_all  # noqa: E402
from leadscore.scoring.processor import BATCH, SQLITE_BATCH, process_pending  # noqa: E402
from leadscore.scoring.shadow import publish_shadow  # noqa: E402
from leadscore.store import Store  # noqa: E402
from leadscore.store.event_log import enqueue  # noqa: E402
from leadscore.store.results import read_current  # noqa: E402
from leadscore.store.schema import leads, score_events, score_history, scores, shadow_scores  # noqa: E402

FROZEN = 1_780_000_000.0
OLD_LINES = (
    "SELECT lead_id, score_name, rule_id, section, kind, rule_group, matched, raw, value, decay, score_points, "
    "note FROM ledger"
)


def _enc(v: Any) -> str:
    return "f" + v.hex() if isinstance(v, float) else type(v).__name__ + ":" + repr(v)


def digest(rows: Iterable[Sequence[Any]]) -> str:
    h = hashlib.md5()
    for r in rows:
        h.update(("|".join(_enc(v) for v in r) + "\n").encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def lines_of(conn: Connection) -> list[tuple[Any, ...]]:
    try:
        from leadscore.store.ledger_lines import read_lines
    except ImportError:  # the row-per-line table
        rows = conn.execute(text(OLD_LINES)).all()
        return sorted((tuple(r) for r in rows), key=lambda r: (r[0], r[1], r[2]))
    return [tuple(d.values()) for d in read_lines(conn, None, every_score=True)]


def report(store: Store, engine: str, label: str) -> None:
    with store.connect() as conn:
        out = {"scores": digest(sorted(tuple(r) for r in conn.execute(select(scores)).all()))}
        lines = lines_of(conn)
        out["ledger_lines"] = digest(lines)
        out["history"] = digest(conn.execute(select(score_history).order_by(score_history.c.id)).all())
        out["crossings"] = digest(conn.execute(select(score_events).order_by(score_events.c.id)).all())
        ids = sorted(conn.execute(select(leads.c.id)).scalars())
        names = sorted(set(conn.execute(select(scores.c.score_name)).scalars()))
        current = []
        for name in names:
            for lid in ids[:: max(1, len(ids) // 300)]:
                row, found = read_current(conn, lid, name)
                keyed = [tuple(d.values()) for d in found]
                if engine == "postgres":
                    keyed.sort(key=lambda r: r[2])
                current.append((name, lid, tuple(sorted(row.items())) if row else None, tuple(keyed)))
        out["read_current"] = digest(current)
        reasons = []
        for name in names:
            got = top_reasons_of(conn, {}, ids, score_name=name)
            reasons.extend((name, lid, tuple(tuple(sorted(r.items())) for r in got[lid])) for lid in ids)
        out["reasons"] = digest(reasons)
        facts = read_facts(conn, [{"lead_id": i, "entered_ms": 0} for i in ids])
        out["gate_points"] = digest(
            (lid, n, tuple(sorted(f.rule_points.items())), f.score)
            for lid, fact in sorted(facts.items())
            for n, f in sorted(fact.named.items())
        )
    print(f"{label}: {len(lines)} lines; " + " ".join(f"{k}={v[:10]}" for k, v in out.items()), flush=True)


def main() -> None:
    engine, n_leads, n_events = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print("code:", leadscore.__file__, file=sys.stderr)
    time.time = lambda: FROZEN  # the clock frozen: the processor and "now" score at the same time
    spec = datagen.Spec(leads=n_leads, events=n_leads * 20)
    named = score_models("realistic")
    with bench_store(engine, PG_URL) as store:
        datagen.load(store, spec)
        publish(store, named[0][1], as_of=spec.as_of)
        for name, model in named[1:]:
            publish(store, model, as_of=spec.as_of, score_name=name)
        report(store, engine, "published")
        rescore_all(store, as_of=spec.as_of)
        rescore_all(store, as_of=spec.as_of + 3_600_000)
        report(store, engine, "rescored +1h")
        _others_active(store, ["partners"], False)
        rescore_all(store, as_of=spec.as_of + 86_400_000)
        _others_active(store, ["partners"], True)
        report(store, engine, "rescored +1d, two scores")
        rnd = random.Random(7)
        now = int(FROZEN * 1000)
        rows = [
            event_row(normalise(_message("realistic", i, rnd), received_ms=now), "api")
            for i in range(n_events)
        ]
        with store.begin() as conn:
            enqueue(conn, rows)
        scored = 0
        while taken := process_pending(store, limit=BATCH if engine == "postgres" else SQLITE_BATCH):
            scored += taken
        print(f"{engine}: the processor drained {scored} of {n_events} events")
        report(store, engine, "processor")
        rescore_all(store)
        report(store, engine, "rescored now")
        publish_shadow(store, named[1][1])
        with store.connect() as conn:
            rows = conn.execute(select(shadow_scores).order_by(shadow_scores.c.lead_id)).all()
        print(f"{engine} shadow: {len(rows)} scores; shadow_scores={digest(rows)[:10]}", flush=True)


if __name__ == "__main__":
    main()
