"""Settings from the environment (prefix ``LEADSCORE_``) or flags; flags win.

One ``Settings`` object is built once (by the CLI or ``app_from_env``) and passed down: ``create_app(settings)``
hands it to the lifecycle runner, the deliverer and every handler, so no code below reads the environment
itself. Sections group what belongs together (``smtp``, ``webhook``, ``lifecycle``, ``cookies``); each reads
the same variable names as before they were grouped (``LEADSCORE_SMTP_HOST``, ``LEADSCORE_WEBHOOK_SECRET``,
``LEADSCORE_RETRY_BASE_S``, ``LEADSCORE_COOKIE_SECURE``). Reference: docs/configuration.md.
"""

from __future__ import annotations

import ipaddress
import os
import re
from typing import Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///leadscore.db"
WEAK_SECRETS = {"", "changeme", "change-me", "secret", "development", "dev", "leadscore"}
DEV_WEBHOOK_SECRET = "development-only-webhook-secret"
MIN_SECRET_CHARS = 32
ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,99}$")


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", frozen=True, populate_by_name=True)


class SmtpSettings(BaseSettings):
    """Mail delivery (``LEADSCORE_SMTP_*``, ``LEADSCORE_MAIL_FROM``)."""

    model_config = _section("LEADSCORE_SMTP_")

    host: str = "127.0.0.1"
    port: int = Field(default=25, ge=1, le=65535)
    starttls: bool = False
    ssl: bool = False
    user: str | None = None
    password: str | None = Field(default=None, repr=False)
    # every wait on the server (connect, each command) is bounded by this
    timeout_s: float = Field(default=10.0, gt=0)
    # the longest one mail attempt may take in all, however slowly the server answers
    total_timeout_s: float = Field(default=60.0, gt=0)
    # mails sent at once; mail has its own threads, so a slow webhook never delays a mail
    concurrency: int = Field(default=4, ge=1, le=64)
    mail_from: str = Field(
        default="leadscore@localhost", validation_alias=AliasChoices("mail_from", "LEADSCORE_MAIL_FROM")
    )


def _url_environment() -> dict[str, str]:
    # webhook targets may name an environment variable (``url_env``) that holds a secret URL; it is read
    # here, once, with the rest of the settings
    return {k: v for k, v in os.environ.items() if ENV_NAME.match(k) and v}


def networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated networks or addresses; ValueError names the one that is neither."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            out.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise ValueError(f"{part!r} is not a network such as 10.0.4.0/24 or an address: {exc}") from exc
    return out


