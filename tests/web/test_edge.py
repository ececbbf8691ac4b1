"""The event loop's exception handler at the HTTP edge (web/edge.py): running out of
descriptors is one line a minute, and asyncio's own retry of a listener already
closed at shutdown is no error of ours."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from wasihost.web.edge import ResourceWarnings


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    made = asyncio.new_event_loop()
    yield made
    made.close()


class Handle:
    """Stands in for the TimerHandle asyncio logs: only its repr is read."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


def test_running_out_of_descriptors_is_one_line_a_minute(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    handler = ResourceWarnings(loop)
    context: dict[str, Any] = {
        "message": "socket.accept() out of system resource",
        "exception": OSError(24, "Too many open files"),
    }
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            handler(loop, context)
    assert len(caplog.records) == 1 and "cannot accept connections" in caplog.text
    assert handler.suppressed == 4


def test_the_accept_retry_of_a_listener_closed_at_shutdown_is_not_an_error(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    """Out of descriptors, asyncio retries accepting a second later; if the host shut
    its listener down meanwhile, the retry finds fd -1 and asyncio logs a traceback
    (seen in the hostile HTTP test on a busy machine). Nothing is wrong then."""
    handler = ResourceWarnings(loop)
    context = {
        "message": "Exception in callback BaseSelectorEventLoop._start_serving(<...>)",
        "exception": ValueError("Invalid file descriptor: -1"),
        "handle": Handle("<TimerHandle BaseSelectorEventLoop._start_serving(<...>)>"),
    }
    with caplog.at_level(logging.DEBUG):
        handler(loop, context)
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "Traceback" not in caplog.text


def test_other_errors_go_to_the_handler_before(
    loop: asyncio.AbstractEventLoop, caplog: pytest.LogCaptureFixture
) -> None:
    handler = ResourceWarnings(loop)
    context = {"message": "Exception in callback something()", "exception": ValueError("x")}
    with caplog.at_level(logging.ERROR):
        handler(loop, context)
    assert "Exception in callback something()" in caplog.text
