"""``leadscore digest``: the users' daily digests, for cron (the server's lifecycle runner sends them too)."""

from __future__ import annotations

from typing import Annotated

import typer

from leadscore.cli.options import Db, open_store
from leadscore.cli.render import console


def digest(
    user: Annotated[
        str | None, typer.Option("--user", help="Only this user's digest (their e-mail).")
    ] = None,
    deliver: Annotated[
        bool,
        typer.Option(
            "--deliver/--no-deliver",
            help="Deliver the outbox now (also any other due notification), or leave it to the server.",
        ),
    ] = True,
    db: Db = None,
) -> None:
    """Enqueue today's digest for each user whose digest hour (UTC) has come and has none yet today.

    Safe to run as often as cron likes: each user gets at most one digest a day per channel.
    """
    from leadscore.lifecycle.notify import day_of, send_digests
    from leadscore.lifecycle.outbox import deliver_due
    from leadscore.scoring.pipeline import current_model
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings

    settings = Settings()
    stamp = now_ms()
    with open_store(db) as store:
        active = current_model(store)
        model = active.model if active is not None else None
        if model is None or model.lifecycle is None:
            raise typer.BadParameter("the active model has no lifecycle section, so no lead is assigned")
        run = send_digests(store, model, settings, stamp, email=user)
        console.print(
            f"digests of {day_of(stamp)}: {run.sent} enqueued, {run.already} already sent today, "
            f"{run.empty} with no lead to tell of ({run.users} users due)",
            highlight=False,
        )
        if deliver:
            stats = deliver_due(store, settings, model.lifecycle, stamp)
            console.print(
                f"delivered: {stats.sent} sent, {stats.retried} to retry, {stats.failed} failed",
                highlight=False,
            )
