"""A request's body arrives within ``LEADSCORE_BODY_READ_S`` of the request's start, or it is answered
408 and its connection closed ("slowloris").

uvicorn closes idle keep-alive connections, but has no limit on how long a request's body may take: a
client that declared 100 bytes and sent one every two seconds held its connection for as long as it
liked (measured: still open after 40 s, no key needed), and 2,048 such clients (``limit_concurrency``)
left every other request a 503. One wrapper of ``receive`` and ``send`` for every request with a body,
whichever way it is served (the tracking lane or the full application), bounds the whole body's time, not
the time between two chunks (a chunk every few seconds would pass that). The default, 30 s, lets a 512 KB
batch come in at 17 KB/s. Headers that never end are uvicorn's to bound (a reverse proxy does:
``client_header_timeout``, docs/ingest.md).
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Scope, Send

from leadscore.api.errors import ApiError

CLOSE = (b"connection", b"close")


def has_body(scope: Scope) -> bool:
    """Whether an HTTP request declares a body (a length above 0, or chunks)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return value != b"0"
        if name == b"transfer-encoding":
            return True
    return False


class BodyDeadline:
    """``receive`` and ``send`` of one request whose body must arrive within ``seconds``: past that,
    ``receive`` raises ApiError 408 (answered by the lane or the app's handler), and the answer, whatever
    it is, closes the connection (the rest of the body is never read)."""

    __slots__ = ("_deadline", "_done", "_receive", "_send", "expired", "seconds")

    def __init__(self, receive: Receive, send: Send, seconds: float) -> None:
        self._receive, self._send, self.seconds = receive, send, seconds
        self._deadline = asyncio.get_running_loop().time() + seconds
        self._done = False
        self.expired = False

    async def receive(self) -> Message:
        if self._done:  # the body is in: the app may wait for a disconnect as long as it likes
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            self.expired = True
            raise ApiError(408, f"the request body did not arrive within {self.seconds:g} s") from None
        if not message.get("more_body", False):
            self._done = True
        return message

    async def send(self, message: Message) -> None:
        if self.expired and message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), CLOSE]}
        await self._send(message)
