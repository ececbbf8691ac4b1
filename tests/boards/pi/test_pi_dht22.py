"""The Pi board's DHT22 driver against a temporary IIO sysfs tree.

The fake clock only moves when the driver sleeps or a read "times out"
(the kernel driver's 1 s wait), so budgets are checked without sleeping.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from wasihost.boards.pi.dht22 import IioDht22
from wasihost.boards.pi.fakes import FakePi
from wasihost.errors import BoardError


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def dht(pi: FakePi, pin: int = 4) -> IioDht22:
    return IioDht22(pin, pi.sys, monotonic=lambda: pi.now, sleep=pi.sleep, read=pi.read)


def test_reads_milli_units_from_the_iio_device(pi: FakePi) -> None:
    pi.set_dht(-3.4, 87.65)
    reading = dht(pi).read(4)
    assert (reading.temperature_c, reading.humidity_percent) == (-3.4, 87.7)


def test_a_reading_is_reused_for_the_sensors_two_second_interval(pi: FakePi) -> None:
    sensor = dht(pi)
    first = sensor.read(4)
    pi.set_dht(30.0, 60.0)
    pi.advance(1.9)
    assert sensor.read(4) == first  # the sensor is not asked again within 2 s
    pi.advance(0.1)
    assert sensor.read(4).temperature_c == 30.0


def test_eio_is_retried_within_the_budget(pi: FakePi) -> None:
    pi.fail_dht(errno.EIO, times=2)
    assert dht(pi).read(4).temperature_c == 21.5
    assert pi.slept == [0.1, 0.1]


def test_failing_reads_raise_with_the_reason_never_zero(pi: FakePi) -> None:
    sensor = dht(pi)
    sensor.read(4)
    pi.advance(5.0)  # the good reading is now stale: it must not be served
    pi.fail_dht(errno.EIO, times=3)
    with pytest.raises(BoardError) as failure:
        sensor.read(4)
    message = str(failure.value)
    assert "DHT22 on GPIO 4: no reading after 3 tries" in message
    assert "EIO" in message


@pytest.mark.parametrize(
    ("failures", "tries"),
    [([errno.ETIMEDOUT] * 3, 1), ([errno.EIO, errno.ETIMEDOUT, errno.EIO], 2)],
)
def test_a_silent_sensor_never_costs_more_than_the_budget(
    pi: FakePi, failures: list[int], tries: int
) -> None:
    for code in failures:
        pi.fail_dht(code)
    started = pi.now
    with pytest.raises(BoardError, match=f"after {tries} tr.*ETIMEDOUT"):
        dht(pi).read(4)
    assert pi.now - started <= 1.5


def test_out_of_range_values_count_as_a_failed_try(pi: FakePi) -> None:
    pi.set_dht(21.0, 140.0)
    with pytest.raises(BoardError, match=r"humidity 140\.0 %RH outside"):
        dht(pi).read(4)


def test_without_the_overlay_the_fix_names_the_config_line(pi: FakePi) -> None:
    pi.remove("sys/bus/iio/devices/iio:device0")
    sensor = dht(pi, pin=17)
    problem = sensor.problem()
    assert problem is not None and "dtoverlay=dht11,gpiopin=17" in problem.fix
    with pytest.raises(BoardError, match=r"DHT22 missing: .*\(fix: add dtoverlay=dht11,gpiopin=17"):
        sensor.read(17)


def test_another_pin_than_the_configured_one_is_refused(pi: FakePi) -> None:
    with pytest.raises(BoardError, match=r"GPIO 5: this board reads the DHT22 on GPIO 4"):
        dht(pi).read(5)


def test_with_two_dht_devices_the_devicetree_node_picks_the_pin(pi: FakePi) -> None:
    other = pi.sys / "bus/iio/devices/iio:device1"
    other.mkdir()
    (other / "name").write_text("dht11\n")
    (other / "in_temp_input").write_text("30000\n")
    (other / "in_humidityrelative_input").write_text("50000\n")
    node = pi.sys / "firmware/devicetree/base/dht11@11"  # GPIO 17, unit address in hex
    node.mkdir()
    (other / "of_node").symlink_to(node)
    assert dht(pi, pin=17).read(17).temperature_c == 30.0
    assert dht(pi, pin=4).read(4).temperature_c == 21.5
