"""Sign-in throttling per (account, client address) with exponential backoff; no account is ever locked.

Each failed sign-in for an e-mail from one address makes that pair wait longer before its next try:
nothing for the first ``FREE_FAILURES``, then ``BASE_DELAY_MS`` after the latest failure, doubling with
each further one, up to ``MAX_DELAY_MS``. A success from that address, or ``FORGET_MS`` without a
failure, starts the pair afresh. Other addresses are not affected, so an attacker guessing the admin's
password slows only themselves, and the admin signs in from their own address meanwhile. An address that
fails for many e-mails (password spraying) waits as well: once it has ``MAX_CLIENT_FAILURES`` failures
within ``CLIENT_WINDOW_MS``, until the oldest of them leaves the window. Attempts are stored
(``login_attempts``), so the throttle holds across processes.
"""

from __future__ import annotations

from sqlalchemy import Connection

from leadscore.store.users import client_failures, hold_attempts, pair_failures

FREE_FAILURES = 5
BASE_DELAY_MS = 30_000
MAX_DELAY_MS = 15 * 60 * 1000
FORGET_MS = 24 * 3600 * 1000
CLIENT_WINDOW_MS = 15 * 60 * 1000
MAX_CLIENT_FAILURES = 30


def delay_after(failures: int) -> int:
    """How long a pair waits after its latest failure, given its failures in a row (ms)."""
    if failures < FREE_FAILURES:
        return 0
    # capped before shifting, so a huge count never builds a huge integer
    return min(MAX_DELAY_MS, BASE_DELAY_MS << min(failures - FREE_FAILURES, 32))


def retry_at(conn: Connection, email: str, client: str, now_ms: int) -> int | None:
    """When this e-mail may next try to sign in from this client; None when it may now.

    Concurrent attempts of the pair wait for this transaction, so a burst cannot outrun the count."""
    hold_attempts(conn, email, client)
    failures, latest = pair_failures(conn, email, client, now_ms - FORGET_MS)
    waits = [latest + delay_after(failures)] if latest is not None and failures >= FREE_FAILURES else []
    spraying, oldest = client_failures(conn, client, now_ms - CLIENT_WINDOW_MS)
    if spraying >= MAX_CLIENT_FAILURES and oldest is not None:
        waits.append(oldest + CLIENT_WINDOW_MS)
    until = max(waits, default=now_ms)
    return until if until > now_ms else None
