"""``create_app(settings)``: the FastAPI application. Nothing connects at import time."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from leadscore import __version__, web
from leadscore.api import (
    allowed_methods,
    browser,
    errors,
    health,
    leads,
    openapi,
    posthog,
    reports,
    tracking,
    tracking_lane,
)
from leadscore.api import lifecycle as lifecycle_api
from leadscore.api.auth import KeyCache
from leadscore.api.body_deadline import BodyBudget, BodyDeadline, has_body
from leadscore.api.state import AppState
from leadscore.ingest.committer import GroupCommitter
from leadscore.learn.health import run_checks
from leadscore.lifecycle.runner import LifecycleRunner
from leadscore.privacy.retention import RetentionJob
from leadscore.scoring.clock import Clock
from leadscore.scoring.processor import Processor
from leadscore.settings import Settings
from leadscore.store import Store

# every request body but PostHog's capture (api.posthog.MAX_BODY_BYTES): tracking batches are limited to
# 500 KB on their own; nothing else needs more
MAX_BODY_BYTES = 1024 * 1024


class LeadscoreApp(FastAPI):
    """FastAPI with the tracking lane in front: server-to-server tracking requests skip the middleware
    stack (see ``api.tracking_lane``); every other request, browser tracking included, goes through it."""

    body_read_s = 30.0  # ``Settings.body_read_s``, set by ``create_app``
    body_budget = BodyBudget(
        64 * 1024 * 1024
    )  # ``Settings.body_budget_mb``: each app its own, by ``create_app``

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and has_body(scope):
            deadline = BodyDeadline(receive, send, self.body_read_s, self.body_budget)
            try:
                await self._answer(scope, deadline.receive, deadline.send)
            finally:
                deadline.release()
            return
        await self._answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        if tracking_lane.serves(scope):
            state = getattr(self.state, "leadscore", None)
            if state is not None:
                await tracking_lane.answer(state, scope, receive, send)
                return
        try:
            await super().__call__(scope, receive, send)
        except ClientDisconnect:
            # gone before its body ended: nothing to answer (as the lane does), and not the server's error
            # (uvicorn logged each with its traceback: anyone could write one a connection into the log)
            return


WARM_UP_JOIN_S = 30.0


def create_app(settings: Settings | None = None, store: Store | None = None) -> FastAPI:
    settings = settings or Settings()
    if "*" in settings.cors_origins:
        raise ValueError("LEADSCORE_CORS_ORIGINS must list origins; '*' would let any site send events")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own_store = store or Store.from_url(settings.database_url)
        processor = (
            Processor(
                own_store,
                idle_s=settings.processor_idle_s,
                linger_s=settings.processor_linger_s,
                drop_unconsented=settings.unconsented_events == "drop",
                flood_duty=settings.processor_flood_duty,
                flood_batch=settings.processor_flood_batch,
            )
            if settings.run_processor
            else None
        )
        committer = GroupCommitter(own_store, on_commit=processor.wake if processor else None).start()
        if processor is not None:
            processor.start()
        runner = LifecycleRunner(own_store, settings, run_checks).start() if settings.run_processor else None
        clock = (
            Clock(own_store, settings.clock_tick_s).start()
            if settings.run_processor and settings.clock_tick_s
            else None
        )
        # events older than LEADSCORE_RETENTION_DAYS are deleted daily (and their leads rescored)
        retention = (
            RetentionJob(own_store, settings.retention_days).start()
            if settings.retention_days and settings.run_processor
            else None
        )
        app.state.leadscore = AppState(settings, own_store, KeyCache(own_store), committer, processor)
        # what the dashboard pages' first requests would pay once (web/warmup.py), in the background: the
        # server answers at once (health checks, tracking), a page asked for meanwhile waits for no more
        stopping = threading.Event()
        warming = threading.Thread(
            target=web.warm_up,
            args=(own_store, app.state.leadscore.warmed, stopping),
            name="warm-up",
            daemon=True,
        )
        warming.start()
        try:
            yield
        finally:
            stopping.set()  # the warm-up ends after the step it is in (joined below)
            committer.stop()
            if processor is not None:
                processor.drain()
                processor.stop()
            if clock is not None:
                clock.stop()
            if runner is not None:
                runner.stop()
            if retention is not None:
                retention.stop()
            # a server stopped while warming up: its connection is back in the pool before the store closes
            # (else the disposed pool's connection is left open until the garbage collector finds it)
            warming.join(WARM_UP_JOIN_S)
            if store is None:
                own_store.dispose()

    app = LeadscoreApp(
        title="leadscore",
        version=__version__,
        description="Segment-compatible event ingestion and the lead read API.",
        lifespan=lifespan,
        # a backstop for bodies sent without a length (chunked); declared lengths are refused earlier, with
        # the JSON envelope, by DeclaredBodyLimit at MAX_BODY_BYTES
        max_body_size=2 * MAX_BODY_BYTES,
        docs_url=None,  # Swagger UI would load from a CDN; the OpenAPI document is at /openapi.json
        redoc_url=None,
    )
    app.body_read_s = settings.body_read_s
    app.body_budget = BodyBudget(settings.body_budget_mb * 1024 * 1024)
    errors.install(app)
    allowed_methods.install(app)  # 405 with Allow
    app.add_middleware(
        errors.DeclaredBodyLimit,
        max_bytes=MAX_BODY_BYTES,
        larger={path: posthog.MAX_BODY_BYTES for path in posthog.CAPTURE_PATHS},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["POST", "GET", "OPTIONS"],
            allow_headers=browser.CORS_HEADERS,
            max_age=600,
        )
    app.include_router(tracking.router)
    app.include_router(browser.router)
    app.include_router(posthog.router)
    app.include_router(leads.router)
    app.include_router(lifecycle_api.router)
    app.include_router(reports.router)
    app.include_router(health.router)
    web.install(app)  # the dashboard: pages, static files, security headers
    openapi.install(app, settings)  # /openapi.json: schemes, every status, the tracking bodies

    return app


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory leadscore.api.app:app_from_env`` (each worker process)."""
    from leadscore.api.workers import tune_gc

    app = create_app(Settings())
    tune_gc()
    return app
