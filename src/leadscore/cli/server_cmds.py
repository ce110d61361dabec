"""``leadscore serve`` and ``leadscore keys create|list|revoke``."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from leadscore.cli.options import Db, fmt_time, open_store
from leadscore.cli.render import console

keys_app = typer.Typer(help="API keys: write keys for tracking, read and admin tokens.", no_args_is_help=True)


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Server processes (each with its own socket, committer and processor).")
    ] = 1,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="One log line per request (default: $LEADSCORE_ACCESS_LOG, else on).",
            show_default=False,
        ),
    ] = None,
    processor: Annotated[
        bool,
        typer.Option(
            "--processor/--no-processor",
            help="Score events and run the lifecycle in the server; with --no-processor, `leadscore process` does.",
        ),
    ] = True,
    db: Db = None,
) -> None:
    """Run the HTTP API: Segment-compatible tracking endpoints and the read API (OpenAPI at /openapi.json)."""
    import logging.config

    import uvicorn

    from leadscore.api.workers import APP, balanced
    from leadscore.api.workers import run as run_workers
    from leadscore.cli.serve_banner import announce, log_config
    from leadscore.settings import Settings, database_url
    from leadscore.store import Store

    url = database_url(db)
    os.environ["LEADSCORE_DATABASE_URL"] = url
    logging.config.dictConfig(log_config())
    if not processor:
        os.environ["LEADSCORE_RUN_PROCESSOR"] = "false"  # read by every worker's Settings
    # create or migrate the schema once, before the workers start
    store = Store.from_url(url)
    try:
        announce(store, host, port, db, workers)
    finally:
        store.dispose()
    options = {
        "log_config": log_config(),
        "log_level": "info",  # uvicorn's start-up lines and the access log; leadscore's warnings
        "access_log": Settings().access_log if access_log is None else access_log,
        "timeout_keep_alive": 5,  # idle keep-alive connections are closed after 5 s
        "timeout_graceful_shutdown": 15,
        "limit_concurrency": 2048,  # beyond this, new connections get 503 instead of exhausting the host
        "h11_max_incomplete_event_size": 64 * 1024,  # request line and headers
    }
    if workers > 1 and balanced():
        run_workers(host, port, workers, options)
        return
    uvicorn.run(APP, factory=True, host=host, port=port, workers=workers, **options)  # type: ignore[arg-type]


@keys_app.command("create")
def create_cmd(
    kind: Annotated[
        str,
        typer.Option(
            help="write (sends events to the tracking API, nothing else), read (the read API) or admin "
            "(the read API, and feedback and outcomes through the API)."
        ),
    ] = "write",
    name: Annotated[str, typer.Option(help="What the key is for (e.g. 'website').")] = "default",
    db: Db = None,
) -> None:
    """Create a key. Its secret is printed once and stored only as a hash."""
    from leadscore.scoring.run import now_ms
    from leadscore.store.audit import audit
    from leadscore.store.keys import KINDS, create_key

    if kind not in KINDS:
        raise typer.BadParameter(f"must be one of {', '.join(KINDS)}", param_hint="--kind")
    stamp = now_ms()
    with open_store(db) as store, store.begin() as conn:
        key, token = create_key(conn, kind, name, stamp)
        audit(conn, stamp, "cli", "key.create", f"key:{key.id}", kind=kind, name=name)
    console.print(
        f"created {kind} key {key.id} ({name}); keep it now, it is not shown again:", highlight=False
    )
    print(token)


@keys_app.command("list")
def list_cmd(db: Db = None) -> None:
    """Every key: kind, name, prefix, created, revoked."""
    from leadscore.store.keys import list_keys

    with open_store(db) as store, store.connect() as conn:
        keys = list_keys(conn)
    table = Table(title="API keys")
    for col in ("id", "kind", "name", "prefix", "created", "revoked"):
        table.add_column(col)
    for k in keys:
        table.add_row(
            str(k.id), k.kind, k.name, k.prefix + "…", fmt_time(k.created_ms), fmt_time(k.revoked_ms)
        )
    console.print(table)


@keys_app.command("revoke")
def revoke_cmd(
    key_id: Annotated[int, typer.Argument(help="The key's id (see `keys list`).")], db: Db = None
) -> None:
    """Revoke a key; requests with it are refused within seconds."""
    from leadscore.scoring.run import now_ms
    from leadscore.store.audit import audit
    from leadscore.store.keys import revoke

    stamp = now_ms()
    with open_store(db) as store, store.begin() as conn:
        revoke(conn, key_id, stamp)
        audit(conn, stamp, "cli", "key.revoke", f"key:{key_id}")
    console.print(f"revoked key {key_id}")
