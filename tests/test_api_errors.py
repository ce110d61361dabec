"""Every LeadscoreError that reaches the app is answered with its 4xx in the one error envelope."""

from __future__ import annotations

from pathlib import Path

import httpx

from leadscore.api import create_app
from leadscore.errors import (
    CompileError,
    InputError,
    LeadscoreError,
    ModelValidationError,
    NotFoundError,
    Problem,
    StoreError,
    UnsupportedRuleError,
)
from leadscore.lifecycle.feedback import TransitionError
from leadscore.settings import Settings
from leadscore.store import Store
from live_server import serving

ERRORS: dict[str, tuple[LeadscoreError, int, dict[str, object]]] = {
    "not-found": (NotFoundError("no lead 'x'"), 404, {"error": "no lead 'x'", "errors": []}),
    "input": (
        InputError(Problem("not a number", "leads.csv", 3, field="employees")),
        400,
        {
            "error": "leads.csv:3 field employees: not a number",
            "errors": [{"message": "not a number", "file": "leads.csv", "line": 3, "field": "employees"}],
        },
    ),
    "model": (
        ModelValidationError(
            [Problem("unknown key 'pints'", "m.yaml", 4, 3), Problem("no rules", "m.yaml", 1)]
        ),
        422,
        {
            "error": "m.yaml:1: no rules",
            "errors": [
                {"message": "no rules", "file": "m.yaml", "line": 1},
                {"message": "unknown key 'pints'", "file": "m.yaml", "line": 4, "column": 3},
            ],
        },
    ),
    "compile": (
        UnsupportedRuleError("r1", "spark", "regex"),
        422,
        {"error": "rule r1: regex is not supported on spark", "errors": []},
    ),
    "plain-compile": (CompileError("cannot compile"), 422, {"error": "cannot compile", "errors": []}),
    "store": (StoreError("no active model"), 409, {"error": "no active model", "errors": []}),
    "transition": (
        TransitionError("lead 1 has no stage yet"),
        409,
        {"error": "lead 1 has no stage yet", "errors": []},
    ),
}


CODE_OF = {400: "invalid_request", 404: "not_found", 409: "conflict", 422: "unprocessable"}


def test_leadscore_errors_are_answered_with_their_4xx(tmp_path: Path) -> None:
    store = Store.from_url(str(tmp_path / "errors.db"))
    app = create_app(Settings(database_url="unused", run_processor=False), store=store)

    def fail(name: str) -> None:
        raise ERRORS[name][0]

    app.add_api_route("/v1/failing/{name}", fail)
    with serving(app) as url, httpx.Client(base_url=url) as client:
        for name, (_, status, body) in ERRORS.items():
            r = client.get(f"/v1/failing/{name}")
            # code and message: what the Segment and RudderStack libraries read from an error answer
            expected = {"ok": False, **body, "code": CODE_OF[status], "message": body["error"]}
            assert (r.status_code, r.json()) == (status, expected), name
    store.dispose()
