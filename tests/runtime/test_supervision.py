"""Supervision: backoff after traps, quarantine of crash loops, reset, cadence."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.cycle import FAULT_COLOR
from wasihost.host import Host
from wasihost.runtime.supervision import SupervisionPolicy, Supervisor

MakeConfig = Callable[..., HostConfig]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_backoff_doubles_and_success_resets_it() -> None:
    clock = FakeClock()
    supervisor = Supervisor(SupervisionPolicy(1.0, 4.0, quarantine_after=10), clock)
    delays = []
    for _ in range(4):
        supervisor.on_trap()
        delays.append(supervisor.retry_in_s())
    assert delays == [1.0, 2.0, 4.0, 4.0]  # capped at backoff_max
    supervisor.on_success()
    supervisor.on_trap()
    assert supervisor.retry_in_s() == 1.0


def test_quarantine_counts_traps_in_the_window_only() -> None:
    clock = FakeClock()
    supervisor = Supervisor(SupervisionPolicy(quarantine_after=3, window_s=60), clock)
    for _ in range(2):
        supervisor.on_trap()
    clock.now += 61  # the first two fall out of the window
    supervisor.on_trap()
    assert not supervisor.quarantined
    supervisor.on_trap()
    supervisor.on_trap()
    assert supervisor.quarantined


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def crash_host(
    make_config: MakeConfig,
    board: SimBoard,
    clock: FakeClock,
    tmp_path: Path,
    built: dict[str, Path],
) -> Iterator[Host]:
    target = tmp_path / "crashy.wasm"
    target.write_bytes(built["chaos"].read_bytes())
    config = make_config(
        {
            "crashy": {
                "wasm": str(target),
                "world": "dht22-plugin",
                "led": 4,
                "settings": {"mode": "panic"},
            },
            "steady": {
                "built": "chaos",
                "world": "dht22-plugin",
                "led": 5,
                "settings": {"led": 5},
            },
        },
        supervision={"quarantine_after_traps": 3, "backoff_initial_seconds": 1},
    )
    host = Host(config, board=board, monotonic=clock)
    host.load_plugins()
    yield host
    host.close()


async def test_crash_loop_backs_off_then_is_quarantined(
    crash_host: Host, clock: FakeClock, board: SimBoard
) -> None:
    crashy = crash_host.plugins["crashy"]
    await crash_host.cycle.run_once()
    assert crashy.stats.traps == 1 and crashy.state == "backoff"
    await crash_host.cycle.run_once()  # still backing off: not polled
    assert crashy.stats.traps == 1
    clock.now += 1.0
    await crash_host.cycle.run_once()
    assert crashy.stats.traps == 2
    clock.now += 2.0
    await crash_host.cycle.run_once()
    assert crashy.stats.traps == 3
    assert crashy.state == "quarantined"
    assert crash_host.statuses()["crashy"]["quarantines"] == 1

    clock.now += 3600  # long past any backoff: a quarantine stays until acted on
    polls = crashy.stats.polls
    colors = []
    for _ in range(2):
        await crash_host.cycle.run_once()
        colors.append(board.leds[4])
    assert crashy.stats.polls == polls
    assert FAULT_COLOR in colors and (0, 0, 0) in colors  # blinking
    assert crash_host.plugins["steady"].stats.polls == crash_host.state.cycle  # every cycle

    crashy.reset()  # the operator lifts it; the same bug traps again
    await crash_host.cycle.run_once()
    assert crashy.stats.traps == 4 and crashy.state == "backoff"


async def test_a_new_version_lifts_the_quarantine(
    crash_host: Host, clock: FakeClock, built: dict[str, Path]
) -> None:
    crashy = crash_host.plugins["crashy"]
    for _ in range(3):
        await crash_host.cycle.run_once()
        clock.now += 10
    assert crashy.state == "quarantined"
    # Any new file lifts the quarantine (here a rebuild of the same plugin).
    name = b"wasihost-test"
    payload = bytes([len(name)]) + name + b"v2"
    partial = crashy.spec.wasm.with_name(".partial")
    partial.write_bytes(built["chaos"].read_bytes() + b"\x00" + bytes([len(payload)]) + payload)
    os.replace(partial, crashy.spec.wasm)
    assert await crash_host.reloader.reload("crashy") is True
    assert crashy.state == "running"


async def test_a_plugin_at_its_deadline_does_not_cost_the_others_their_poll(
    make_config: MakeConfig, make_host: Callable[[HostConfig], Host]
) -> None:
    host = make_host(
        make_config(
            {
                "spinner": {
                    "built": "chaos",
                    "world": "dht22-plugin",
                    "timeout_ms": 100,
                    "settings": {"mode": "loop"},
                },
                "a": {"built": "chaos", "world": "dht22-plugin"},
                "b": {"built": "chaos", "world": "dht22-plugin"},
            }
        )
    )
    await host.cycle.run_once()
    assert host.plugins["spinner"].stats.traps == 1
    assert host.plugins["a"].stats.polls == host.plugins["b"].stats.polls == 1
    assert host.state.plugins["a"].reading is not None
