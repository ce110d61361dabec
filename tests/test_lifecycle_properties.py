"""Property: re-scoring the same history (rescore, republish, re-sending the same events) never
repeats a notification or a stage move, whatever path the score took. One store per engine; each
example is a new lead."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadscore.ingest.segment import Message, normalise
from leadscore.lifecycle.runner import run_round
from leadscore.scoring.pipeline import ingest, publish, rescore_all
from leadscore.store import Store
from leadscore.store.lifecycle_tables import read_stage_history
from leadscore.store.outbox import read_outbox
from leadscore.store.people import find_lead
from lifecycle_model import DAY, T0, model, person, points
from lifecycle_model import settings as lc_settings

_users = itertools.count()
STEPS = st.lists(st.integers(min_value=-12, max_value=25).filter(bool), min_size=1, max_size=5)


def _messages(raws: list[dict[str, Any]]) -> list[Message]:
    return [normalise({**raw, "timestamp": "2024-05-01T01:00:00Z"}, received_ms=T0 + DAY) for raw in raws]


def _state(store: Store, lead_id: int) -> tuple[list[str], list[tuple[str, int]]]:
    with store.connect() as conn:
        keys = [o["key"] for o in read_outbox(conn, lead_id)]
        moves = [(h["to_stage"], h["at_ms"]) for h in read_stage_history(conn, lead_id)]
    return keys, moves


@given(steps=STEPS)
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_rescoring_never_repeats_a_notification(store: Store, steps: list[int]) -> None:
    publish(store, model())  # the same model again reuses its version
    cfg, user = lc_settings(), f"p{next(_users)}"
    sent = [_messages([person(user)])]
    ingest(store, sent[0], source="test")
    for i, delta in enumerate(steps):
        sent.append(_messages(points(user, delta)))
        ingest(store, sent[-1], source="test")
        run_round(store, cfg, now_ms=T0 + DAY + i, deliver=False, timers=False)
    with store.connect() as conn:
        lead_id = find_lead(conn, external_id=user)
    assert lead_id is not None
    keys, moves = _state(store, lead_id)
    assert len(keys) == len(set(keys))
    assert sum(k.startswith("manager_alert") for k in keys) == sum(s == "mql" for s, _ in moves)
    rescore_all(store)
    publish(store, model())
    for batch in sent:
        ingest(store, batch, source="test")
    run_round(store, cfg, now_ms=T0 + 2 * DAY, deliver=False, timers=False)
    assert _state(store, lead_id) == (keys, moves)
