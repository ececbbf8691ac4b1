"""Per-plugin limits: deadlines, memory, stack, output, actuator rates, error sizes.

Grants are tested together in tests/capabilities/test_grants.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig, parse_config
from wasihost.errors import ConfigError, GuestError, PluginTrap
from wasihost.host import Host

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


def chaos(**settings: object) -> dict[str, object]:
    return {"built": "chaos", "world": "dht22-plugin", "settings": settings}


@pytest.mark.parametrize(
    ("mode", "cause"),
    [("allocate", "memory"), ("recurse", "stack"), ("loop", "deadline")],
)
def test_runaway_guests_trap_and_the_next_poll_is_fresh(
    make_config: MakeConfig, make_host: MakeHost, monotonic: Any, mode: str, cause: str
) -> None:
    host = make_host(make_config({"bad": {**chaos(mode=mode), "timeout_ms": 200}, "good": chaos()}))
    with pytest.raises(PluginTrap):
        host.plugins["bad"].call()
    assert host.plugins["bad"].stats.traps == 1
    assert host.plugins["good"].call()["poll_count"] == 1
    monotonic.advance()  # past the backoff
    with pytest.raises(PluginTrap):  # a fresh instance, trapping again the same way
        host.plugins["bad"].call()
    assert host.plugins["bad"].stats.restarts == 1


def test_memory_cap_is_per_plugin(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"bad": {**chaos(mode="allocate"), "max_memory_mb": 48}}))
    with pytest.raises(PluginTrap):
        host.plugins["bad"].call()


def test_buzzer_chatter_is_rate_limited(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard
) -> None:
    host = make_host(
        make_config({"chatter": {**chaos(mode="beep"), "max_actuator_changes_per_minute": 3}})
    )
    outcomes = []
    for _ in range(5):
        try:
            host.plugins["chatter"].call()
            outcomes.append("beep")
        except GuestError as exc:
            outcomes.append(exc.reason)
    assert outcomes[:3] == ["beep"] * 3
    assert outcomes[3] == "refused: buzzer changes limited to 3 per minute for chatter"
    assert len(board.beeps) == 3
    assert host.statuses()["chatter"]["refused_by_kind"] == {"buzzer-rate": 2}


def test_the_rate_limit_counts_on_the_hosts_clock(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard, monotonic: Any
) -> None:
    """A minute of the host's clock frees the limit, whatever the real time: the soak
    benchmark's simulated minutes, and any test, see what a Pi would."""
    host = make_host(
        make_config({"chatter": {**chaos(mode="beep"), "max_actuator_changes_per_minute": 3}})
    )
    plugin = host.plugins["chatter"]
    for _ in range(3):
        plugin.call()
    with pytest.raises(GuestError, match="limited to 3 per minute"):
        plugin.call()
    monotonic.advance(60.0)
    plugin.call()  # a minute later on the host's clock
    assert len(board.beeps) == 4


def test_print_flood_is_capped(
    make_config: MakeConfig, make_host: MakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    host = make_host(
        make_config(
            {"loud": {**chaos(mode="flood", lines=500, width=5000), "max_log_lines_per_minute": 20}}
        )
    )
    caplog.set_level(logging.INFO, logger="wasihost.guest")
    host.plugins["loud"].call()
    guest_lines = [r.getMessage() for r in caplog.records if r.name == "wasihost.guest"]
    printed = [line for line in guest_lines if line.startswith("[loud] xxx")]
    assert len(printed) == 20
    assert all(len(line) < 1100 for line in printed)  # each cut to 1000 characters
    assert any("output limit of 20 lines per minute reached" in line for line in guest_lines)
    assert host.statuses()["loud"]["dropped_log_lines"] == 480


def test_huge_error_strings_are_cut(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"verbose": chaos(mode="huge_error", size=10_000_000)}))
    with pytest.raises(GuestError) as info:
        host.plugins["verbose"].call()
    assert len(info.value.reason) < 600
    assert info.value.reason.endswith("chars cut]")


async def test_non_finite_values_are_not_published(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(make_config({"odd": chaos(mode="nan")}))
    await host.cycle.run_once()
    reading = host.state.to_json()["readings"]["odd"]
    names = {m["name"] for m in reading["measurements"]}
    assert "temperature" not in names and "humidity" not in names


def test_timeout_longer_than_the_interval() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.x\.timeout_ms: 5000 ms is longer"):
        parse_config({"polling": {"interval_seconds": 1}, "plugins": {"x": {"timeout_ms": 5000}}})
    # The default deadline is clamped to a short interval instead.
    config = parse_config({"polling": {"interval_seconds": 0.5}, "plugins": {"x": {}}})
    assert config.plugins["x"].timeout_ms == 500
