"""The access log of ``leadscore serve`` names no person: query parameters that hold an e-mail, an
unsubscribe token, a search or a user id, and path segments holding an e-mail, are written redacted (an
erasure cannot reach a log file). Other parameters stay readable for operations."""

from __future__ import annotations

import logging
import logging.config

import pytest

from leadscore.cli.access_log import redacted_path
from leadscore.cli.serve_banner import log_config


@pytest.mark.parametrize(
    ("path", "written"),
    [
        ("/v1/unsubscribe?email=ann%40x.com&token=abc", "/v1/unsubscribe?email=[redacted]&token=[redacted]"),
        ("/v1/leads/ann%40x.com/explanation?score=core", "/v1/leads/[redacted]/explanation?score=core"),
        ("/v1/leads/ann@x.com", "/v1/leads/[redacted]"),
        ("/leads?q=Ann+Lee&band=hot&min_score=60", "/leads?q=[redacted]&band=hot&min_score=60"),
        ("/v1/leads?userId=u-1&limit=5", "/v1/leads?userId=[redacted]&limit=5"),
        ("/v1/track", "/v1/track"),
        ("/leads/42?score=analytics", "/leads/42?score=analytics"),
        # hostile request lines: a NUL, bytes that are no UTF-8, a name with no value, an e-mail in a
        # percent-encoded upper-case path segment
        ("/x%00y?q=%00&band=hot", "/x%00y?q=[redacted]&band=hot"),
        ("/%ff%fe?email=%ff", "/%ff%fe?email=[redacted]"),
        ("/a?email", "/a?email=[redacted]"),
        ("/v1/leads/ANN%40X.COM", "/v1/leads/[redacted]"),
    ],
)
def test_personal_parts_of_a_request_path_are_redacted(path: str, written: str) -> None:
    assert redacted_path(path) == written


def test_the_servers_access_log_writes_the_redacted_path(capsys: pytest.CaptureFixture[str]) -> None:
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "leadscore")
    before = {n: (lg.handlers[:], lg.propagate, lg.level) for n in names for lg in [logging.getLogger(n)]}
    logging.config.dictConfig(log_config())
    try:
        logging.getLogger("uvicorn.access").info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/v1/unsubscribe?email=ann%40x.com&token=t",
            "1.1",
            200,
        )
        out = capsys.readouterr().out
    finally:  # the other tests' loggers as they were (``leadscore`` propagating to pytest's capture)
        for name, (handlers, propagate, level) in before.items():
            logger = logging.getLogger(name)
            logger.handlers[:], logger.propagate = handlers, propagate
            logger.setLevel(level)
    assert '"GET /v1/unsubscribe?email=[redacted]&token=[redacted] HTTP/1.1" 200' in out
    assert "ann" not in out


def test_a_very_long_request_path_is_written_whole_without_its_personal_values() -> None:
    query = "&".join(f"k{i}=v" for i in range(20_000))
    assert redacted_path(f"/leads?{query}&q=ann") == f"/leads?{query}&q=[redacted]"
    assert redacted_path("/" * 10_000) == "/" * 10_000
