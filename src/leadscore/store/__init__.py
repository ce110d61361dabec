"""The store: tables, migrations, ``Store.from_url()``; all writes through one place."""

from leadscore.store.store import DEFAULT_URL, Store

__all__ = ["DEFAULT_URL", "Store"]
