"""Fuzz the whole HTTP API from the OpenAPI document it serves (schemathesis), against the real app on a
live server, with the credential each operation's security names: no 5xx, every status and header as
documented, every body as its schema says (refusals in the error envelope), 405 with ``Allow``, and
authentication enforced where it is declared. Then the messages the tracking schemas generated must be
in the event log: every one the API acknowledged as new, and every message type among them.
"""

from __future__ import annotations

import base64
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis

# The modules schemathesis's checks import on first use, imported here at collection: imported inside a
# check, deep in Hypothesis's stack, pytest's assertion rewriter compiled one there and CPython 3.11's
# parser raised "SystemError: AST constructor recursion depth mismatch" (CI, 2026-12-07,
# object_authorization), failing a run whose responses were all as documented.
import schemathesis.core.error_feedback.collector
import schemathesis.specs.openapi.adapter.parameters
import schemathesis.specs.openapi.adapter.security
import schemathesis.specs.openapi.object_authorization
import schemathesis.specs.openapi.validation
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance
from sqlalchemy import func, select

from leadscore.api import create_app
from leadscore.api.tracking import PATHS
from leadscore.ingest.segment import TYPES
from leadscore.scoring.processor import Processor
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.dead_letters import count as dead_letter_count
from leadscore.store.keys import create_key
from leadscore.store.schema import events
from live_server import serving
from pg_schema import PG_URL, pg_schema_store

# the processor runs after the fuzzing (test_fuzzed_messages_are_stored), in the test's thread
SETTINGS = Settings(database_url="unused", run_processor=False)


@dataclass
class Served:
    url: str
    store: Store
    headers: dict[str, dict[str, str]]  # security scheme → the header carrying its credential
    new_events: int = 0  # acknowledged and not reported as duplicates
    answered: dict[int, int] = field(default_factory=dict)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    with ExitStack() as stack:
        if request.param == "sqlite":
            store = Store.from_url(str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "fuzz.db"))
            stack.callback(store.dispose)
        elif PG_URL:
            store = stack.enter_context(pg_schema_store("fuzz"))
        else:
            pytest.skip("PostgreSQL not configured: set LEADSCORE_TEST_POSTGRES_URL")
        with store.begin() as conn:
            tokens = {kind: create_key(conn, kind, "fuzz", 0)[1] for kind in ("write", "read", "admin")}
        app = create_app(SETTINGS, store=store)
        with serving(app) as url:
            yield Served(
                url,
                store,
                {
                    "writeKey": {
                        "Authorization": "Basic " + base64.b64encode(f"{tokens['write']}:".encode()).decode()
                    },
                    "readToken": {"Authorization": f"Bearer {tokens['read']}"},
                    "adminToken": {"Authorization": f"Bearer {tokens['admin']}"},
                },
            )


# the tracking paths that take the same bodies as others (a batch's items are the single messages, a short
# path is its long one): fewer examples, and no coverage phase (its boundary values of every field are
# sent to the long paths; for a batch they would be thousands of requests)
ALIASES = ["/v1/t", "/v1/p", "/v1/s", "/v1/i", "/v1/g", "/v1/a", "/v1/b", "/v1/import"]
FUZZ = SchemathesisConfig.from_dict(
    {
        # deterministic: CI explores the same cases every run (a finding shows as a change, not a flake)
        "generation": {"max-examples": 25, "deterministic": True},
        "operations": [
            {
                "include-path": ALIASES,
                "generation": {"max-examples": 8},
                "phases": {"coverage": {"enabled": False}},
            },
            {"include-path": "/v1/batch", "phases": {"coverage": {"enabled": False}}},
        ],
    }
)
# the document of an app built with the served app's settings (pytest collects the operations before any
# server runs)
schema = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi(), config=FUZZ)


def envelope_on_errors(ctx: Any, response: Any, case: Any) -> None:
    """Every 4xx and 5xx answer is ``{"ok": false, "error": str, "errors": list}`` (JSON)."""
    if response.status_code >= 400:
        body = response.json()
        assert body["ok"] is False, body
        assert isinstance(body["error"], str) and body["error"], body
        assert isinstance(body["errors"], list), body


def credential(case: Any, served: Served) -> dict[str, str]:
    """The header of the first scheme the operation's security names (none for a public operation)."""
    for requirement in case.operation.definition.raw.get("security", []):
        for scheme in requirement:
            return served.headers[scheme]
    return {}


# what only the descriptions say (JSON Schema cannot): a message's size, its nesting depth, and that its
# event time, corrected for the sender's clock (sentAt), is not over 24 h ahead of its receipt
PROSE_RULES = ("larger than", "levels deep", "more than 24 h after", "corrected for the sender's clock")


def schema_valid_messages_are_accepted(ctx: Any, response: Any, case: Any) -> None:
    """A tracking message its schema calls valid is stored, unless a rule stated in prose refuses it (in
    place of schemathesis' positive_data_acceptance, which knows no prose)."""
    positive = case.meta is not None and case.meta.generation.mode.is_positive
    if case.path not in PATHS or case.media_type != "application/json" or not positive:
        return
    assert response.status_code in (200, 400, 413), response.text
    body = response.json()
    if response.status_code == 200:
        refused = body.get("rejected", [])
    else:
        refused = body["errors"] or [{"message": body["error"]}]
    unexplained = [r for r in refused if not any(rule in r["message"] for rule in PROSE_RULES)]
    assert not unexplained, f"schema-valid messages refused: {unexplained}"


@schema.parametrize()
@settings(deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_document(case: Any, served: Served) -> None:
    headers = credential(case, served)
    response = case.call(base_url=served.url, headers=headers)
    served.answered[response.status_code] = served.answered.get(response.status_code, 0) + 1
    if response.status_code == 200 and case.path in PATHS:
        body = response.json()
        served.new_events += body["accepted"] - body["duplicates"]
    case.validate_response(
        response,
        headers=headers,
        transport_kwargs={"base_url": served.url, "headers": headers},
        additional_checks=[envelope_on_errors, schema_valid_messages_are_accepted],
        # the schemas are exact where JSON Schema can be, and otherwise stricter than the app (it refuses
        # an integer literal between 2**63 and 2**64 but reads 1e19 or a longer literal as a float, where
        # JSON Schema sees one number): a message they refuse may be stored; what they accept is accepted
        # (the check above)
        excluded_checks=[positive_data_acceptance, negative_data_rejection],
    )


def test_fuzzed_messages_are_stored(served: Served) -> None:
    """What the fuzzing sent (the test above, same module and store): every message acknowledged as new is
    in the event log once the processor has drained the inbox, none of them is a dead letter, and each
    message type was generated valid at least once."""
    assert served.answered, "run with test_api_conforms_to_its_document (this test checks what it stored)"
    Processor(served.store).drain()
    with served.store.connect() as conn:
        stored = dict(conn.execute(select(events.c.type, func.count()).group_by(events.c.type)).all())
        dead = dead_letter_count(conn)
    assert dead == 0
    assert sum(stored.values()) == served.new_events
    # each type stored more than once: the document's example of it is one message, the rest were
    # generated from its schema
    assert set(stored) == set(TYPES), stored
    assert all(n > 1 for n in stored.values()), stored
