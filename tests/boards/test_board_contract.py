"""One suite for every board kind: what the ``Board`` protocol promises.

As model hardware libraries run one suite against each backend (gpiozero's
pin factories, for one), every test here runs once per board kind, on a
``Rig``: a board built from the same config, with handles to set what its
sensors sense and to see what its actuators do. The simulated board is
steered through its own test handles; the Pi board is the real ``PiBoard``
over ``FakePi`` (fakes only at the lowest seams: sysfs and /proc files, the
SMBus with emulated chips on it, gpiod lines, the SPI device, the clock).

Behaviour only one board has stays in that board's files (pi/test_pi_*.py, and
the simulated board through the host in tests/test_cycle.py and others). What
the two boards do differently, on purpose:

- the DHT22: the simulated board reads one on any pin; the Pi board only on
  ``[sensors.dht22] gpio_pin`` (another pin is a ``BoardError``), and it
  serves one reading for the sensor's two-second interval (pi/test_pi_dht22.py);
- an I2C read with no register written first, or a quick probe: on the Pi,
  as on the wire, the BME680 reads on from its register pointer and
  acknowledges the probe; the simulated board hands the transfer to the
  emulated chip as it is, and the emulated BME680 refuses a transfer that
  names no register (a ``BoardError``);
- error text: both raise ``BoardError``, but the Pi's names the bus and the
  errno where the simulated board's names the address alone;
- after ``close``, the Pi board refuses the relays (``BoardError``); the
  simulated board keeps answering.
"""

from __future__ import annotations

import errno
import math
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest

from wasihost.boards import create_board
from wasihost.boards.base import OFF, Board, Color, Dht22Reading, MemoryInfo
from wasihost.boards.bme680_chip import CALIBRATION
from wasihost.boards.pi import PiBoard
from wasihost.boards.pi.dht22 import MIN_INTERVAL_S
from wasihost.boards.pi.fakes import CommandChip, FakePi
from wasihost.boards.sht31_chip import Sht31Chip, crc8
from wasihost.boards.sim import BME680_ADDRESS, SHT31_ADDRESS, SimBoard
from wasihost.config import HostConfig, parse_config
from wasihost.errors import BoardError

LEDS = 11
DHT22_PIN = 4
KINDS = ["sim", "pi"]
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def board_config(kind: str, pi: FakePi) -> HostConfig:
    """The same config for every kind; ``[board.pi]`` points at the fake's /dev and
    shows colours at full brightness, so what is written is what is shown."""
    board = {
        "kind": kind,
        "led_count": LEDS,
        "seed": 7,
        "pi": {**pi.config_section(), "led_brightness": 1.0},
    }
    return parse_config({"board": board, "sensors": {"dht22": {"gpio_pin": DHT22_PIN}}})


class Rig:
    """A board of one kind and the handles on its far side."""

    kind: str
    board: Board

    def set_dht22(self, temperature_c: float, humidity_percent: float) -> None:
        """What the next DHT22 read measures."""
        raise NotImplementedError

    def fail_next_dht22_read(self) -> None:
        raise NotImplementedError

    def set_bme680(self, temperature_c: float, humidity: float, hpa: float, gas: float) -> None:
        raise NotImplementedError

    def set_sht31(self, temperature_c: float, humidity_percent: float) -> None:
        raise NotImplementedError

    def set_cpu_temperature(self, temperature_c: float) -> None:
        raise NotImplementedError

    def shown(self) -> list[Color]:
        """What the LED strip shows."""
        raise NotImplementedError

    def fan_on(self) -> bool:
        """Whether the fan runs, seen from the fan's side (not through ``get_fan``)."""
        raise NotImplementedError

    def buzzer_pulses(self) -> int:
        """How many beeps have sounded, once the pattern playing has ended."""
        raise NotImplementedError


