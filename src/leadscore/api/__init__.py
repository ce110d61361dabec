"""The HTTP API: Segment-compatible tracking endpoints and the read API (``create_app``)."""

from leadscore.api.app import create_app

__all__ = ["create_app"]
