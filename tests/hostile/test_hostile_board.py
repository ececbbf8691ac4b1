"""The hostile suite, the board (issue 14, class 1's defence in depth).

A forged or buggy plugin once got NaN into the LED buffer, and the Pi board's
strip driver raised ``ValueError`` on it: the exception was not a
``WasihostError``, so it ended the host in its first cycle. Whatever a board
raises, wherever the host calls it outside a capability (capabilities have
their own guard, see test_hostile_floods.py), the cycle reports it and goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from wasihost.boards.base import BoardProblem
from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host

MakeConfig = Callable[..., HostConfig]


def raising(exc: Exception) -> Callable[..., Any]:
    def fail(*args: Any) -> Any:
        raise exc

    return fail


async def test_whatever_the_board_raises_the_cycle_goes_on(
    make_config: MakeConfig,
    make_host: Callable[[HostConfig], Host],
    board: SimBoard,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    board.set_dht22(21.0, 45.0)
    host = make_host(make_config({"dht22": {"led": 1}}))
    monkeypatch.setattr(board, "write_leds", raising(ValueError("cannot convert float NaN")))
    monkeypatch.setattr(board, "problems", raising(RuntimeError("sysfs vanished")))
    caplog.set_level(logging.INFO)
    for _ in range(3):
        await host.after_cycle(await host.cycle.run_once())
    assert host.state.cycle == 3
    assert host.statuses()["dht22"]["polls"] == 3
    assert host.state.plugins["dht22"].reading is not None
    assert host.cycle.led_write_errors == 3
    problems = host.board_problems()
    assert [p.device for p in problems] == ["system"]
    assert "RuntimeError: sysfs vanished" in problems[0].what
    messages = [r.getMessage() for r in caplog.records]
    assert sum("LED write failed" in m for m in messages) == 1  # once, not every cycle
    assert sum("sysfs vanished" in m for m in messages) == 1


def test_board_problems_pass_through_when_the_board_answers(
    make_config: MakeConfig, make_host: Callable[[HostConfig], Host], board: SimBoard,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    host = make_host(make_config({"dht22": {"led": 1}}))
    problem = BoardProblem("dht22", "DHT22", "no overlay", "add dtoverlay=dht11")
    monkeypatch.setattr(board, "problems", lambda: [problem])
    assert host.board_problems() == [problem]
