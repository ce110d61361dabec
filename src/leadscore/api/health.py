"""``/healthz`` (the process answers), ``/readyz`` (it can do its work) and ``/metrics`` (Prometheus).

Metrics are read from the database at each scrape (``store/health.py``), so every worker process of
``serve --workers`` reports the same numbers and counters survive restarts; that is also why no client
library is used: there is no in-process registry to keep, only the text exposition format to write.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from leadscore import __version__
from leadscore.api.auth import read_token
from leadscore.api.errors import error_body
from leadscore.api.openapi import READ, refusal
from leadscore.api.state import AppState, state_of
from leadscore.scoring.run import now_ms
from leadscore.store import counters
from leadscore.store.dead_letters import printable
from leadscore.store.health import Backlog, backlog, schema_state

router = APIRouter(tags=["health"])
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", summary="Liveness: the process answers")
@router.get("/health", summary="Liveness (the older path)")
def healthz() -> dict[str, object]:
    return {"ok": True, "version": __version__}


CHECKS = {"type": "object", "additionalProperties": {"type": "string"}, "description": "each check's state"}


@router.get(
    "/readyz",
    summary="Readiness: database reachable, schema at the newest migration, processor running",
    responses={503: refusal(503, checks=CHECKS)},
)
def readyz(request: Request) -> JSONResponse:
    state = state_of(request)
    checks: dict[str, str] = {}
    try:
        with state.store.connect() as conn:
            checks["database"] = "ok"
            checks["migrations"] = schema_state(conn)
    except Exception as exc:  # unreachable, refused, wrong credentials: not ready, and say why
        checks["database"] = printable(f"{type(exc).__name__}: {exc}", 300)
    checks["processor"] = _processor(state)
    failing = [{"field": name, "message": v} for name, v in checks.items() if v not in ("ok", "disabled")]
    if not failing:
        return JSONResponse({"ok": True, "checks": checks})
    # the error envelope, with every check's state beside it
    message = "not ready: " + ", ".join(f["field"] for f in failing)
    return JSONResponse({**error_body(503, message, failing), "checks": checks}, status_code=503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (a read or admin token unless LEADSCORE_METRICS_PUBLIC)",
    response_class=PlainTextResponse,
    openapi_extra=READ,  # the document leaves it out when the metrics are public
)
def metrics(request: Request) -> PlainTextResponse:
    state = state_of(request)
    if not state.settings.metrics_public:
        read_token(request, state.keys)
    with state.store.connect() as conn:
        current = backlog(conn, now_ms())
    running = _processor(state)
    return PlainTextResponse(exposition(current, running), media_type=CONTENT_TYPE)


def _processor(state: AppState) -> str:
    if state.processor is None:
        return "disabled"
    return "ok" if state.processor.running else "stopped"


def exposition(b: Backlog, processor: str = "disabled") -> str:
    """The metrics in Prometheus' text exposition format (version 0.0.4)."""
    out: list[str] = []
    totals = b.totals
    _family(
        out,
        "leadscore_events_acknowledged_total",
        "counter",
        "Events acknowledged to clients",
        [({}, b.acknowledged)],
    )
    _family(
        out,
        "leadscore_events_scored_total",
        "counter",
        "Events applied and scored by the processor",
        [({}, totals.get(counters.SCORED, 0))],
    )
    _family(
        out,
        "leadscore_events_dead_lettered_total",
        "counter",
        "Messages set aside as dead letters",
        [({}, totals.get(counters.DEAD_LETTERED, 0))],
    )
    _family(
        out,
        "leadscore_events_suppressed_total",
        "counter",
        "Messages dropped unstored: they named a person erased with --suppress",
        [({}, totals.get(counters.SUPPRESSED, 0))],
    )
    _family(
        out, "leadscore_dead_letters", "gauge", "Dead letters waiting for an operator", [({}, b.dead_letters)]
    )
    _family(
        out,
        "leadscore_inbox_events",
        "gauge",
        "Acknowledged events waiting to be scored",
        [({}, b.inbox_events)],
    )
    _family(
        out,
        "leadscore_inbox_lag_seconds",
        "gauge",
        "Age of the oldest event waiting to be scored",
        [({}, b.lag_s)],
    )
    _family(
        out,
        "leadscore_rescore_due_lag_seconds",
        "gauge",
        "How long the stalest stored score has been due to change with time alone (0: none is due)",
        [({}, b.due_lag_s)],
    )
    _family(
        out,
        "leadscore_processor_running",
        "gauge",
        "Whether this process runs a processor and it is alive",
        [({}, int(processor == "ok"))],
    )
    _family(
        out,
        "leadscore_outbox_backlog",
        "gauge",
        "Notifications waiting to be delivered",
        _by_channel(b.outbox_pending),
    )
    _family(
        out,
        "leadscore_outbox_oldest_age_seconds",
        "gauge",
        "Age of the oldest notification waiting to be delivered",
        _by_channel({c: max(0, b.now_ms - ms) / 1000 for c, ms in b.outbox_oldest_ms.items()}),
    )
    _family(
        out,
        "leadscore_delivery_failures",
        "gauge",
        "Notifications given up after failed deliveries",
        _by_endpoint(b.deliveries_failed),
    )
    _family(
        out,
        "leadscore_delivery_retrying",
        "gauge",
        "Notifications whose last delivery attempt failed",
        _by_endpoint(b.deliveries_retrying),
    )
    return "".join(out)


def _by_channel(values: Mapping[str, float]) -> list[tuple[dict[str, str], float]]:
    return [({"channel": c}, v) for c, v in sorted(values.items())]


def _by_endpoint(values: Mapping[tuple[str, str], int]) -> list[tuple[dict[str, str], float]]:
    return [({"channel": c, "endpoint": e}, v) for (c, e), v in sorted(values.items())]


def _family(
    out: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], Any]]
) -> None:
    out.append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
    for labels, value in samples:
        spelled = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
        out.append(f"{name}{{{spelled}}} {_number(value)}\n" if spelled else f"{name} {_number(value)}\n")


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
