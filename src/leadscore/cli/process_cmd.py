"""``leadscore process``: the scoring processor and the lifecycle runner as a process of their own.

``leadscore serve`` runs both beside the API; ``serve --no-processor`` leaves them to this command, so the
API's cores only acknowledge events. Several ``process`` commands may run against one PostgreSQL
database (work is claimed with ``FOR UPDATE SKIP LOCKED``; see ``scoring/processor.py``); on SQLite,
one writer at a time takes turns, so one is enough.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Annotated

import typer

from leadscore.cli.options import Db, open_store
from leadscore.cli.render import console


def process(
    scoring: Annotated[
        bool, typer.Option("--scoring/--no-scoring", help="Drain the inbox: apply and score tracked events.")
    ] = True,
    lifecycle: Annotated[
        bool,
        typer.Option(
            "--lifecycle/--no-lifecycle", help="Run the lifecycle: stage moves, SLA timers, deliveries."
        ),
    ] = True,
    poll: Annotated[
        float,
        typer.Option(
            "--poll",
            min=0.005,
            help="Seconds between looks at an empty inbox (the added event -> score delay).",
        ),
    ] = 0.05,
    db: Db = None,
) -> None:
    """Run the scoring processor and the lifecycle runner until stopped (SIGTERM or Ctrl-C).

    For `leadscore serve --no-processor`; several may run against one PostgreSQL database.
    """
    from leadscore.learn.health import run_checks
    from leadscore.lifecycle.runner import LifecycleRunner
    from leadscore.privacy.retention import RetentionJob
    from leadscore.scoring.clock import Clock
    from leadscore.scoring.processor import Processor
    from leadscore.settings import Settings

    if not (scoring or lifecycle):
        raise typer.BadParameter("nothing to run", param_hint="--no-scoring --no-lifecycle")
    settings = Settings()
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with open_store(db) as store:
        # no committer in this process wakes it: it looks at the inbox every ``poll`` seconds, and takes
        # what has gathered then as one batch (so no linger after waking)
        processor = (
            Processor(
                store,
                idle_s=poll,
                linger_s=0.0,
                drop_unconsented=settings.unconsented_events == "drop",
                flood_duty=settings.processor_flood_duty,
                flood_batch=settings.processor_flood_batch,
            )
            if scoring
            else None
        )
        runner = LifecycleRunner(store, settings, run_checks) if lifecycle else None
        # time is an input like events: the clock rescores leads whose score time alone changes
        clock = Clock(store, settings.clock_tick_s) if scoring and settings.clock_tick_s else None
        retention = (
            RetentionJob(store, settings.retention_days) if scoring and settings.retention_days else None
        )
        for worker in (processor, runner, retention, clock):
            if worker is not None:
                worker.start()
        running = ", ".join(n for n, on in (("scoring", scoring), ("lifecycle", lifecycle)) if on)
        console.print(
            f"leadscore process: {running} on {store.url}; SIGTERM or Ctrl-C stops it", highlight=False
        )
        try:
            stop.wait()
        finally:
            if processor is not None:
                processor.stop()  # the batch in progress commits; what is left waits for the next process
            if runner is not None:
                runner.stop()
            if retention is not None:
                retention.stop()
            if clock is not None:
                clock.stop()
