"""The dashboard's warm-up (web/warmup.py): started with the app, it builds the active model's scoring and
explanation statements and compiles the templates before a page asks for them, and says when it is done;
a store it cannot read leaves the server as it was (logged, never raised), the pages then paying for it."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
from sqlalchemy import text

from leadscore.api import create_app
from leadscore.scoring import run
from leadscore.scoring.pipeline import active_model
from leadscore.settings import Settings
from leadscore.web.render import templates
from leadscore.web.warmup import warm_up
from live_server import serving
from web_support import build


def test_the_warm_up_builds_the_active_models_statements(tmp_path: Path) -> None:
    store, _ = build(tmp_path, leads=20)
    try:
        with store.connect() as conn:
            active = active_model(conn)
        assert active is not None
        run._STATEMENTS.clear()
        templates.env.cache.clear()  # type: ignore[union-attr]
        done = threading.Event()
        warm_up(store, done)
        assert done.is_set()
        # the scoring query (the journey) and the explanation (the ledger) of the active model, built once
        # (keys: model ids, sources, dialect, compiler, over the targets table or not)
        built = {
            (tuple(id(m) for m in models), compiler)
            for (_, _, _, compiler, _), (models, _) in run._STATEMENTS.items()
        }
        assert {m for m, _ in built} == {(id(active.model),)} and len(built) == 2
        assert len(templates.env.cache) == len(templates.env.list_templates(extensions=["html"]))  # type: ignore[arg-type]
    finally:
        store.dispose()


def test_a_server_starts_warms_up_and_answers(tmp_path: Path) -> None:
    store, db = build(tmp_path, leads=20)
    try:
        app = create_app(Settings(database_url=db, run_processor=False), store)
        with serving(app) as url:
            assert app.state.leadscore.warmed.wait(60)
            assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
    finally:
        store.dispose()


def test_a_store_the_warm_up_cannot_read_is_logged_and_done(tmp_path: Path, caplog: object) -> None:
    store, _ = build(tmp_path, leads=5)
    try:
        with store.begin() as conn:
            conn.execute(text("DROP TABLE score_events"))  # the explanation reads it
            conn.execute(text("DROP TABLE scores"))
        done = threading.Event()
        warm_up(store, done)  # does not raise
        assert done.is_set()
        assert "warming the dashboard up failed" in caplog.text  # type: ignore[attr-defined]
    finally:
        store.dispose()
