"""What a running app holds: settings, the store, the key cache, the group committer, the processor."""

from __future__ import annotations

from dataclasses import dataclass

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


def state_of(request: Request) -> AppState:
    state: AppState = request.app.state.leadscore
    return state
