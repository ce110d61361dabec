"""Settings from the environment (prefix ``LEADSCORE_``) or flags; flags win."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///leadscore.db"


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
    run_processor: bool = True


def database_url(flag: str | None) -> str:
    """The database to use: the ``--db`` flag, else ``LEADSCORE_DATABASE_URL``, else ./leadscore.db."""
    return flag or Settings().database_url
