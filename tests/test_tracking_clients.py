"""The official server libraries, unchanged and with their own defaults, pointed at leadscore:
segment-analytics-python (plain and ``gzip=True``) and rudder-sdk-python (which gzips every batch by
default). An anonymous visitor's page views, her identify and a track call arrive in batches; every
event is stored, her anonymous history is stitched to her lead, and the lead is scored. A batch that
leadscore refuses reaches the library's ``on_error`` as its own ``APIError`` with ``code`` and
``message`` (not a ``KeyError`` taken for a network failure and retried)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from leadscore.store import Store
from leadscore.store.event_log import stored_message_ids, waiting_events
from leadscore.store.results import read_crossings, read_current
from leadscore.store.schema import identities, leads
from live_server import tracking
from test_api_tracking import MODEL, wait_until

segment = pytest.importorskip("segment.analytics.client", reason="segment-analytics-python is not installed")
rudder = pytest.importorskip("rudderstack.analytics.client", reason="rudder-sdk-python is not installed")
segment_request = pytest.importorskip("segment.analytics.request")
rudder_request = pytest.importorskip("rudderstack.analytics.request")

# name → a client for (write key, host, on_error); each library's defaults except where named
CLIENTS: dict[str, Callable[[str, str, Callable[..., None]], Any]] = {
    "segment": lambda key, host, on_error: segment.Client(write_key=key, host=host, on_error=on_error),
    "segment gzip": lambda key, host, on_error: segment.Client(
        write_key=key, host=host, on_error=on_error, gzip=True
    ),
    "rudderstack defaults (gzip)": lambda key, host, on_error: rudder.Client(
        write_key=key, host=host, on_error=on_error
    ),
}
PAGES = 257  # page views before she identifies herself: the first is the pricing page


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with tracking(store, MODEL, "server") as (url, write):
        yield url, write, store


def _lead(store: Store, email: str) -> int | None:
    with store.connect() as conn:
        return conn.execute(select(leads.c.id).where(leads.c.email == email)).scalar()


@pytest.mark.parametrize("name", CLIENTS)
def test_every_event_is_stored_stitched_and_scored(api: tuple[str, str, Store], name: str) -> None:
    url, write, store = api
    failures: list[Exception] = []
    client = CLIENTS[name](write, url, lambda exc, batch: failures.append(exc))
    for i in range(PAGES):
        path = "/pricing" if i == 0 else f"/blog/{i}"
        client.page(anonymous_id="anon-7", name="Page", properties={"path": path}, message_id=f"p{i}")
    client.identify(
        user_id="ada", anonymous_id="anon-7", traits={"email": "ada@example.com"}, message_id="who"
    )
    client.track(user_id="ada", event="Demo Requested", properties={"plan": "team"}, message_id="demo")
    client.flush()
    client.join()
    assert failures == []

    expected = {f"p{i}" for i in range(PAGES)} | {"who", "demo"}
    with store.connect() as conn:
        assert stored_message_ids(conn) == expected  # all 259
    assert wait_until(lambda: _waiting(store) == 0)
    lead_id = _lead(store, "ada@example.com")
    assert lead_id is not None
    with store.connect() as conn:
        keys = set(conn.execute(select(identities.c.key).where(identities.c.lead_id == lead_id)).scalars())
        current, _ = read_current(conn, lead_id)
        bands = [c["to_value"] for c in read_crossings(conn, lead_id) if c["kind"] == "band"]
    assert keys == {"a:anon-7", "u:ada"}
    # her anonymous pricing page view (30) counts for her, and the demo request (50): 80, hot
    assert current is not None and current["score"] == 80
    assert bands[-1] == "hot"


def _waiting(store: Store) -> int:
    with store.connect() as conn:
        return waiting_events(conn)


@pytest.mark.parametrize("name", CLIENTS)
def test_a_refused_batch_is_the_librarys_api_error(api: tuple[str, str, Store], name: str) -> None:
    url, write, store = api
    failures: list[Exception] = []
    client = CLIENTS[name](write, url, lambda exc, batch: failures.append(exc))
    client.track(user_id="u" * 300, event="Demo Requested", message_id="too-long")  # userId ≤ 255
    client.flush()
    client.join()
    [failure] = failures
    module = segment_request if name.startswith("segment") else rudder_request
    assert isinstance(failure, module.APIError), repr(failure)
    assert (failure.status, failure.code) == (400, "invalid_request")
    assert failure.message == "all 1 messages were rejected"
    with store.connect() as conn:
        assert stored_message_ids(conn) == set()
