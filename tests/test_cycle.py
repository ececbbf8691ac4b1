"""The poll cycle: one LED write per cycle, isolation, normalised app state."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.config import HostConfig
from wasihost.errors import PluginError
from wasihost.host import Host

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


class SteppedClock(Protocol):
    """conftest's ``monotonic`` fixture: the host's monotonic clock, moved by hand."""

    def advance(self, seconds: float = ...) -> None: ...


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


# -- sensor filters ([plugins.<name>.filters], wasihost.filters) -----------------


def _state_messages(host: Host, plugin: str) -> list[dict[str, object]]:
    """The state payloads of ``plugin`` waiting in the MQTT outbox, oldest first."""
    import json

    assert host.outbox is not None and host.mqtt is not None
    topic = host.mqtt.topics.state(plugin)
    return [json.loads(m.payload) for _, m in host.outbox.peek(1000) if m.topic == topic]


def _mqtt(tmp_path: Path) -> dict[str, object]:
    return {"enabled": True, "outbox_path": str(tmp_path / "outbox.sqlite3")}


async def test_filtered_values_reach_the_state_history_and_mqtt(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard, tmp_path: Path
) -> None:
    filters = {
        "temperature": [{"offset": -0.5}, {"median": {"window_size": 3, "send_every": 1}}],
        "humidity": [{"throttle": 60}],
    }
    host = make_host(make_config({"dht22": {"led": 1, "filters": filters}}, mqtt=_mqtt(tmp_path)))
    for temperature in (20.0, 30.0, 22.0):
        board.set_dht22(temperature, 45.0)
        await host.after_cycle(await host.cycle.run_once())
    # The medians of 19.5; 19.5, 29.5; 19.5, 29.5, 21.5.
    expected = [19.5, 24.5, 21.5]
    shown = {m.name: m.value for m in host.state.plugins["dht22"].reading.measurements}
    assert shown["temperature"] == 21.5
    assert shown["humidity"] == 45.0  # held back by the throttle, still shown
    assert host.history is not None
    stored = host.history.query("dht22", "temperature", 0, 2**62).points
    assert [v for _, v in stored] == expected
    assert len(host.history.query("dht22", "humidity", 0, 2**62).points) == 1  # throttled
    states = _state_messages(host, "dht22")
    assert [s["temperature"] for s in states] == expected
    # A held-back value is not stored again, but MQTT carries it at the value last let
    # out: null would make Home Assistant show "unknown" between two throttled values.
    assert [s["humidity"] for s in states] == [45.0, 45.0, 45.0]


async def test_a_reload_keeps_the_filters_window(
    tmp_path: Path, source_host: Callable[..., Host]
) -> None:
    root = Path(__file__).resolve().parent
    folder = tmp_path / "counter"
    folder.mkdir()
    (folder / "plugin.toml").write_text('world = "sensor-plugin"\nstate = true\n')
    template = (root / "source-plugins" / "counter_app.py.tmpl").read_text()
    (folder / "app.py").write_text(template.replace("VERSION", "1.0.0"))
    median = [{"median": {"window_size": 3, "send_every": 1}}]
    host = source_host(
        {"counter": {"source": str(folder), "world": "sensor-plugin", "filters": {"polls": median}}}
    )
    got = [(await host.cycle.run_once())[0].measurements[0].value for _ in range(2)]
    assert got == [1.0, 1.5]
    (folder / "app.py").write_text(template.replace("VERSION", "2.0.0"))
    assert await host.reloader.reload("counter")
    readings = await host.cycle.run_once()
    # The count went on (3, the plugin's state) and so did the window: the median
    # of 1, 2, 3; a window emptied by the reload would have given 3.
    assert readings[0].measurements[0].value == 2.0


async def test_a_timeout_makes_a_quiet_value_unavailable(
    make_config: MakeConfig,
    make_host: MakeHost,
    board: SimBoard,
    monotonic: SteppedClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    filters = {"humidity": [{"timeout": 10}]}
    host = make_host(make_config({"dht22": {"led": 1, "filters": filters}}, mqtt=_mqtt(tmp_path)))
    board.set_dht22(21.0, 45.0)
    await host.after_cycle(await host.cycle.run_once())

    async def unplugged(*args: object) -> object:
        raise PluginError("dht22", "sensor unplugged")

    monkeypatch.setattr(host.plugins["dht22"], "call_async", unplugged)
    monotonic.advance(5)
    assert await host.cycle.run_once() == []  # a failed poll, not yet quiet for 10 s
    monotonic.advance(6)
    readings = await host.cycle.run_once()
    await host.after_cycle(readings)
    (reading,) = readings
    assert reading.measurements == ()
    assert reading.status == {"humidity_status": "unavailable"}
    view = host.state.plugins["dht22"]
    assert view.error == "sensor unplugged"  # the poll's error stays
    assert view.reading is not None
    assert "humidity" not in {m.name for m in view.reading.measurements}
    assert view.reading.status["humidity_status"] == "unavailable"
    assert host.state.to_json()["readings"]["dht22"]["status"]["humidity_status"] == "unavailable"
    last = _state_messages(host, "dht22")[-1]
    assert last["humidity"] is None and last["status"] == {"humidity_status": "unavailable"}
    monotonic.advance(2)
    assert await host.cycle.run_once() == []  # said once


async def test_a_filter_on_a_name_the_plugin_never_reports_is_warned_about_once(
    make_config: MakeConfig, make_host: MakeHost, caplog: pytest.LogCaptureFixture
) -> None:
    host = make_host(make_config({"dht22": {"led": 1, "filters": {"temprature": [{"offset": 1}]}}}))
    caplog.set_level(logging.WARNING, logger="wasihost.cycle")
    for _ in range(2):
        await host.cycle.run_once()
    warnings = [r.getMessage() for r in caplog.records if "temprature" in r.getMessage()]
    assert len(warnings) == 1
    assert "it reports: temperature, humidity" in warnings[0]
