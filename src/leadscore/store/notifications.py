"""Each dashboard user's notification settings (storage only; what is sent is ``lifecycle.notify``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from sqlalchemy import Connection, select

from leadscore.store.schema import notification_settings, users
from leadscore.store.upsert import upsert

DEFAULT_DIGEST_HOUR = 8
MAX_URL = 2000


@dataclass(frozen=True)
class NotificationSettings:
    """Per channel (mail, Slack-compatible webhook): a message at once when a lead is assigned to the
    user, and a daily digest from ``digest_hour`` (UTC). Nothing is on until the user (or an admin)
    turns it on: the model's own assignment mail already reaches sellers."""

    mail_immediate: bool = False
    mail_digest: bool = False
    slack_url: str | None = None
    slack_immediate: bool = False
    slack_digest: bool = False
    digest_hour: int = DEFAULT_DIGEST_HOUR

    def __post_init__(self) -> None:
        if not 0 <= self.digest_hour <= 23:
            raise ValueError(f"the digest hour is 0 to 23 (UTC), not {self.digest_hour}")
        if self.slack_url is not None:
            problem = url_problem(self.slack_url)
            if problem:
                raise ValueError(problem)
        if (self.slack_immediate or self.slack_digest) and not self.slack_url:
            raise ValueError("Slack messages need the incoming webhook's URL")

    @property
    def any(self) -> bool:
        return self.mail_immediate or self.mail_digest or self.slack_immediate or self.slack_digest


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an incoming webhook's address, or None."""
    if len(url) > MAX_URL:
        return f"the webhook URL has at most {MAX_URL} characters; this one has {len(url)}"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "the webhook URL holds a space or a control character"
    try:
        parts = urlsplit(url)
        host, _port = parts.hostname, parts.port  # an unreadable port or IPv6 address is a ValueError
        if host:
            host.encode("idna")  # a label over 63 characters or empty: no name lookup could take it
    except ValueError:  # UnicodeError included
        return "the webhook URL's host or port cannot be read"
    if parts.scheme not in ("http", "https") or not host:
        return "the webhook URL must start with https:// (or http://) and name a host"
    return None


def read_settings(conn: Connection, user_id: int) -> NotificationSettings:
    row = (
        conn.execute(select(notification_settings).where(notification_settings.c.user_id == user_id))
        .mappings()
        .first()
    )
    if row is None:
        return NotificationSettings()
    return _settings(dict(row))


def _settings(row: dict[str, object]) -> NotificationSettings:
    return NotificationSettings(
        mail_immediate=bool(row["mail_immediate"]),
        mail_digest=bool(row["mail_digest"]),
        slack_url=str(row["slack_url"]) if row["slack_url"] else None,
        slack_immediate=bool(row["slack_immediate"]),
        slack_digest=bool(row["slack_digest"]),
        digest_hour=int(row["digest_hour"]),  # type: ignore[call-overload]
    )


def save_settings(conn: Connection, user_id: int, found: NotificationSettings, now_ms: int) -> None:
    upsert(
        conn,
        notification_settings,
        [{"user_id": user_id, **asdict(found), "updated_ms": now_ms}],
        ["user_id"],
    )


def subscribers(conn: Connection) -> list[tuple[int, str, str, NotificationSettings]]:
    """Active users with any notification on: (id, e-mail, name, settings), by id."""
    query = (
        select(users.c.id, users.c.email, users.c.name, notification_settings)
        .join(notification_settings, notification_settings.c.user_id == users.c.id)
        .where(users.c.disabled_ms.is_(None))
        .order_by(users.c.id)
    )
    out = []
    for row in conn.execute(query).mappings():
        found = _settings(dict(row))
        if found.any:
            out.append((int(row["id"]), str(row["email"]), str(row["name"]), found))
    return out
