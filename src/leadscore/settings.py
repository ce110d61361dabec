"""Settings from the environment (prefix ``LEADSCORE_``) or flags; flags win."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///leadscore.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LEADSCORE_", extra="ignore", frozen=True)

    database_url: str = DEFAULT_DATABASE_URL
    environment: str = "development"


def database_url(flag: str | None) -> str:
    """The database to use: the ``--db`` flag, else ``LEADSCORE_DATABASE_URL``, else ./leadscore.db."""
    return flag or Settings().database_url
