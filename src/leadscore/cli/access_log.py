"""The server's access log without the people in it: the values of query parameters that name a person
(an e-mail, an unsubscribe token, a search, a user or anonymous id) and any path segment holding an
e-mail (``/v1/leads/ann@example.com``) are written as ``[redacted]``. An erasure cannot reach a log file,
so what names a person is never written to it."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, unquote, urlencode

PERSONAL_PARAMS = frozenset(
    {"email", "token", "q", "user_id", "userId", "anonymous_id", "anonymousId", "external_id", "lead"}
)
REDACTED = "[redacted]"


def redacted_path(path: str) -> str:
    """``path`` (with its query string) as the access log writes it."""
    if "?" not in path and "@" not in path and "%40" not in path.upper():
        return path  # most requests (``/v1/track``, ``/v1/batch``): nothing to take out
    base, mark, query = path.partition("?")
    segments = [REDACTED if "@" in unquote(s) else s for s in base.split("/")]
    out = "/".join(segments)
    if not mark:
        return out
    pairs = [
        (k, REDACTED if k in PERSONAL_PARAMS else v) for k, v in parse_qsl(query, keep_blank_values=True)
    ]
    return f"{out}?{urlencode(pairs, safe='[]')}"


class RedactedAccessLog(logging.Filter):
    """For uvicorn's access logger, whose records carry (client, method, path, HTTP version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redacted_path(args[2]), args[3], args[4])
        return True
