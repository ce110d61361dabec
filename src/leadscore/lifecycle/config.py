"""Delivery settings (environment, prefix ``LEADSCORE_``): SMTP, webhook signing, retries, the runner.

Kept beside the lifecycle rather than in ``leadscore.settings`` so the scoring core does not carry mail
and webhook configuration it never uses; the names and the prefix are the same as every other setting.
"""

from __future__ import annotations

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "development-only-webhook-secret"


class LifecycleSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore", frozen=True)

    environment: str = "development"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_ssl: bool = False
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout_s: float = 10.0
    mail_from: str = "leadscore@localhost"
    # signs webhooks (HMAC-SHA256) and unsubscribe links; a default secret is refused outside development
    webhook_secret: str = DEV_SECRET
    # the server secret (the same LEADSCORE_SECRET_KEY as leadscore.settings) peppers the hashes of
    # suppressed addresses; LEADSCORE_SUPPRESSION_SECRET, when set, does instead, so the secret key can be
    # rotated without forgetting who unsubscribed (set it to the old key first)
    secret_key: str = ""
    suppression_secret: str = ""
    webhook_timeout_s: float = 10.0
    public_url: str = "http://127.0.0.1:8000"
    # a failed delivery waits retry_base_s × 2^(attempt−1), at most retry_max_s, and gives up after
    # max_attempts (the defaults keep retrying for about 4 hours)
    retry_base_s: float = 5.0
    retry_max_s: float = 900.0
    max_attempts: int = 20
    lifecycle_idle_s: float = 1.0
    timer_interval_s: float = 60.0
    run_lifecycle: bool = True

    @property
    def suppression_pepper(self) -> str:
        """The pepper of store/suppressions.py (migration 0012 reads the same two variables)."""
        return self.suppression_secret or self.secret_key

    @model_validator(mode="after")
    def _no_default_secret(self) -> LifecycleSettings:
        if self.environment != "development" and self.webhook_secret == DEV_SECRET:
            raise ValueError("set LEADSCORE_WEBHOOK_SECRET: the default secret is for development only")
        return self
