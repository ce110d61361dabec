"""Settings from the environment (prefix ``LEADSCORE_``) or flags; flags win."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///leadscore.db"
WEAK_SECRETS = {"", "changeme", "change-me", "secret", "development", "dev", "leadscore"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"
    # browser origins allowed to send events (analytics.js); "*" is refused: write keys are public there
    cors_origins: list[str] = Field(default_factory=list)
    max_message_bytes: int = 32 * 1024
    max_batch_bytes: int = 500 * 1024
    # how long a processor waits before looking at the inbox on its own (other processes' events)
    processor_idle_s: float = 0.5
    # how long the processor lets events gather after being woken, so that a busy inbox is scored in
    # batches (each batch has a fixed cost: a transaction and two scoring queries); adds at most this much
    # to the event -> score latency
    processor_linger_s: float = 0.05
    run_processor: bool = True
    # seconds between clock ticks, which rescore leads whose score time alone has changed (windows,
    # decay reaching a threshold: scoring/clock.py); 0 turns the clock off (run `leadscore tick` instead)
    clock_tick_s: float = Field(default=60.0, ge=0, le=86400)
    # IP addresses in event context: truncate (default), hash (HMAC with secret_key) or keep
    ip_mode: Literal["truncate", "hash", "keep"] = "truncate"
    # signs IP hashes and anything else that needs a server secret; required outside development
    secret_key: str = ""
    # delete events older than this many days (0: keep forever); leads are rescored afterwards
    retention_days: int = Field(default=0, ge=0)
    # events of people who refused tracking: "keep" (stored, not scored) or "drop" (deleted on arrival)
    unconsented_events: Literal["keep", "drop"] = "keep"

    @model_validator(mode="after")
    def _no_default_secrets(self) -> Settings:
        if self.environment != "development" and (
            len(self.secret_key) < 32 or self.secret_key in WEAK_SECRETS
        ):
            raise ValueError(
                "LEADSCORE_SECRET_KEY must be set to a random value of at least 32 characters outside "
                "development (e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return self


def database_url(flag: str | None) -> str:
    """The database to use: the ``--db`` flag, else ``LEADSCORE_DATABASE_URL``, else ./leadscore.db."""
    return flag or Settings().database_url