class SimRig(Rig):
    def __init__(self, config: HostConfig) -> None:
        board = create_board(config)
        assert isinstance(board, SimBoard)
        self.kind, self.board, self.sim = "sim", board, board

    def set_dht22(self, temperature_c: float, humidity_percent: float) -> None:
        self.sim.set_dht22(temperature_c, humidity_percent)

    def fail_next_dht22_read(self) -> None:
        self.sim.fail_next_dht22_reads(1)

    def set_bme680(self, temperature_c: float, humidity: float, hpa: float, gas: float) -> None:
        self.sim.set_bme680(temperature_c, humidity, hpa, gas)

    def set_sht31(self, temperature_c: float, humidity_percent: float) -> None:
        self.sim.set_sht31(temperature_c, humidity_percent)

    def set_cpu_temperature(self, temperature_c: float) -> None:
        self.sim.set_cpu_temperature(temperature_c)

    def shown(self) -> list[Color]:
        return list(self.sim.leds)

    def fan_on(self) -> bool:
        return self.sim.fan_on

    def buzzer_pulses(self) -> int:
        return sum(beep.count for beep in self.sim.beeps)


class PiRig(Rig):
    """``PiBoard`` over ``FakePi``, with an SHT31 beside the BME680 on its bus."""

    def __init__(self, config: HostConfig, pi: FakePi) -> None:
        self.pi, self.settings = pi, config.board.pi
        self.sht31 = Sht31Chip()
        pi.bus.devices[SHT31_ADDRESS] = CommandChip(self.sht31)
        self.kind = "pi"
        self.board = self.pi_board = PiBoard.from_config(config, **pi.seams())

    def set_dht22(self, temperature_c: float, humidity_percent: float) -> None:
        self.pi.set_dht(temperature_c, humidity_percent)
        self.pi.advance(MIN_INTERVAL_S)  # past the reading the driver may still serve

    def fail_next_dht22_read(self) -> None:
        self.pi.advance(MIN_INTERVAL_S)
        self.pi.fail_dht(errno.EIO, times=3)  # every try the driver makes

    def set_bme680(self, temperature_c: float, humidity: float, hpa: float, gas: float) -> None:
        self.pi.bme680.set_environment(temperature_c, humidity, hpa, gas)

    def set_sht31(self, temperature_c: float, humidity_percent: float) -> None:
        self.sht31.set_environment(temperature_c, humidity_percent)

    def set_cpu_temperature(self, temperature_c: float) -> None:
        zone = self.pi.sys / "class/thermal/thermal_zone0/temp"
        zone.write_text(f"{round(temperature_c * 1000)}\n")

    def shown(self) -> list[Color]:
        return self.pi.spi.shown()

    def _level(self, pin: int) -> bool:
        return self.pi.gpiod.levels[(self.settings.gpio_chip, pin)]

    def fan_on(self) -> bool:
        return self._level(self.settings.fan_pin) != self.settings.fan_active_low

    def buzzer_pulses(self) -> int:
        assert self.pi_board.buzzer.wait_idle(timeout=5.0)
        pin, on = self.settings.buzzer_pin, not self.settings.buzzer_active_low
        levels = [
            level
            for request in self.pi.gpiod.requests
            if request.consumer == "wasihost-buzzer"
            for line, level in request.history
            if line == pin
        ]
        return sum(1 for before, now in pairwise([not on, *levels]) if now == on != before)


@pytest.fixture(params=KINDS)
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Rig]:
    pi = FakePi(tmp_path / "pi")
    config = board_config(request.param, pi)
    made = SimRig(config) if request.param == "sim" else PiRig(config, pi)
    yield made
    made.board.close()


def bme680_temperature(adc: int) -> float:
    """Bosch's float compensation (BME68x SensorAPI calc_temperature), from the
    calibration the emulated chip carries."""
    t1, t2, t3 = CALIBRATION["par_t1"], CALIBRATION["par_t2"], CALIBRATION["par_t3"]
    var1 = (adc / 16384.0 - t1 / 1024.0) * t2
    var2 = (adc / 131072.0 - t1 / 8192.0) ** 2 * (t3 * 16.0)
    return (var1 + var2) / 5120.0


