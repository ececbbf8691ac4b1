"""Tests for sht31: the driver on its own, and the plugin natively (milliseconds) and as
the built component, on the simulated board with its emulated SHT31 at 0x44."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.errors import GuestError, PluginError
from wasihost.testing import ComponentPlugin, NativePlugin, plugin_under_test

HERE = Path(__file__).resolve().parent
LED = 3
POLL_INTERVAL_MS = 2000

Plugin = NativePlugin | ComponentPlugin
Mode = Literal["native", "component"]


def _load_driver() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sht31_driver_under_test", HERE / "driver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


driver = _load_driver()

# ---------------------------------------------------------------- the driver, no host


def test_crc_matches_the_datasheet_example() -> None:
    assert driver.crc8(b"\xbe\xef") == 0x92  # SHT3x-DIS, CRC example


def _frame(t_raw: int, rh_raw: int) -> bytes:
    t, rh = t_raw.to_bytes(2, "big"), rh_raw.to_bytes(2, "big")
    return t + bytes([driver.crc8(t)]) + rh + bytes([driver.crc8(rh)])


def test_decode_uses_the_datasheet_formulas() -> None:
    assert driver.decode(_frame(0, 0)) == (pytest.approx(-45.0), pytest.approx(0.0))
    assert driver.decode(_frame(0xFFFF, 0xFFFF)) == (pytest.approx(130.0), pytest.approx(100.0))
    temperature, humidity = driver.decode(_frame(0x6666, 0x8000))
    assert temperature == pytest.approx(-45 + 175 * 0x6666 / 65535)
    assert humidity == pytest.approx(100 * 0x8000 / 65535)


@pytest.mark.parametrize(("index", "word"), [(2, "temperature"), (5, "humidity")])
def test_decode_checks_the_crc_of_both_words(index: int, word: str) -> None:
    frame = bytearray(_frame(0x6666, 0x8000))
    frame[index] ^= 0x01
    with pytest.raises(driver.CrcError, match=f"CRC error in the {word} word"):
        driver.decode(bytes(frame))


def test_decode_refuses_a_short_read() -> None:
    with pytest.raises(driver.DriverError, match="expected 6 bytes, got 5"):
        driver.decode(_frame(1, 2)[:5])


def test_chip_sends_the_single_shot_command_and_reads_six_bytes() -> None:
    calls: list[tuple[int, bytes, int]] = []

    def transfer(address: int, data: bytes, read_len: int) -> bytes:
        calls.append((address, data, read_len))
        return _frame(0x6666, 0x8000) if read_len else b""

    chip = driver.Chip(transfer, 0x45, "medium")
    chip.start_measurement()
    chip.read_measurement()
    assert calls == [(0x45, b"\x24\x0b", 0), (0x45, b"", 6)]
    assert chip.measurement_ms == 7


def test_dew_point() -> None:
    assert driver.dew_point_c(25.0, 60.0) == pytest.approx(16.7, abs=0.1)
    assert driver.dew_point_c(20.0, 100.0) == pytest.approx(20.0)
    assert driver.dew_point_c(20.0, 0.0) is None


# ---------------------------------------------------------------- the plugin


class Clock:
    def __init__(self) -> None:
        self.now_ms = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int = POLL_INTERVAL_MS) -> None:
        self.now_ms += ms


class BadCrcChip:
    """A fake chip: the real SHT31 behind a noisy bus that flips the humidity CRC."""

    def __init__(self, chip: Any) -> None:
        self.chip = chip

    def transfer(self, data: bytes, read_len: int) -> bytes:
        answer = bytearray(self.chip.transfer(data, read_len))
        if read_len == 6:
            answer[5] ^= 0xFF
        return bytes(answer)


class Setup:
    def __init__(self, mode: Mode) -> None:
        self.mode: Mode = mode
        self.board = SimBoard(seed=1)
        self.clock = Clock()
        self.opened: list[Plugin] = []

    def plugin(
        self,
        settings: dict[str, Any] | None = None,
        i2c_addresses: frozenset[int] = frozenset({0x44}),
    ) -> Plugin:
        plugin = plugin_under_test(
            HERE,
            self.mode,
            board=self.board,
            grants=Grants(leds=frozenset({LED}), i2c_addresses=i2c_addresses),
            settings={"led": LED} if settings is None else settings,
            clock_ms=self.clock,
        )
        self.opened.append(plugin)
        return plugin

    def led(self) -> tuple[int, int, int]:
        """The colour the newest plugin left in its LED buffer."""
        return self.opened[-1].leds.snapshot()[LED]


@pytest.fixture(params=["native", "component"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    if request.param == "component" and not (HERE.parent.parent / "build" / "sht31.wasm").exists():
        pytest.skip("build the component first: wasihost build sht31")
    under_test = Setup(request.param)
    yield under_test
    for plugin in under_test.opened:
        plugin.close()


def values_of(poll: Callable[[], list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in poll()}


def test_describe_lists_the_measurements(setup: Setup) -> None:
    info = setup.plugin().describe()
    assert [(m["name"], m["unit"], m["device_class"]) for m in info["measurements"]] == [
        ("temperature", "°C", "temperature"),
        ("humidity", "%", "humidity"),
        ("dew_point", "°C", "temperature"),
    ]


def test_first_poll_starts_a_measurement_the_next_reads_it(setup: Setup) -> None:
    setup.board.set_sht31(23.5, 61.0)
    plugin = setup.plugin()
    assert plugin.poll() == []  # nothing in flight yet: start one, report nothing
    assert setup.led() == (0, 0, 40)
    setup.clock.advance()
    values = values_of(plugin.poll)
    assert values["temperature"]["value"] == pytest.approx(23.5, abs=0.1)
    assert values["temperature"]["unit"] == "°C"
    assert values["temperature"]["device_class"] == "temperature"
    assert values["humidity"]["value"] == pytest.approx(61.0, abs=0.2)
    assert values["humidity"]["unit"] == "%"
    assert values["humidity"]["device_class"] == "humidity"
    assert values["dew_point"]["value"] == pytest.approx(15.5, abs=0.2)
    assert all(m["status"] is None for m in values.values())
    assert setup.led() == (0, 60, 200)  # humid


def test_values_follow_the_chip_one_poll_later(setup: Setup) -> None:
    plugin = setup.plugin()
    setup.board.set_sht31(20.0, 45.0)
    plugin.poll()  # starts the measurement of 20 °C / 45 %
    setup.board.set_sht31(30.0, 20.0)
    setup.clock.advance()
    values = values_of(plugin.poll)  # reads 20/45, starts 30/20
    assert values["temperature"]["value"] == pytest.approx(20.0, abs=0.1)
    assert setup.led() == (0, 160, 0)  # comfortable
    setup.clock.advance()
    values = values_of(plugin.poll)
    assert values["temperature"]["value"] == pytest.approx(30.0, abs=0.1)
    assert values["humidity"]["value"] == pytest.approx(20.0, abs=0.2)
    assert setup.led() == (200, 90, 0)  # dry


def test_a_poll_before_the_measurement_is_done_is_an_error_not_a_wait(setup: Setup) -> None:
    plugin = setup.plugin()
    plugin.poll()
    setup.clock.advance(5)
    with pytest.raises(GuestError, match="not finished"):
        plugin.poll()
    setup.clock.advance(20)  # the measurement stayed in flight
    assert "temperature" in values_of(plugin.poll)


def test_a_crc_error_is_a_clean_err_and_the_next_poll_recovers(setup: Setup) -> None:
    plugin = setup.plugin()
    plugin.poll()
    real_chip = setup.board.i2c_devices[0x44]
    setup.board.i2c_devices[0x44] = BadCrcChip(real_chip)
    setup.clock.advance()
    with pytest.raises(GuestError, match="CRC error in the humidity word"):
        plugin.poll()
    assert setup.led() == (200, 0, 0)
    setup.board.i2c_devices[0x44] = real_chip
    setup.clock.advance()  # the failed poll started the next measurement anyway
    assert "humidity" in values_of(plugin.poll)  # same instance: it did not trap


def test_a_missing_chip_is_a_clean_err(setup: Setup) -> None:
    del setup.board.i2c_devices[0x44]
    plugin = setup.plugin()
    with pytest.raises(GuestError, match="SHT31 at 0x44: starting a measurement failed"):
        plugin.poll()
    assert setup.led() == (200, 0, 0)


def test_an_address_outside_the_grant_is_refused(setup: Setup) -> None:
    plugin = setup.plugin({"led": LED, "i2c_address": "0x45"})
    with pytest.raises(GuestError, match="I2C address 0x45 is not granted to sht31"):
        plugin.poll()


def test_the_other_address_works_when_granted(setup: Setup) -> None:
    setup.board.i2c_devices[0x45] = setup.board.i2c_devices.pop(0x44)
    plugin = setup.plugin({"led": LED, "i2c_address": 0x45}, frozenset({0x45}))
    plugin.poll()
    setup.clock.advance()
    assert "temperature" in values_of(plugin.poll)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"led": LED, "i2c_adress": "0x45"}, "unknown setting"),
        ({"led": LED, "i2c_address": "0x46"}, "i2c_address must be 0x44 or 0x45"),
        ({"led": LED, "i2c_address": "forty"}, "i2c_address must be 0x44 or 0x45"),
        ({"led": LED, "i2c_address": True}, "i2c_address must be 0x44 or 0x45"),
        ({"led": LED, "repeatability": "best"}, "repeatability must be one of"),
        ({"led": "3"}, "led must be a non-negative integer"),
    ],
)
def test_bad_settings_are_refused(setup: Setup, settings: dict[str, Any], message: str) -> None:
    # Natively the refusal surfaces as GuestError, from the component as PluginLoadError
    # ("refused its settings: ..."): both are PluginErrors.
    with pytest.raises(PluginError, match=message):
        setup.plugin(settings)


def test_low_repeatability_needs_less_time(setup: Setup) -> None:
    plugin = setup.plugin({"led": LED, "repeatability": "low"})
    plugin.poll()
    setup.clock.advance(5)
    assert "temperature" in values_of(plugin.poll)


def test_a_clock_set_back_does_not_stall_the_pipeline(setup: Setup) -> None:
    plugin = setup.plugin()
    plugin.poll()
    setup.clock.advance(-3_600_000)  # NTP stepped the host clock back an hour
    assert "temperature" in values_of(plugin.poll)
