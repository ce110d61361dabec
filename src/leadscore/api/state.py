"""What a running app holds: settings, the store, the key cache, the group committer, the processor."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from fastapi import Request

from leadscore.api.auth import KeyCache
from leadscore.ingest.committer import GroupCommitter
from leadscore.scoring.processor import Processor
from leadscore.settings import Settings
from leadscore.store import Store


@dataclass
class AppState:
    settings: Settings
    store: Store
    keys: KeyCache
    committer: GroupCommitter
    processor: Processor | None
    # set once the dashboard's warm-up is done (web/warmup.py: started with the app)
    warmed: threading.Event = field(default_factory=threading.Event)


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.leadscore
    return state