# -- what the board is --------------------------------------------------------------
def test_kind_and_led_count_come_from_the_config(rig: Rig) -> None:
    assert rig.board.kind == rig.kind
    assert rig.board.led_count == LEDS


def test_a_healthy_board_has_no_problems(rig: Rig) -> None:
    assert rig.board.problems() == []


# -- DHT22 --------------------------------------------------------------------------
def test_the_dht22_on_the_configured_pin_reads_what_it_senses(rig: Rig) -> None:
    rig.set_dht22(21.5, 45.2)
    assert rig.board.read_dht22(DHT22_PIN) == Dht22Reading(21.5, 45.2)
    rig.set_dht22(-3.4, 87.7)
    assert rig.board.read_dht22(DHT22_PIN) == Dht22Reading(-3.4, 87.7)


def test_a_failed_dht22_read_raises_never_a_zero_and_the_next_one_recovers(rig: Rig) -> None:
    rig.set_dht22(21.5, 45.2)
    rig.board.read_dht22(DHT22_PIN)
    rig.fail_next_dht22_read()
    with pytest.raises(BoardError, match=rf"^DHT22 on GPIO {DHT22_PIN}: "):
        rig.board.read_dht22(DHT22_PIN)
    assert rig.board.read_dht22(DHT22_PIN) == Dht22Reading(21.5, 45.2)


# -- I2C ----------------------------------------------------------------------------
def test_the_bme680_answers_with_its_chip_id(rig: Rig) -> None:
    assert rig.board.i2c_transfer(BME680_ADDRESS, b"\xd0", 1) == b"\x61"
    assert rig.board.i2c_transfer(BME680_ADDRESS, b"\xf0", 1) == b"\x00"  # variant: BME680


def test_a_bme680_forced_measurement_reads_back_what_it_senses(rig: Rig) -> None:
    rig.set_bme680(27.0, 35.0, 990.0, 80_000.0)
    assert rig.board.i2c_transfer(BME680_ADDRESS, b"\x72\x01", 0) == b""  # ctrl_hum: x1
    assert rig.board.i2c_transfer(BME680_ADDRESS, b"\x74\x55", 0) == b""  # T x2, P x16, forced
    statuses = [rig.board.i2c_transfer(BME680_ADDRESS, b"\x1d", 1)[0] for _ in range(5)]
    assert statuses[0] & 0x20  # measuring
    assert any(status & 0x80 for status in statuses)  # then new data
    raw = rig.board.i2c_transfer(BME680_ADDRESS, b"\x22", 3)
    adc = raw[0] << 12 | raw[1] << 4 | raw[2] >> 4
    assert bme680_temperature(adc) == pytest.approx(27.0, abs=0.1)


def test_an_sht31_single_shot_measurement_decodes_per_the_datasheet(rig: Rig) -> None:
    rig.set_sht31(23.5, 61.0)
    assert rig.board.i2c_transfer(SHT31_ADDRESS, b"\x24\x00", 0) == b""
    data = rig.board.i2c_transfer(SHT31_ADDRESS, b"", 6)
    assert crc8(data[0:2]) == data[2] and crc8(data[3:5]) == data[5]
    temperature = -45 + 175 * int.from_bytes(data[0:2], "big") / 65535
    humidity = 100 * int.from_bytes(data[3:5], "big") / 65535
    assert temperature == pytest.approx(23.5, abs=0.1)
    assert humidity == pytest.approx(61.0, abs=0.2)


def test_a_chip_that_refuses_a_read_is_a_board_error(rig: Rig) -> None:
    with pytest.raises(BoardError, match="0x44"):  # the SHT31, no measurement pending
        rig.board.i2c_transfer(SHT31_ADDRESS, b"", 6)


@pytest.mark.parametrize(("data", "read_len"), [(b"\xd0", 1), (b"\x00", 0), (b"", 0)])
def test_an_address_no_chip_answers_is_a_board_error(rig: Rig, data: bytes, read_len: int) -> None:
    with pytest.raises(BoardError, match=r"no device answered.*0x50|0x50.*no device answered"):
        rig.board.i2c_transfer(0x50, data, read_len)


# -- LED strip ----------------------------------------------------------------------
def test_a_frame_written_is_what_the_strip_shows(rig: Rig) -> None:
    frame = [RED, GREEN, BLUE, (1, 128, 254)] + [OFF] * (LEDS - 4)
    rig.board.write_leds(frame)
    assert rig.shown() == frame
    rig.board.write_leds([BLUE] * LEDS)
    assert rig.shown() == [BLUE] * LEDS


def test_a_frame_of_the_wrong_length_is_refused(rig: Rig) -> None:
    with pytest.raises(BoardError, match=f"^LED strip has {LEDS} LEDs, got 2 colours$"):
        rig.board.write_leds([RED, RED])


# -- buzzer and fan -----------------------------------------------------------------
def test_a_beep_pattern_sounds_each_beep(rig: Rig) -> None:
    rig.board.beep(2, 10, 10)
    assert rig.buzzer_pulses() == 2


def test_beep_returns_at_once_however_long_the_pattern(rig: Rig) -> None:
    started = time.monotonic()
    rig.board.beep(3, 5000, 5000)
    rig.board.close()  # and closing does not wait for it either
    assert time.monotonic() - started < 2.0


def test_the_fan_state_is_what_the_fan_does(rig: Rig) -> None:
    assert rig.board.get_fan() is False and rig.fan_on() is False
    rig.board.set_fan(True)
    assert rig.board.get_fan() is True and rig.fan_on() is True
    rig.board.set_fan(False)
    assert rig.board.get_fan() is False and rig.fan_on() is False


# -- CPU and system -----------------------------------------------------------------
def test_the_cpu_temperature_is_degrees_to_a_tenth(rig: Rig) -> None:
    rig.set_cpu_temperature(61.9)
    assert rig.board.read_cpu_temperature() == 61.9


def test_system_figures_are_plausible(rig: Rig) -> None:
    memory = rig.board.memory()
    assert isinstance(memory, MemoryInfo)
    assert 0 < memory.available_kb <= memory.total_kb
    load = rig.board.cpu_load_percent()
    assert isinstance(load, float) and math.isfinite(load) and load >= 0.0
    first = rig.board.uptime_seconds()
    assert isinstance(first, int) and first > 0
    assert rig.board.uptime_seconds() >= first


# -- threads ------------------------------------------------------------------------
def test_the_model_is_the_hardware_s_own_name_or_none_when_simulated(rig: Rig) -> None:
    """Shown as the device's model in Home Assistant: the firmware's text, without
    its trailing NUL, on a Pi; nothing made up on the simulated board."""
    expected = {"sim": None, "pi": "Raspberry Pi 5 Model B Rev 1.0"}[rig.kind]
    assert rig.board.model() == expected


def test_several_threads_may_use_the_board_at_once(rig: Rig) -> None:
    rig.set_dht22(21.5, 45.2)

    def use(i: int) -> tuple[bytes, Dht22Reading]:
        rig.board.write_leds([(i % 256, 0, 0)] * LEDS)
        rig.board.read_cpu_temperature()
        return rig.board.i2c_transfer(BME680_ADDRESS, b"\xd0", 1), rig.board.read_dht22(DHT22_PIN)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(use, range(100)))
    assert set(results) == {(b"\x61", Dht22Reading(21.5, 45.2))}


# -- close --------------------------------------------------------------------------
def test_close_turns_the_fan_off_and_may_be_called_again(rig: Rig) -> None:
    rig.board.set_fan(True)
    rig.board.close()
    assert rig.fan_on() is False
    rig.board.close()
    assert rig.fan_on() is False
    assert rig.board.problems() == []  # still answers (the web layer may ask while stopping)


def test_close_leaves_the_strip_dark(rig: Rig) -> None:
    rig.board.write_leds([RED] * LEDS)
    rig.board.close()
    assert rig.shown() == [OFF] * LEDS
