"""Request bodies sent with ``Content-Encoding: gzip`` or ``deflate``, inflated within the body limit.

rudder-sdk-python gzips every batch by default, segment-analytics-python does with ``gzip=True``. One
function undoes the codings for every tracking request, whichever way it arrives (the tracking lane or
the full application): the inflated body may be at most as large as the plain body could be, and
inflation stops as soon as it would grow past that, so a small compressed body that inflates to
gigabytes (a "zip bomb") costs at most ``limit`` bytes of memory and is answered 413.
"""

from __future__ import annotations

import zlib

from leadscore.api.body_deadline import charge
from leadscore.api.errors import ApiError

# wbits for zlib: gzip's header and trailer, or zlib's (HTTP "deflate"; raw deflate is told apart by
# its missing zlib header, as browsers and curl do)
GZIP_WBITS = 16 + zlib.MAX_WBITS
CODINGS = ("gzip", "x-gzip", "deflate")
# "gzip, gzip" is legal HTTP; more than this many layers is no client's doing
MAX_CODINGS = 2
# a gzip body may hold several members one after another; more than this is no client's doing (419,430
# empty ones fit in PostHog's 8 MiB, each an inflater made on the event loop)
MAX_MEMBERS = 1000
# the bytes handed to the inflater at a time: at a member's end it copies back what it was handed past
# the end (``unused_data``); handed the rest of the body, n members cost n times the body
FEED = 4096


def decoded(raw: bytes, encoding: str | None, limit: int) -> bytes:
    """``raw`` with its content codings undone: ApiError 413 past ``limit`` bytes (before or after
    inflating), 415 for a coding other than gzip, deflate or identity, 400 for a corrupt stream."""
    if len(raw) > limit:
        raise ApiError(413, f"body is {len(raw)} bytes; at most {limit} are allowed")
    if not encoding:  # nearly every request
        return raw
    codings = [c.strip().lower() for c in encoding.split(",")]
    codings = [c for c in codings if c and c != "identity"]
    if len(codings) > MAX_CODINGS:
        raise ApiError(415, f"Content-Encoding has {len(codings)} codings; at most {MAX_CODINGS} are allowed")
    for coding in reversed(codings):  # the last coding listed was applied last
        if coding not in CODINGS:
            raise ApiError(
                415, f"Content-Encoding {coding[:40]!r} is not supported: send gzip, deflate or identity"
            )
        inflated = _inflate(raw, coding, limit)
        charge(len(inflated))  # held beside the bytes received (api/body_deadline.py)
        raw = inflated
    return raw


def _inflate(data: bytes, coding: str, limit: int) -> bytes:
    gzip = coding != "deflate"
    view = memoryview(data)
    parts: list[bytes] = []
    size = at = members = 0
    while True:  # a gzip body may hold several members, one after another
        members += 1
        if members > MAX_MEMBERS:
            raise ApiError(400, f"the {coding} body has more than {MAX_MEMBERS:,} members")
        inflater = zlib.decompressobj(GZIP_WBITS if gzip else _deflate_wbits(data))
        while not inflater.eof and at < len(data):
            fed = view[at : at + FEED]
            try:
                part = inflater.decompress(fed, limit - size + 1)
            except zlib.error as exc:
                raise ApiError(400, f"the {coding} body is corrupt: {exc}") from None
            size += len(part)
            if size > limit:
                raise ApiError(
                    413, f"the {coding} body inflates to more than {limit} bytes; at most {limit} are allowed"
                )
            parts.append(part)
            # within the limit, the inflater took all it was handed but what lies past its member's end
            at += len(fed) - len(inflater.unused_data)
        if not inflater.eof:
            raise ApiError(400, f"the {coding} body is truncated")
        if at == len(data):
            return b"".join(parts)
        if not gzip:
            raise ApiError(400, f"the {coding} body has {len(data) - at} bytes after its end")


def _deflate_wbits(data: bytes) -> int:
    """zlib's wrapper (RFC 1950) when the first two bytes are its header, else raw deflate (RFC 1951)."""
    zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
    return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS
