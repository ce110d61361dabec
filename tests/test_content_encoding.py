"""Compressed tracking bodies: every coding a client sends is inflated, within the body limit, whichever
way the request arrives (the tracking lane without an Origin, the full application with one), and a
body that inflates past the limit is answered 413 without being inflated further."""

from __future__ import annotations

import gzip
import random
import zlib
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadscore.api import content_encoding, create_app
from leadscore.api.content_encoding import FEED, MAX_MEMBERS, decoded
from leadscore.api.errors import ApiError
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.event_log import stored_message_ids
from leadscore.store.keys import create_key
from live_server import serving
from test_api_tracking import basic

TEXT = b'{"userId": "u", "event": "Demo Requested"}'


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


# (coding header, how the client packs the body)
CODINGS: dict[str, tuple[str | None, Callable[[bytes], bytes]]] = {
    "none": (None, lambda b: b),
    "identity": ("identity", lambda b: b),
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "GZIP upper case": ("GZIP", gzip.compress),
    "deflate (zlib, RFC 1950)": ("deflate", zlib.compress),
    "deflate sent raw (RFC 1951)": ("deflate", _raw_deflate),
    "two gzip members": ("gzip", lambda b: gzip.compress(b[:10]) + gzip.compress(b[10:])),
    "gzip then deflate": ("gzip, deflate", lambda b: zlib.compress(gzip.compress(b))),
}


@pytest.mark.parametrize("name", CODINGS)
def test_every_coding_is_undone(name: str) -> None:
    header, pack = CODINGS[name]
    assert decoded(pack(TEXT), header, 100) == TEXT


# (coding header, body, limit) → (status, start of the message)
REFUSED: dict[str, tuple[str, bytes, int, int, str]] = {
    "bomb: 10 MB of zeros in 10 KB": (
        "gzip",
        gzip.compress(bytes(10_000_000)),
        100_000,
        413,
        "the gzip body inflates",
    ),
    "deflate bomb": ("deflate", zlib.compress(bytes(10_000_000)), 100_000, 413, "the deflate body inflates"),
    "one byte over": ("gzip", gzip.compress(b"x" * 101), 100, 413, "the gzip body inflates to more than 100"),
    "bomb in the second member": (
        "gzip",
        gzip.compress(b"x" * 60) + gzip.compress(b"y" * 60),
        100,
        413,
        "the gzip body inflates",
    ),
    "compressed body itself over the limit": ("gzip", bytes(101), 100, 413, "body is 101 bytes"),
    "truncated": ("gzip", gzip.compress(TEXT)[:-12], 100, 400, "the gzip body is truncated"),
    "not gzip at all": ("gzip", TEXT, 100, 400, "the gzip body is corrupt"),
    "bytes after a deflate stream": (
        "deflate",
        zlib.compress(TEXT) + b"xx",
        100,
        400,
        "the deflate body has 2 bytes",
    ),
    "brotli": ("br", TEXT, 100, 415, "Content-Encoding 'br' is not supported"),
    "three layers": ("gzip, gzip, gzip", TEXT, 100, 415, "Content-Encoding has 3 codings"),
    # 20-byte empty members: 419,430 of them in PostHog's 8 MiB held the event loop 50 CPU-s
    "more members than any client sends": (
        "gzip",
        gzip.compress(b"", mtime=0) * MAX_MEMBERS + gzip.compress(TEXT),
        100_000,
        400,
        f"the gzip body has more than {MAX_MEMBERS:,} members",
    ),
}


@pytest.mark.parametrize("name", REFUSED)
def test_refused_bodies(name: str) -> None:
    header, body, limit, status, message = REFUSED[name]
    with pytest.raises(ApiError) as caught:
        decoded(body, header, limit)
    assert caught.value.status == status and caught.value.message.startswith(message), caught.value.message


def test_each_byte_of_a_body_of_many_members_is_handed_to_the_inflater_a_bounded_number_of_times(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A member's end handed the inflater's copy of all the bytes after it back (``unused_data``): a body
    of n members cost n times its length (measured: 26,214 empty members, 512 KB, 171 ms against 1 ms for
    one member of the same length). Each member is now fed ``FEED`` bytes at a time, so what is handed
    over is at most the body plus ``FEED`` bytes a member."""
    handed: list[int] = []
    real = zlib.decompressobj

    class Counted:
        def __init__(self, wbits: int) -> None:
            self.inflater = real(wbits)

        def decompress(self, data: bytes, max_length: int = 0) -> bytes:
            handed.append(len(data))
            return self.inflater.decompress(data, max_length)

        def __getattr__(self, name: str) -> object:
            return getattr(self.inflater, name)

    monkeypatch.setattr(content_encoding.zlib, "decompressobj", Counted)
    chunks = [random.Random(i).randbytes(4_000) for i in range(300)]  # incompressible: ~4 KB a member
    body = b"".join(gzip.compress(c) for c in chunks)
    assert decoded(body, "gzip", 2_000_000) == b"".join(chunks)
    assert sum(handed) <= len(body) + len(chunks) * FEED


def test_a_body_of_exactly_the_limit_inflates() -> None:
    assert decoded(gzip.compress(b"x" * 100), "gzip", 100) == b"x" * 100


@given(st.binary(max_size=300), st.integers(min_value=1, max_value=300))
def test_inflated_within_the_limit_or_refused(data: bytes, limit: int) -> None:
    packed = gzip.compress(data)
    if len(packed) > limit or len(data) > limit:
        with pytest.raises(ApiError) as caught:
            decoded(packed, "gzip", limit)
        assert caught.value.status == 413
    else:
        assert decoded(packed, "gzip", limit) == data


ORIGIN = "http://127.0.0.1:9"  # the browser's page; its requests take the full application


@pytest.fixture
def api(store: Store) -> Iterator[tuple[str, str, Store]]:
    with store.begin() as conn:
        _, write = create_key(conn, "write", "site", 0)
    settings = Settings(database_url="unused", run_processor=False, cors_origins=[ORIGIN])
    with serving(create_app(settings, store=store)) as url:
        yield url, write, store


LANES = {"tracking lane": {}, "full application": {"Origin": ORIGIN}}


@pytest.mark.parametrize("lane", LANES)
def test_compressed_requests_over_http(api: tuple[str, str, Store], lane: str) -> None:
    url, write, store = api
    headers = {**basic(write), **LANES[lane], "Content-Type": "application/json"}
    batch = {
        "batch": [{"type": "track", "userId": "u", "event": "E", "messageId": f"b{i}"} for i in range(3)]
    }
    single = {"userId": "u", "event": "E", "messageId": "s"}
    bomb = gzip.compress(b'{"batch": [' + b" " * 600_000 + b"]}")
    with httpx.Client(base_url=url) as client:
        ok_batch = client.post(
            "/v1/batch",
            content=gzip.compress(orjson.dumps(batch)),
            headers={**headers, "Content-Encoding": "gzip"},
        )
        ok_single = client.post(
            "/v1/t",
            content=zlib.compress(orjson.dumps(single)),
            headers={**headers, "Content-Encoding": "deflate"},
        )
        # two Content-Encoding headers are one list: gzip applied first, then deflate
        layered = client.post(
            "/v1/track",
            content=zlib.compress(gzip.compress(orjson.dumps({**single, "messageId": "l"}))),
            headers=[*headers.items(), ("Content-Encoding", "gzip"), ("Content-Encoding", "deflate")],
        )
        too_big = client.post("/v1/batch", content=bomb, headers={**headers, "Content-Encoding": "gzip"})
        broken = client.post(
            "/v1/track", content=b"\x1f\x8b nonsense", headers={**headers, "Content-Encoding": "gzip"}
        )
        brotli = client.post("/v1/track", content=b"{}", headers={**headers, "Content-Encoding": "br"})
    assert (ok_batch.status_code, ok_batch.json()["accepted"]) == (200, 3)
    assert (ok_single.status_code, ok_single.json()["accepted"]) == (200, 1)
    assert (layered.status_code, layered.json()["accepted"]) == (200, 1)
    # 600,000 spaces inflate past the 500 KB (512,000 bytes) batch limit
    assert too_big.status_code == 413
    assert too_big.json() == {
        "ok": False,
        "error": "the gzip body inflates to more than 512000 bytes; at most 512000 are allowed",
        "errors": [],
        "code": "payload_too_large",
        "message": "the gzip body inflates to more than 512000 bytes; at most 512000 are allowed",
    }
    assert (broken.status_code, broken.json()["code"]) == (400, "invalid_request")
    assert (brotli.status_code, brotli.json()["code"]) == (415, "unsupported_media_type")
    with store.connect() as conn:
        assert stored_message_ids(conn) == {"b0", "b1", "b2", "s", "l"}
