"""What /metrics, /readyz and the dashboard's banner report about the pipeline, read from the tables
(so every worker process reports the same numbers, and they survive restarts): the inbox's backlog and
lag, dead letters, the running totals, the outbox's backlog and the deliveries that failed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, func, select

from leadscore.store import counters, dead_letters
from leadscore.store import outbox as outbox_store
from leadscore.store.engine import MIGRATIONS
from leadscore.store.schema import inbox, model_versions, outbox, scores

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


@dataclass(frozen=True)
class Backlog:
    """The pipeline's state at ``now_ms``."""

    now_ms: int
    inbox_events: int  # acknowledged, waiting to be applied and scored
    inbox_oldest_ms: int | None  # when the oldest of them was received
    dead_letters: int
    totals: dict[str, int]  # ``store.counters`` by name
    outbox_pending: dict[str, int] = field(default_factory=dict)  # by channel
    outbox_oldest_ms: dict[str, int] = field(
        default_factory=dict
    )  # oldest pending row's creation, by channel
    # by (channel, endpoint): rows given up (status failed), and pending rows whose last try failed
    deliveries_failed: dict[tuple[str, str], int] = field(default_factory=dict)
    deliveries_retrying: dict[tuple[str, str], int] = field(default_factory=dict)
    due_oldest_ms: int | None = None  # the oldest due time of a stored score not yet rescored (oldest_due)

    @property
    def lag_s(self) -> float:
        return lag_seconds(self.inbox_oldest_ms, self.now_ms)

    @property
    def due_lag_s(self) -> float:
        """How long the stalest stored score has been due (a clock tick's wait included)."""
        return lag_seconds(self.due_oldest_ms, self.now_ms)

    @property
    def acknowledged(self) -> int:
        """Events acknowledged to clients: those the processor took from the inbox and those still there."""
        return self.totals.get(counters.ACKNOWLEDGED, 0) + self.inbox_events


def inbox_state(conn: Connection) -> tuple[int, int | None]:
    """(events waiting in the inbox, when the oldest was received)."""
    waiting, oldest = conn.execute(
        select(func.coalesce(func.sum(inbox.c.events), 0), func.min(inbox.c.received_ms))
    ).one()
    return int(waiting), None if oldest is None else int(oldest)


def lag_seconds(oldest_ms: int | None, now_ms: int) -> float:
    """Age of the oldest event waiting in the inbox (0 when none waits): how far scoring lags."""
    return 0.0 if oldest_ms is None else max(0.0, (now_ms - oldest_ms) / 1000)


def scoring_lag(conn: Connection, now_ms: int) -> tuple[float, int]:
    """(how far scoring lags in seconds, dead letters): what the dashboard warns about."""
    _, oldest = inbox_state(conn)
    return lag_seconds(oldest, now_ms), dead_letters.count(conn)


def oldest_due(conn: Connection, now_ms: int) -> int | None:
    """The earliest ``scores.due_ms`` at or before ``now_ms`` among the scores of an active model: since
    then, a stored score differs from what its model gives now (a window opened or closed, decay reached a
    threshold) until a clock tick rescores it (``scoring/clock.py``). None when no score is due."""
    active = select(model_versions.c.score_name).where(model_versions.c.active.is_(True))
    query = select(func.min(scores.c.due_ms)).where(
        scores.c.due_ms <= now_ms, scores.c.score_name.in_(active.scalar_subquery())
    )
    found = conn.execute(query).scalar()
    return None if found is None else int(found)


def rescoring_lag(conn: Connection, now_ms: int, tick_s: float) -> float:
    """Seconds a stored score has been stale beyond one clock tick (0 when none): a due score waits for
    the next tick by design (``tick_s``, 0 when the server runs no clock), longer only when no clock runs
    (``serve --no-processor`` without ``leadscore process``, ``LEADSCORE_CLOCK_TICK_S=0`` without a
    ``leadscore tick`` cron job) or ticks fail."""
    return max(0.0, lag_seconds(oldest_due(conn, now_ms), now_ms) - tick_s)


def endpoint_label(channel: str, target: str) -> str:
    """What a delivery target is called in metrics: a webhook URL's scheme, host and path (never its
    credentials or query, which may hold tokens), an environment variable's name; never an address."""
    if channel == "mail":
        return "smtp"
    if _ENV_NAME.fullmatch(target):
        return target
    parts = urlsplit(target)
    if parts.scheme in ("http", "https") and parts.hostname:
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"[:200]
    return "other"


def delivery_failures(conn: Connection) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """Outbox rows given up, and pending rows whose last attempt failed, by (channel, endpoint label):
    ``store.outbox.delivery_failures`` (the one count), labelled for metrics."""
    failed: dict[tuple[str, str], int] = {}
    retrying: dict[tuple[str, str], int] = {}
    for endpoint, counts in outbox_store.delivery_failures(conn).items():
        channel = "mail" if endpoint == outbox_store.MAIL_ENDPOINT else "webhook"
        key = (channel, endpoint_label(channel, endpoint))
        if counts["failed"]:
            failed[key] = failed.get(key, 0) + counts["failed"]
        if counts["retrying"]:
            retrying[key] = retrying.get(key, 0) + counts["retrying"]
    return failed, retrying


def backlog(conn: Connection, now_ms: int) -> Backlog:
    """The pipeline's state, read in a handful of aggregate queries."""
    waiting, oldest = inbox_state(conn)
    pending: dict[str, int] = {}
    pending_oldest: dict[str, int] = {}
    query = (
        select(outbox.c.channel, func.count(), func.min(outbox.c.created_ms))
        .where(outbox.c.status == "pending")
        .group_by(outbox.c.channel)
    )
    for channel, n, first in conn.execute(query).all():
        pending[str(channel)] = int(n)
        pending_oldest[str(channel)] = int(first)
    failed, retrying = delivery_failures(conn)
    return Backlog(
        now_ms=now_ms,
        inbox_events=waiting,
        inbox_oldest_ms=oldest,
        dead_letters=dead_letters.count(conn),
        totals=counters.read(conn),
        outbox_pending=pending,
        outbox_oldest_ms=pending_oldest,
        deliveries_failed=failed,
        deliveries_retrying=retrying,
        due_oldest_ms=oldest_due(conn, now_ms),
    )


@lru_cache(maxsize=1)
def _heads() -> frozenset[str]:
    return frozenset(ScriptDirectory(str(MIGRATIONS)).get_heads())


def schema_state(conn: Connection) -> str:
    """ "ok" when the database's schema is at this version's newest migration (every branch's head), else
    what it is at and what is expected."""
    current = set(MigrationContext.configure(conn).get_current_heads())
    if current == _heads():
        return "ok"
    return f"database at {', '.join(sorted(current)) or 'no migration'}, this version expects {', '.join(sorted(_heads()))}"
