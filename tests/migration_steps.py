"""Moving a test store along its migrations: ``migrate(store, "downgrade", "0027ip")`` and back with
``migrate(store, "upgrade", "heads")``, on the store's own engine in one transaction."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from leadscore.store import Store
from leadscore.store.engine import MIGRATIONS


def migrate(store: Store, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
