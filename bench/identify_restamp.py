"""Real-time ingest of an identify-heavy stream: every lead identifies again (same traits) every fifth
event, as Segment clients do on each session. Since an identify that observes an attribute again reopens
the lead's history from the attribute's previous observation (``ingest.traits.restamped_since``), each such
batch replays the lead's points since its previous identify; this times ``pipeline.ingest`` over the
whole stream (SQLite, a fresh file) to show what that costs, and counts the history points scored and
the rows written (the work the reopening adds, whatever the machine's load) and the rows kept.

    PYTHONPATH=src python bench/identify_restamp.py [--leads 300] [--events 40] [--batch 100]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from leadscore.ingest.segment import normalise
from leadscore.model import loads_model
from leadscore.scoring import history
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.store.schema import score_history

T0 = 1_717_200_000_000
MINUTE = 60_000
MODEL = """
model: identify-restamp
fit:
  - {id: marketer, name: Marketing title, when: {attribute: job_title, regex: market}, points: 30}
  - {id: big, name: 50 or more employees, when: {attribute: employees, gte: 50}, points: 20}
engagement:
  - {id: pricing, name: Pricing page, event: {type: page}, where: {property: path, prefix: /pricing}, points: 10, half_life: 7d}
  - {id: busy, name: Three clicks in a week, kind: threshold, event: {type: track, name: Clicked}, at_least: 3, within: 7d, points: 15}
scale: {fit_max: 50, engagement_max: 60, bands: {hot: 70, warm: 30}}
"""


def stream(leads: int, events: int) -> list:
    out = []
    for n in range(events):  # in time order: event n of every lead, then n + 1
        for lead in range(leads):
            at = T0 + (n * leads + lead) * MINUTE
            base = {"messageId": f"m{lead}-{n}", "timestamp": at, "userId": f"u{lead}"}
            if n % 5 == 0:
                base |= {"type": "identify", "traits": {"job_title": "Marketing Lead", "employees": 80}}
            elif n % 2:
                base |= {"type": "page", "properties": {"path": "/pricing"}}
            else:
                base |= {"type": "track", "event": "Clicked"}
            out.append(normalise(base, received_ms=at))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=300)
    parser.add_argument("--events", type=int, default=40)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    messages = stream(args.leads, args.events)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.from_url(str(Path(tmp) / "bench.db"))
        publish(store, loads_model(MODEL), as_of=T0)
        points = [0]
        scored = history.score_as_known_models

        def counted(conn, models, sources, at):  # type: ignore[no-untyped-def]
            points[0] += len(at)
            return scored(conn, models, sources, at)

        history.score_as_known_models = counted  # type: ignore[assignment]
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF).ru_utime, time.perf_counter()
        rows = 0
        for start in range(0, len(messages), args.batch):
            part = messages[start : start + args.batch]
            rows += ingest(store, part, source="bench", as_of=part[-1].ts).history_rows
        wall, cpu = time.perf_counter() - wall0, resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu0
        with store.connect() as conn:
            kept = conn.execute(select(func.count()).select_from(score_history)).scalar()
        store.dispose()
    print(
        f"{len(messages)} messages in batches of {args.batch}: {wall:.2f} s wall, {cpu:.2f} s user CPU, "
        f"{points[0]} history points scored, {rows} history rows written, {kept} kept"
    )


if __name__ == "__main__":
    main()
