"""``leadscore explain --as-of`` and ``leadscore score --as-of`` give the score a lead had then, as
``leadscore history`` records it:
the events up to then with the attributes known then (``scoring.as_known``), not today's.

Model: a VP is 40 fit points (the score half of that: 20), a page view one engagement point (the score
half of that: 0.5). The lead is an intern from T0, views pages at minutes 1 and 2, becomes a VP at minute
3 and views a page at minute 4. As of minute 2 she was an intern with two page views: fit 0, engagement
2, score 1.0, the one line ``visit`` worth 1.0 (the ``vp`` line gives nothing). Today's attributes would
make her a VP then: 21.0.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from typer.testing import CliRunner

from leadscore.cli.main import app as cli
from leadscore.ingest.segment import normalise
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from test_lead_journey import (  # the journey's model and page views: one as-known reading
    MINUTE,
    MODEL,
    T0,
    _page,
)


def _cli(store: Store, *args: str) -> Any:
    out = CliRunner().invoke(cli, [*args, "--format", "json", "--db", str(store.url)])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_explain_as_of_a_past_time_reads_the_attributes_known_then(store: Store) -> None:
    publish(store, MODEL, as_of=T0 - MINUTE)
    messages = [
        {"type": "identify", "userId": "u1", "messageId": "i1", "timestamp": T0, "traits": {"title": "Intern"}},
        _page(1, 1),
        _page(2, 2),
        {"type": "identify", "userId": "u1", "messageId": "i2", "timestamp": T0 + 3 * MINUTE,
         "traits": {"title": "VP Sales"}},
        _page(3, 4),
    ]  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0 + 10 * MINUTE) for m in messages], source="test")
    at = T0 + 2 * MINUTE
    iso = datetime.fromtimestamp(at / 1000, tz=UTC).isoformat()
    explained = _cli(store, "explain", "u1", "--as-of", iso)
    history = {r["at_ms"]: r["score"] for r in _cli(store, "history", "u1")}
    assert history[at] == 1.0
    assert (explained["score"], explained["fit_score"], explained["engagement_score"]) == (1.0, 0.0, 2.0)
    assert [(line["rule_id"], line["score_points"]) for line in explained["lines"]] == [("visit", 1.0)]
    # as of now she is a VP: 20 + 1.5
    now = _cli(store, "explain", "u1")
    assert (now["score"], now["fit_score"]) == (21.5, 40.0)
    # the list of scores as of that time says the same: 1.0, and "Visit +1.0" its one reason
    (listed,) = _cli(store, "score", "--as-of", iso)
    assert (listed["score"], listed["fit_score"], listed["top_reasons"]) == (1.0, 0.0, "Visit +1.0")