class WebhookSettings(BaseSettings):
    """Webhook signing and delivery bounds (``LEADSCORE_WEBHOOK_*``)."""

    model_config = _section("LEADSCORE_WEBHOOK_")

    # signs webhooks (HMAC-SHA256) and unsubscribe links; refused outside development unless it is a random
    # value of at least 32 characters
    secret: str = Field(default=DEV_WEBHOOK_SECRET, repr=False)
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # the longest wait for any one read of the answer (LEADSCORE_WEBHOOK_TIMEOUT_S, as before)
    timeout_s: float = Field(default=10.0, gt=0)
    # the longest one attempt may take, answer included
    total_timeout_s: float = Field(default=30.0, gt=0)
    # deliveries in flight to one receiving host (scheme, host and port: all its URLs together), and in all
    concurrency: int = Field(default=4, ge=1, le=64)
    workers: int = Field(default=16, ge=1, le=256)
    # after this many consecutive failures an endpoint is left alone for breaker_cooldown_s; then one
    # delivery probes it (half-open) and its answer closes or reopens the breaker
    breaker_failures: int = Field(default=5, ge=1)
    breaker_cooldown_s: float = Field(default=60.0, gt=0)
    url_environment: dict[str, str] = Field(default_factory=_url_environment, repr=False, exclude=True)
    # a URL a dashboard user sets (their Slack-compatible notifications) reaches public addresses only,
    # and these private networks (comma-separated, e.g. "10.0.4.0/24,fd00::/8": an in-house chat server);
    # the model's webhooks, set by whoever publishes the model, reach any address
    private_networks: str = ""

    @field_validator("private_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        networks(value)
        return value

    def user_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """The private networks a user's URL may reach (``private_networks``)."""
        return networks(self.private_networks)

    def url(self, target: str) -> str | None:
        """A stored target is a URL or ``env:NAME`` (the URL is a secret kept in the environment)."""
        if target.startswith("env:"):
            return self.url_environment.get(target.removeprefix("env:")) or None
        return target


class LifecycleSettings(BaseSettings):
    """The lifecycle runner and delivery retries (``LEADSCORE_RETRY_BASE_S``, ``LEADSCORE_MAX_ATTEMPTS``...)."""

    model_config = _section("LEADSCORE_")

    public_url: str = "http://127.0.0.1:8000"
    # a failed delivery waits retry_base_s × 2^(attempt−1), at most retry_max_s, less up to retry_jitter of
    # it at random (so endpoints that fail together are not retried together), and gives up after
    # max_attempts (the defaults keep retrying for about 4 hours)
    retry_base_s: float = Field(default=5.0, gt=0)
    retry_max_s: float = Field(default=900.0, gt=0)
    retry_jitter: float = Field(default=0.5, ge=0, le=1)
    max_attempts: int = Field(default=20, ge=1)
    lifecycle_idle_s: float = Field(default=1.0, gt=0)
    timer_interval_s: float = Field(default=60.0, gt=0)
    run_lifecycle: bool = True


class AlertSettings(BaseSettings):
    """Health checks of the model and their alerts (``LEADSCORE_ALERTS_*``): see docs/lifecycle.md."""

    model_config = _section("LEADSCORE_ALERTS_")

    # how often the lifecycle runner checks (0: never; `leadscore alerts check` runs them by hand)
    interval_s: float = Field(default=3600.0, ge=0)
    # where alerts go: e-mail addresses, and a Slack-compatible webhook ({"text": ...}) URL
    mail_to: list[str] = Field(default_factory=list)
    webhook_url: str | None = None
    # each check compares the last window_days with the window before (or with a target)
    window_days: float = Field(default=7.0, gt=0)
    # score drift: PSI of the event-time scores of the two windows, each with at least min_scores
    drift_psi: float = Field(default=0.25, gt=0)
    min_scores: int = Field(default=30, ge=1)
    # MQL volume: MQLs per week more than capacity_tolerance away from capacity_per_week (unset: no check)
    capacity_per_week: float | None = Field(default=None, gt=0)
    capacity_tolerance: float = Field(default=0.5, gt=0)
    # acceptance by sales falling by at least acceptance_drop (0.15 = 15 points), min_decisions each window
    acceptance_drop: float = Field(default=0.15, gt=0, le=1)
    min_decisions: int = Field(default=10, ge=1)
    # calibration: the MQL conversion seen against the precision the active version's stored backtest
    # promised, falling short by at least calibration_gap (absolute), over at least min_decisions MQLs
    calibration_gap: float = Field(default=0.15, gt=0, le=1)


class CookieSettings(BaseSettings):
    """Dashboard cookies (``LEADSCORE_COOKIE_SECURE``): None marks them Secure when served over https."""

    model_config = _section("LEADSCORE_COOKIE_")

    secure: bool | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"
    # browser origins allowed to send events (analytics.js); "*" is refused: write keys are public there
    cors_origins: list[str] = Field(default_factory=list)
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    # how long a request's body may take to arrive, from the request's start (api/body_deadline.py)
    body_read_s: float = Field(default=30.0, gt=0)
    # the bytes of request bodies (as received and inflated) a server process holds at once; past it, 503
    body_budget_mb: int = Field(default=64, ge=16, le=1 << 20)
    # how long a processor waits before looking at the inbox on its own (other processes' events)
    processor_idle_s: float = 0.5
    # how long the processor lets events gather after being woken, so that a busy inbox is scored in
    # batches (each batch has a fixed cost: a transaction and two scoring queries); adds at most this much
    # to the event -> score latency
    processor_linger_s: float = 0.05
    # SQLite, a flood (events arriving faster than the processor would score them with half a core, and
    # scoring already further behind than 250 ms): the processor scores only this share of the time, in batches of
    # processor_flood_batch events, so acknowledgements keep the CPU and the write lock; scores lag until
    # arrivals slow, then catch up at full speed (1 turns this off: scoring at full speed throughout)
    processor_flood_duty: float = Field(default=0.25, gt=0, le=1)
    processor_flood_batch: int = Field(default=1000, ge=1, le=100_000)
    run_processor: bool = True
    # seconds between clock ticks, which rescore leads whose score time alone has changed (windows,
    # decay reaching a threshold: scoring/clock.py); 0 turns the clock off (run `leadscore tick` instead)
    clock_tick_s: float = Field(default=60.0, ge=0, le=86400)
    # IP addresses in event context: truncate (default), hash (HMAC with secret_key) or keep
    ip_mode: Literal["truncate", "hash", "keep"] = "truncate"
    # signs IP hashes and anything else that needs a server secret; required outside development
    secret_key: str = Field(default="", repr=False)
    # delete events older than this many days (0: keep forever); leads are rescored afterwards
    retention_days: int = Field(default=0, ge=0)
    # events of people who refused tracking: "keep" (stored, not scored) or "drop" (deleted on arrival)
    unconsented_events: Literal["keep", "drop"] = "keep"
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    lifecycle: LifecycleSettings = Field(default_factory=LifecycleSettings)
    cookies: CookieSettings = Field(default_factory=CookieSettings)
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    # peppers the hashes of suppressed (unsubscribed) addresses; defaults to secret_key. Set it to the old
    # key before rotating secret_key, so nobody who unsubscribed is forgotten (migration 0012 reads it too)
    suppression_secret: str = Field(default="", repr=False)
    # /metrics answers anyone (a scraper on a private network) instead of read and admin tokens only
    metrics_public: bool = False
    # how long a dashboard request waits for a report computed in the background (the evaluation, the model
    # review's proposals: minutes with many leads) before the page says it is under way; the page then
    # shows it by itself once it is done. Short, so that no click waits seconds
    report_wait_s: float = Field(default=0.1, ge=0, le=60)
    # the dashboard warns when the oldest event waiting to be scored is older than this (seconds)
    lag_alert_s: float = Field(default=60.0, gt=0)
    # `leadscore serve` logs one line per request (uvicorn's access log); `--no-access-log` overrides it
    access_log: bool = True

    @property
    def suppression_pepper(self) -> str:
        """The pepper of store/suppressions.py."""
        return self.suppression_secret or self.secret_key

    @model_validator(mode="after")
    def _no_default_secrets(self) -> Settings:
        if self.environment == "development":
            return self
        if _weak(self.secret_key):
            raise ValueError(
                f"LEADSCORE_SECRET_KEY must be set to a random value of at least {MIN_SECRET_CHARS} "
                "characters outside development (e.g. `python -c 'import secrets; "
                "print(secrets.token_urlsafe(48))'`)"
            )
        if _weak(self.webhook.secret) or self.webhook.secret == DEV_WEBHOOK_SECRET:
            state = "is empty" if not self.webhook.secret.strip() else "is a default or too short"
            raise ValueError(
                f"LEADSCORE_WEBHOOK_SECRET {state}: outside development it must be a random value of at least "
                f"{MIN_SECRET_CHARS} characters (it signs webhooks and unsubscribe links)"
            )
        return self


def _weak(secret: str) -> bool:
    return len(secret.strip()) < MIN_SECRET_CHARS or secret.strip().lower() in WEAK_SECRETS


def database_url(flag: str | None) -> str:
    """The database to use: the ``--db`` flag, else ``LEADSCORE_DATABASE_URL``, else ./leadscore.db."""
    return flag or Settings().database_url
