"""The poll cycle: one LED write per cycle, isolation, normalised app state."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.host import Host

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


def chaos(**settings: object) -> dict[str, object]:
    return {"built": "chaos", "world": "dht22-plugin", "settings": settings}


async def test_one_led_write_per_cycle_with_three_plugins_writing(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard
) -> None:
    config = make_config(
        {
            "a": {**chaos(led=3), "led": 3},
            "b": {**chaos(led=4), "led": 4},
            "c": {**chaos(led=5), "led": 5},
        }
    )
    host = make_host(config)
    for cycle in range(1, 4):
        await host.cycle.run_once()
        assert board.led_writes == cycle
    # Every plugin's third poll is on the strip, written in that one write.
    assert board.leds[3] == board.leds[4] == board.leds[5] == (30, 20, 30)


async def test_error_and_trap_leave_other_plugins_polling(
    make_config: MakeConfig, make_host: MakeHost
) -> None:
    host = make_host(
        make_config(
            {
                "good": chaos(mode="counter"),
                "bad": chaos(mode="error"),
                "crashy": chaos(mode="panic"),
            }
        )
    )
    for _ in range(3):
        await host.cycle.run_once()
    readings = host.state.to_json()["readings"]
    assert readings["good"]["status"]["poll_count"] == 3
    assert readings["bad"]["error"] == "sensor unplugged (on purpose)"
    assert "unhandled guest exception" not in str(readings["crashy"]["measurements"])
    assert "trapped in sensor-logic.poll" in readings["crashy"]["error"]
    statuses = host.statuses()
    assert statuses["bad"]["errors"] == 3
    # After its trap the plugin backs off (1 s by default) instead of being
    # re-instantiated every cycle; these cycles ran back to back.
    assert statuses["crashy"]["traps"] == 1
    assert statuses["crashy"]["state"] == "backoff"
    assert statuses["good"]["errors"] == statuses["good"]["traps"] == 0


async def test_seed_plugins_fill_the_app_state(seed_host: Host, board: SimBoard) -> None:
    board.set_dht22(23.0, 50.0)
    await seed_host.cycle.run_once()
    readings = seed_host.state.to_json()["readings"]
    assert set(readings) == {"pi-monitor", "dht22", "bme680"}
    dht = {m["name"]: m for m in readings["dht22"]["measurements"]}
    assert dht["temperature"]["value"] == 23.0
    assert dht["temperature"]["unit"] == "°C"
    assert dht["humidity"]["value"] == 50.0
    assert 11.0 < dht["dew_point"]["value"] < 13.0
    pi = {m["name"] for m in readings["pi-monitor"]["measurements"]}
    assert pi == {"cpu_temperature", "cpu_load", "memory_used", "uptime"}
    for name in readings:
        assert readings[name]["error"] is None, readings[name]["error"]
    assert board.led_writes == 1
    assert board.leds[1] == (0, 200, 0)  # comfortable: green


async def test_failed_dht22_read_reports_last_good_value_as_stale(
    seed_host: Host, board: SimBoard
) -> None:
    board.set_dht22(21.0, 45.0)
    await seed_host.cycle.run_once()
    board.fail_next_dht22_reads(1)
    await seed_host.cycle.run_once()
    dht22 = seed_host.state.to_json()["readings"]["dht22"]
    assert dht22["status"]["stale"] is True
    assert dht22["measurements"][0]["value"] == 21.0
    assert dht22["error"] is None


async def test_sensor_data_is_logged(
    seed_host: Host, board: SimBoard, caplog: pytest.LogCaptureFixture
) -> None:
    board.set_dht22(21.0, 45.0)
    caplog.set_level(logging.INFO, logger="wasihost.cycle")
    await seed_host.cycle.run_once()
    assert any(line.startswith("[dht22] temperature=21°C humidity=45%") for line in caplog.messages)


def test_non_finite_status_values_become_null() -> None:
    from wasihost.readings import normalise

    reading = normalise(
        "p",
        "dht22-plugin",
        {"temperature_c": float("nan"), "age_ms": float("inf"), "stale": False},
        1,
    )
    assert reading.measurements == ()
    assert reading.status == {"age_ms": None, "stale": False}


async def test_plugin_text_in_the_sensor_log_line_is_escaped(
    make_config: MakeConfig,
    make_host: MakeHost,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    host = make_host(make_config({"probe": {"built": "generic", "world": "sensor-plugin"}}))
    forged = {
        "name": "t",
        "value": 1.0,
        "unit": "C\n[dht22] forged",
        "device_class": "temperature",
        "status": "ok\x1b[2J\rX",
    }

    async def forging(*args: object) -> list[dict[str, object]]:
        return [forged]

    monkeypatch.setattr(host.plugins["probe"], "call_async", forging)
    caplog.set_level(logging.INFO, logger="wasihost.cycle")
    await host.cycle.run_once()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("[probe]")]
    assert lines == ["[probe] t=1C\\n[dht22] forged t_status=ok\\x1b[2J\\rX"]
    # The reading itself keeps the plugin's text; only the log line is escaped.
    reading = host.state.plugins["probe"].reading
    assert reading is not None and reading.status["t_status"] == "ok\x1b[2J\rX"
