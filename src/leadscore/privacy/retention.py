"""Retention: events older than a configured age are deleted, and the leads they belonged to (and their
accounts' other leads, whose account-scope rules counted them) are rescored."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from sqlalchemy import delete, select

from leadscore.scoring.pipeline import rescore_leads
from leadscore.scoring.run import now_ms
from leadscore.store import Store
from leadscore.store.audit import audit
from leadscore.store.event_log import drop_from_inbox
from leadscore.store.people import account_colleagues
from leadscore.store.schema import events, identities

DAY_MS = 86_400_000
log = logging.getLogger("leadscore.retention")


@dataclass(frozen=True)
class RetentionReport:
    deleted_events: int
    rescored_leads: int


def apply_retention(
    store: Store, days: int, now: int | None = None, actor: str = "server"
) -> RetentionReport:
    """Delete events older than ``days`` (by event time) and rescore the leads that had them; each run is
    written to the audit log in the same transaction (the dashboard's remembered reports see deletions
    by it: ``web/data/remembered.py``)."""
    stamp = now or now_ms()
    cutoff = stamp - days * DAY_MS
    with store.begin() as conn:
        lead_ids = set(
            conn.execute(
                select(identities.c.lead_id)
                .distinct()
                .join(events, events.c.person_key == identities.c.key)
                .where(events.c.ts < cutoff)
            ).scalars()
        )
        # their colleagues too: a model's account-scope rules counted the deleted events for them
        lead_ids |= {mate for _, mate in account_colleagues(conn, lead_ids)}
        deleted = conn.execute(delete(events).where(events.c.ts < cutoff)).rowcount
        deleted += drop_from_inbox(conn, lambda row: row["ts"] < cutoff)
        audit(conn, stamp, actor, "privacy.retention", f"{days} days", deleted=deleted)
    rescored = (
        rescore_leads(store, lead_ids, cause_ref=f"retention: events before {days} days deleted")
        if lead_ids
        else 0
    )
    return RetentionReport(deleted, rescored)


class RetentionJob:
    """Runs ``apply_retention`` once a day in the server (when ``retention_days`` is set)."""

    def __init__(self, store: Store, days: int, every_s: float = 86_400.0) -> None:
        self.store, self.days, self.every_s = store, days, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leadscore-retention", daemon=True)

    def start(self) -> RetentionJob:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                report = apply_retention(self.store, self.days)
                log.info(
                    "retention: %d events deleted, %d leads rescored",
                    report.deleted_events,
                    report.rescored_leads,
                )
            except Exception:
                log.exception("retention failed; it runs again later")
            self._stop.wait(self.every_s)
