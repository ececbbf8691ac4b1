"""Tests of the BME680 plugin's driver, IAQ estimator and app, and the chip emulator.

The guest modules are loaded from plugins/bme680 by path (not by putting the
directory on sys.path) so that its `app.py` can never shadow another plugin's.
Expected compensation values come from an independent transcription of the
Bosch reference formulas below, not from the driver.
"""

import dataclasses
import enum
import importlib.util
import json
import math
import random
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "plugins" / "bme680"
if importlib.util.find_spec("wasihost") is None:
    sys.path.insert(0, str(ROOT / "src"))

from wasihost.boards.bme680_chip import Bme680Chip  # noqa: E402


def _load(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


drv = _load("bme680_driver", PLUGIN_DIR / "bme680_driver.py")
iaq = _load("iaq", PLUGIN_DIR / "iaq.py")
# 40 %RH at this temperature is the compensation's reference: the factor is 1 there.
T_REF = iaq.REFERENCE_TEMPERATURE_C


# --- Independent reference: Bosch BME68x SensorAPI float code (bme68x.c) -----------


def ref_temperature(c: dict[str, int], adc: int) -> tuple[float, float]:
    var1 = ((adc / 16384.0) - (c["par_t1"] / 1024.0)) * c["par_t2"]
    var2 = (
        ((adc / 131072.0) - (c["par_t1"] / 8192.0))
        * ((adc / 131072.0) - (c["par_t1"] / 8192.0))
        * (c["par_t3"] * 16.0)
    )
    return (var1 + var2) / 5120.0, var1 + var2


def ref_pressure(c: dict[str, int], adc: int, t_fine: float) -> float:
    var1 = (t_fine / 2.0) - 64000.0
    var2 = var1 * var1 * (c["par_p6"] / 131072.0)
    var2 = var2 + (var1 * c["par_p5"] * 2.0)
    var2 = (var2 / 4.0) + (c["par_p4"] * 65536.0)
    var1 = (((c["par_p3"] * var1 * var1) / 16384.0) + (c["par_p2"] * var1)) / 524288.0
    var1 = (1.0 + (var1 / 32768.0)) * c["par_p1"]
    pres = 1048576.0 - adc
    pres = ((pres - (var2 / 4096.0)) * 6250.0) / var1
    var1 = (c["par_p9"] * pres * pres) / 2147483648.0
    var2 = pres * (c["par_p8"] / 32768.0)
    var3 = (pres / 256.0) * (pres / 256.0) * (pres / 256.0) * (c["par_p10"] / 131072.0)
    return pres + (var1 + var2 + var3 + (c["par_p7"] * 128.0)) / 16.0


def ref_humidity(c: dict[str, int], adc: int, t_fine: float) -> float:
    temp_comp = t_fine / 5120.0
    var1 = adc - ((c["par_h1"] * 16.0) + ((c["par_h3"] / 2.0) * temp_comp))
    var2 = var1 * (
        (c["par_h2"] / 262144.0)
        * (
            1.0
            + ((c["par_h4"] / 16384.0) * temp_comp)
            + ((c["par_h5"] / 1048576.0) * temp_comp * temp_comp)
        )
    )
    var3 = c["par_h6"] / 16384.0
    var4 = c["par_h7"] / 2097152.0
    return min(100.0, max(0.0, var2 + ((var3 + (var4 * temp_comp)) * var2 * var2)))


# calc_gas_resistance_low: the k1/k2 percentage form, not the datasheet's const arrays.
K1 = [0.0, 0.0, 0.0, 0.0, 0.0, -1.0, 0.0, -0.8, 0.0, 0.0, -0.2, -0.5, 0.0, -1.0, 0.0, 0.0]
K2 = [0.0, 0.0, 0.0, 0.0, 0.1, 0.7, 0.0, -0.8, -0.1, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def ref_gas(c: dict[str, int], adc: int, gas_range: int) -> float:
    var1 = 1340.0 + (5.0 * c["range_sw_err"])
    var2 = var1 * (1.0 + K1[gas_range] / 100.0)
    var3 = 1.0 + (K2[gas_range] / 100.0)
    return 1.0 / (var3 * 0.000000125 * (1 << gas_range) * (((adc - 512.0) / var2) + 1.0))


def ref_res_heat(c: dict[str, int], temp: float, amb: float) -> int:
    var1 = (c["par_gh1"] / 16.0) + 49.0
    var2 = ((c["par_gh2"] / 32768.0) * 0.0005) + 0.00235
    var3 = c["par_gh3"] / 1024.0
    var5 = (var1 * (1.0 + (var2 * min(temp, 400)))) + (var3 * amb)
    return int(
        3.4
        * ((var5 * (4 / (4 + c["res_heat_range"])) * (1 / (1 + (c["res_heat_val"] * 0.002)))) - 25)
    )


# pimoroni/bme680-python issue #11 (that library's test fixture): a real chip.
PIMORONI: dict[str, int] = dict(
    par_t1=26041, par_t2=26469, par_t3=3, par_p1=36673, par_p2=-10515, par_p3=88,
    par_p4=7310, par_p5=-129, par_p6=30, par_p7=46, par_p8=-3177, par_p9=-2379,
    par_p10=30, par_h1=676, par_h2=1029, par_h3=0, par_h4=45, par_h5=20, par_h6=120,
    par_h7=-100, par_gh1=-30, par_gh2=-24754, par_gh3=18, res_heat_range=1,
    res_heat_val=48, range_sw_err=0,
)  # fmt: skip
# wrclark/bme680 README, I2C demo chip; par_g1/par_g2 printed unsigned there and
# range_switching_error as the raw register 0x13 (decoded: 1).
WRCLARK: dict[str, int] = dict(
    par_t1=26125, par_t2=26370, par_t3=3, par_p1=36262, par_p2=-10371, par_p3=88,
    par_p4=6713, par_p5=-103, par_p6=30, par_p7=31, par_p8=-251, par_p9=-3158,
    par_p10=30, par_h1=776, par_h2=1010, par_h3=0, par_h4=45, par_h5=20, par_h6=120,
    par_h7=-100, par_gh1=183 - 256, par_gh2=59281 - 65536, par_gh3=18,
    res_heat_range=1, res_heat_val=39, range_sw_err=1,
)  # fmt: skip
# Synthetic set exercising the other signs and a negative range_sw_err.
SYNTHETIC: dict[str, int] = dict(
    PIMORONI, par_t3=-7, par_p3=-20, par_p10=200, par_h3=-12, par_h4=-3, par_h7=55,
    par_gh3=-18, res_heat_range=3, res_heat_val=-40, range_sw_err=-3,
)  # fmt: skip


def encode(c: dict[str, int]) -> tuple[bytes, bytes, int, int, int]:
    """The calibration as parse_calibration's inputs (layout of bme68x_defs.h)."""
    b1, b2 = bytearray(23), bytearray(14)

    def put16(block: bytearray, offset: int, value: int) -> None:
        block[offset : offset + 2] = (value & 0xFFFF).to_bytes(2, "little")

    put16(b1, 0, c["par_t2"])
    b1[2] = c["par_t3"] & 0xFF
    put16(b1, 4, c["par_p1"])
    put16(b1, 6, c["par_p2"])
    b1[8] = c["par_p3"] & 0xFF
    put16(b1, 10, c["par_p4"])
    put16(b1, 12, c["par_p5"])
    b1[14], b1[15] = c["par_p7"] & 0xFF, c["par_p6"] & 0xFF
    put16(b1, 18, c["par_p8"])
    put16(b1, 20, c["par_p9"])
    b1[22] = c["par_p10"]
    b2[0] = c["par_h2"] >> 4
    b2[1] = ((c["par_h2"] & 0xF) << 4) | (c["par_h1"] & 0xF)
    b2[2] = c["par_h1"] >> 4
    for i, key in enumerate(("par_h3", "par_h4", "par_h5", "par_h6", "par_h7")):
        b2[3 + i] = c[key] & 0xFF
    put16(b2, 8, c["par_t1"])
    put16(b2, 10, c["par_gh2"])
    b2[12], b2[13] = c["par_gh1"] & 0xFF, c["par_gh3"] & 0xFF
    return (
        bytes(b1),
        bytes(b2),
        (c["res_heat_range"] << 4) | 0x0F,
        c["res_heat_val"] & 0xFF,
        ((c["range_sw_err"] << 4) & 0xF0) | 0x05,
    )


def calibration(c: dict[str, int]) -> Any:
    return drv.parse_calibration(*encode(c))


RAW_ROWS = [  # adc_temp, adc_press, adc_hum, adc_gas, gas_range
    (501240, 353485, 19019, 0, 0),
    (480000, 380000, 25000, 512, 4),
    (530000, 300000, 30000, 1023, 5),
    (420000, 420000, 15000, 300, 7),
    (560000, 250000, 40000, 700, 10),
    (500000, 330000, 21000, 100, 13),
]


@pytest.mark.parametrize(
    "cal", [PIMORONI, WRCLARK, SYNTHETIC], ids=["pimoroni", "wrclark", "synthetic"]
)
@pytest.mark.parametrize("row", RAW_ROWS)
def test_compensation_matches_bosch_reference(cal: dict[str, int], row: tuple[int, ...]) -> None:
    adc_t, adc_p, adc_h, adc_g, gas_range = row
    parsed = calibration(cal)
    temp_c, t_fine = drv.compensate_temperature(parsed, adc_t)
    ref_t, ref_fine = ref_temperature(cal, adc_t)
    assert temp_c == pytest.approx(ref_t, rel=1e-12)
    assert t_fine == pytest.approx(ref_fine, rel=1e-12)
    assert drv.compensate_pressure(parsed, adc_p, t_fine) == pytest.approx(
        ref_pressure(cal, adc_p, ref_fine), rel=1e-12
    )
    assert drv.compensate_humidity(parsed, adc_h, temp_c) == pytest.approx(
        ref_humidity(cal, adc_h, ref_fine), abs=1e-9
    )
    assert drv.compensate_gas_resistance(parsed, adc_g, gas_range) == pytest.approx(
        ref_gas(cal, adc_g, gas_range), rel=1e-9
    )
    for target, ambient in ((200, 20.0), (320, 25.0), (400, 35.0)):
        assert drv.heater_resistance(parsed, target, ambient) == ref_res_heat(cal, target, ambient)


def test_published_values_of_a_real_chip() -> None:
    """pimoroni/bme680-python's test expectations (Bosch integer pipeline) for PIMORONI."""
    parsed = calibration(PIMORONI)
    temp_c, t_fine = drv.compensate_temperature(parsed, 501240)
    assert temp_c == pytest.approx(26.69, abs=0.01)  # integer code: 2669 (x100)
    assert t_fine == pytest.approx(136667, abs=5)
    # The integer pipeline truncates at every step, hence the looser pressure bound.
    assert drv.compensate_pressure(parsed, 353485, t_fine) == pytest.approx(98712, abs=10)
    assert drv.compensate_humidity(parsed, 19019, temp_c) == pytest.approx(42.402, abs=0.02)
    assert drv.compensate_gas_resistance(parsed, 0, 0) == pytest.approx(12946860, abs=1)


@pytest.mark.parametrize("cal", [PIMORONI, WRCLARK, SYNTHETIC])
def test_parse_calibration_decodes_every_coefficient(cal: dict[str, int]) -> None:
    assert dataclasses.asdict(calibration(cal)) == cal
    with pytest.raises(ValueError):
        drv.parse_calibration(b"\x00" * 22, b"\x00" * 14, 0, 0, 0)


def test_gas_wait_encoding() -> None:
    assert drv.gas_wait_code(150) == 0x65  # 37 * 4 ms
    assert drv.gas_wait_code(63) == 63
    assert drv.gas_wait_code(5000) == 0xFF


# --- Driver against the emulated chip ----------------------------------------------


def chip_transfer(chip: Bme680Chip, address: int = 0x77) -> Callable[[int, bytes, int], bytes]:
    def transfer(addr: int, data: bytes, read_len: int) -> bytes:
        if addr != address:
            raise OSError(f"no ACK from 0x{addr:02X}")
        return chip.transfer(data, read_len)

    return transfer


def measure(sensor: Any) -> Any:
    """Trigger and collect one measurement; the emulator finishes after 4 status reads."""
    sensor.trigger()
    m = sensor.read_if_ready(max_status_reads=10)
    assert m is not None
    return m


@pytest.mark.parametrize(
    "env",
    [
        (22.5, 45.0, 1013.25, 120_000.0),
        (-10.0, 5.0, 700.0, 500.0),
        (60.0, 95.0, 1090.0, 5e6),
        (25.0, 40.0, 950.0, 2_000.0),
    ],
)
def test_driver_recovers_the_environment(env: tuple[float, float, float, float]) -> None:
    chip = Bme680Chip(random.Random(7))
    chip.set_environment(*env)
    sensor = drv.Bme680(chip_transfer(chip))
    sensor.init()
    for _ in range(3):
        m = measure(sensor)
        assert m.temperature_c == pytest.approx(env[0], abs=0.1)
        assert m.humidity_percent == pytest.approx(env[1], abs=1.0)
        assert m.pressure_hpa == pytest.approx(env[2], abs=0.5)
        assert m.gas_resistance_ohm == pytest.approx(env[3], rel=0.02)
        assert m.gas_valid and m.heat_stable


def test_wrong_chip_id_is_named() -> None:
    chip = Bme680Chip()

    def bmp280(addr: int, data: bytes, read_len: int) -> bytes:
        return b"\x58" if data == b"\xd0" else chip.transfer(data, read_len)

    with pytest.raises(drv.DriverError, match="0x58"):
        drv.Bme680(bmp280).init()


def test_bme688_variant_is_refused() -> None:
    chip = Bme680Chip()

    def bme688(addr: int, data: bytes, read_len: int) -> bytes:
        return b"\x01" if data == b"\xf0" else chip.transfer(data, read_len)

    with pytest.raises(drv.DriverError, match="variant id 0x01"):
        drv.Bme680(bme688).init()


def test_driver_waits_for_new_data_and_chip_returns_to_sleep() -> None:
    chip = Bme680Chip()
    statuses: list[int] = []

    def spy(addr: int, data: bytes, read_len: int) -> bytes:
        result = chip.transfer(data, read_len)
        if data == b"\x1d":
            statuses.append(result[0])
        return result

    sensor = drv.Bme680(spy)
    sensor.init()
    measure(sensor)
    assert statuses[0] & 0x20 and not statuses[0] & 0x80  # measuring, no new data yet
    assert statuses[-1] & 0x80 and len(statuses) > 1
    assert chip.transfer(b"\x74", 1)[0] & 0x03 == 0  # back in sleep mode


def test_read_if_ready_is_bounded_and_keeps_the_measurement_pending() -> None:
    chip = Bme680Chip()
    status_reads = []

    def spy(addr: int, data: bytes, read_len: int) -> bytes:
        if data == b"\x1d":
            status_reads.append(data)
        return chip.transfer(data, read_len)

    sensor = drv.Bme680(spy)
    sensor.init()
    sensor.trigger()
    assert sensor.read_if_ready(max_status_reads=1) is None  # still measuring
    assert len(status_reads) == 1
    m = sensor.read_if_ready(max_status_reads=5)  # the same measurement, collected later
    assert m is not None and m.gas_valid and m.heat_stable
    with pytest.raises(drv.DriverError, match="trigger"):
        sensor.read_if_ready(5)  # each measurement is handed out once
    with pytest.raises(ValueError):
        sensor.read_if_ready(0)


def test_bus_error_and_uninitialised_are_driver_errors() -> None:
    chip = Bme680Chip()
    sensor = drv.Bme680(chip_transfer(chip))
    with pytest.raises(drv.DriverError, match="init"):
        sensor.trigger()
    with pytest.raises(drv.DriverError, match="init"):
        sensor.read_if_ready(5)
    with pytest.raises(drv.DriverError, match="0x76: no ACK from 0x76"):
        drv.Bme680(chip_transfer(chip), address=0x76).init()


def test_a_chip_reset_after_the_trigger_is_a_lost_measurement() -> None:
    chip = Bme680Chip()
    sensor = drv.Bme680(chip_transfer(chip))
    sensor.init()
    sensor.trigger()
    chip.transfer(b"\xe0\xb6", 0)  # soft reset (or a brown-out) mid-conversion
    with pytest.raises(drv.MeasurementLost, match="reset"):
        sensor.read_if_ready(5)
    with pytest.raises(drv.DriverError, match="trigger"):
        sensor.read_if_ready(5)  # nothing pending any more
    sensor.init()  # the way back: the reset also cleared the heater settings
    assert measure(sensor).heat_stable


def test_init_tolerates_a_chip_busy_after_soft_reset() -> None:
    chip = Bme680Chip()
    nacks = {"left": 0}

    def flaky(addr: int, data: bytes, read_len: int) -> bytes:
        if data == b"\xe0\xb6":
            nacks["left"] = 2
        elif nacks["left"]:
            nacks["left"] -= 1
            raise OSError("Remote I/O error")
        return chip.transfer(data, read_len)

    sensor = drv.Bme680(flaky)
    sensor.init()
    assert sensor.calibration is not None


def test_heater_must_be_configured_for_heat_stability() -> None:
    chip = Bme680Chip()
    chip.transfer(bytes((0x71, 0x10, 0x74, 0x01)), 0)  # run_gas, forced, no res_heat_0
    while not chip.transfer(b"\x1d", 1)[0] & 0x80:
        pass
    gas_lsb = chip.transfer(b"\x2b", 1)[0]
    assert gas_lsb & 0x20 and not gas_lsb & 0x10


def test_emulator_bus_protocol() -> None:
    chip = Bme680Chip()
    with pytest.raises(ValueError):
        chip.transfer(b"", 1)
    with pytest.raises(ValueError):
        chip.transfer(b"\x72\x01\x74", 0)
    assert chip.transfer(b"\xd0", 1) == b"\x61"
    assert chip.transfer(b"\xf0", 1) == b"\x00"
    assert chip.transfer(b"\x72\x05", 1) == b"\x05"  # read-back from the written register
    assert len(chip.transfer(b"\x00", 256)) == 256
    assert chip.transfer(b"\xe0\xb6", 0) == b"" and chip.transfer(b"\x72", 1) == b"\x00"


# --- IAQ estimator -------------------------------------------------------------------


def run(
    estimator: Any, gas: float, seconds: float, start_ms: int, humidity: float = 40.0
) -> tuple[list[float], list[int], int]:
    values, accuracies = [], []
    t = start_ms
    while t < start_ms + seconds * 1000:
        value, accuracy = estimator.update(gas, humidity, t, T_REF)
        values.append(value)
        accuracies.append(accuracy)
        t += 3000
    return values, accuracies, t


def test_iaq_accuracy_rises_after_burn_in_and_baseline_persists() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    _, acc, t = run(est, 100_000.0, 60, 1_000_000)
    assert set(acc) == {0}
    values, acc, t = run(est, 100_000.0, 300, t)
    assert acc == sorted(acc) and acc[0] == 1 and acc[-1] == 3
    assert values[-1] < 5.0 and iaq.band(values[-1]) == "good"
    assert est.baseline_ohm == pytest.approx(100_000.0)
    polluted, acc, _ = run(est, 50_000.0, 60, t)
    assert polluted[-1] > 150.0 and acc[-1] == 3
    assert est.baseline_ohm > 99_000.0  # learnt baseline kept, moving down only slowly


def test_iaq_window_stays_bounded_when_polled_far_too_fast() -> None:
    est = iaq.IaqEstimator(burn_in_s=300.0)
    for t in range(0, 20_000, 2):  # a poll every 2 ms: 150 000 would fit the burn-in window
        est.update(100_000.0, 40.0, t, T_REF)
    assert len(est._window) == iaq.WINDOW_MAX
    assert est.baseline_ohm == pytest.approx(100_000.0)
    _, accuracy, end = run(est, 100_000.0, 300, 20_000)  # 3 s readings to end the burn-in
    assert accuracy[-1] == 1
    for t in range(end, end + 20_000, 2):  # and after burn-in, while tracking
        est.update(100_000.0, 40.0, t, T_REF)
    assert len(est._window) == iaq.WINDOW_MAX


def test_iaq_humidity_weighting_and_burn_in_baseline() -> None:
    est = iaq.IaqEstimator(burn_in_s=30.0)
    dry, _ = est.update(100_000.0, 0.0, 0, T_REF)
    assert dry == pytest.approx(125.0)  # 25 humidity points lost, x5
    assert est.update(100_000.0, 40.0, 1000, T_REF) == (0.0, 0)
    assert iaq.humidity_score(70.0) == pytest.approx(12.5)
    with pytest.raises(ValueError):
        est.update(0.0, 40.0, 2000, T_REF)


# --- Humidity compensation and the CO2eq / breath-VOC estimates ----------------------


def damp_gas(humidity: float, temperature_c: float = 21.0, slope: float = 0.03) -> float:
    """A sensor in unchanged air whose ln(R) falls by `slope` per g/m3 of water
    vapour (the model compensated for), reading 100 kOhm at 40 %RH."""
    ah = iaq.absolute_humidity_g_m3(temperature_c, humidity)
    return 100_000.0 * math.exp(-slope * (ah - iaq.absolute_humidity_g_m3(temperature_c, 40.0)))


def humidity_ramp(est: Any, slope: float = 0.03) -> tuple[float, float]:
    """Burn in at 40 %RH, then raise the humidity to 80 %RH over 9 min in
    unchanged air; returns (IAQ, gas IAQ) at 80 %RH."""
    t = 0
    for _ in range(200):
        est.update(damp_gas(40.0), 40.0, t, 21.0)
        t += 3000
    for humidity in range(45, 81, 5):
        for _ in range(20):
            value, _ = est.update(damp_gas(humidity, slope=slope), float(humidity), t, 21.0)
            t += 3000
    gas_iaq = est.gas_iaq
    assert gas_iaq is not None
    return value, gas_iaq


def test_absolute_humidity_matches_known_values() -> None:
    assert iaq.absolute_humidity_g_m3(25.0, 100.0) == pytest.approx(23.0, abs=0.1)
    assert iaq.absolute_humidity_g_m3(20.0, 40.0) == pytest.approx(6.9, abs=0.05)
    assert iaq.absolute_humidity_g_m3(0.0, 100.0) == pytest.approx(4.85, abs=0.05)
    assert iaq.absolute_humidity_g_m3(21.0, 0.0) == 0.0
    assert iaq.absolute_humidity_g_m3(500.0, 150.0) == iaq.absolute_humidity_g_m3(85.0, 100.0)
    with pytest.raises(ValueError):
        iaq.absolute_humidity_g_m3(float("nan"), 40.0)


def test_compensation_is_the_identity_at_the_reference_and_scales_damp_air_up() -> None:
    assert iaq.compensate_gas(100_000.0, 20.0, 40.0) == pytest.approx(100_000.0)
    assert iaq.compensate_gas(100_000.0, 21.0, 80.0, slope=0.0) == 100_000.0
    scaled = [iaq.compensate_gas(100_000.0, 21.0, float(h)) for h in range(0, 101, 10)]
    assert scaled == sorted(scaled) and scaled[0] < 100_000.0 < scaled[-1]
    # The linear model is capped at 30 g/m3: a hot, saturated reading is scaled x2.0 at most.
    assert iaq.compensate_gas(100_000.0, 60.0, 100.0) == pytest.approx(
        100_000.0 * math.exp(0.03 * (30.0 - iaq.REFERENCE_ABSOLUTE_HUMIDITY_G_M3))
    )
    for damaged in (float("nan"), float("inf")):
        with pytest.raises(ValueError):
            iaq.IaqEstimator().update(100_000.0, 40.0, 0, damaged)


def test_damp_air_at_the_same_gas_concentration_no_longer_reads_as_pollution() -> None:
    """40 -> 80 %RH at 21 degC in unchanged air: the raw resistance falls to 80 %
    of its dry value, which scored as pollution (gas IAQ ~74, IAQ ~157: over the
    alarm threshold); compensated, only the humidity comfort term remains."""
    assert damp_gas(80.0) == pytest.approx(80_300.0, rel=0.01)
    raw_iaq, raw_gas_iaq = humidity_ramp(iaq.IaqEstimator(60.0, humidity_slope=0.0))
    assert raw_gas_iaq > 70.0 and raw_iaq > 150.0
    value, gas_iaq = humidity_ramp(iaq.IaqEstimator(60.0))
    comfort = (iaq.HUMIDITY_WEIGHT - iaq.humidity_score(80.0)) * 5.0  # 83.3
    assert gas_iaq < 2.0 and value == pytest.approx(comfort, abs=2.0)
    # A chip whose true slope is half as steep again still reads half the raw error or less.
    _, mismatched = humidity_ramp(iaq.IaqEstimator(60.0), slope=0.045)
    assert mismatched < raw_gas_iaq / 1.5


def test_a_dry_spell_does_not_raise_the_baseline_into_a_false_alarm() -> None:
    """Dry air raises the raw resistance, and a raised baseline follows within
    minutes; back at normal humidity, the raw reading then looked polluted."""
    results = {}
    for slope in (0.0, 0.03):
        est = iaq.IaqEstimator(60.0, humidity_slope=slope)
        t = 0
        for humidity, polls in ((40.0, 200), (15.0, 600), (40.0, 5)):
            for _ in range(polls):
                est.update(damp_gas(humidity), humidity, t, 21.0)
                t += 3000
        results[slope] = est.gas_iaq
    assert results[0.0] > 40.0 and results[0.03] < 1.0


def test_estimates_start_at_bsecs_floors_and_rise_with_the_iaq() -> None:
    assert iaq.co2_equivalent_ppm(0.0) == pytest.approx(400.0)
    assert iaq.breath_voc_ppm(0.0) == pytest.approx(0.5)
    assert iaq.co2_equivalent_ppm(100.0) == pytest.approx(1000.0)
    assert iaq.breath_voc_ppm(187.5) == pytest.approx(2.0)  # half the baseline: 0.5 * 2**2
    grid = [i * 0.5 for i in range(-20, 801)]  # -10 .. 400, beyond both ends
    co2 = [iaq.co2_equivalent_ppm(g) for g in grid]
    bvoc = [iaq.breath_voc_ppm(g) for g in grid]
    assert co2 == sorted(co2) and bvoc == sorted(bvoc)
    assert min(co2) == pytest.approx(400.0) and max(co2) == pytest.approx(iaq.CO2_MAX_PPM)
    assert min(bvoc) == pytest.approx(0.5) and max(bvoc) == pytest.approx(iaq.BVOC_MAX_PPM)
    assert all(math.isfinite(v) for v in co2 + bvoc)


def test_estimator_reports_the_gas_part_of_the_iaq() -> None:
    est = iaq.IaqEstimator(30.0)
    assert est.gas_iaq is None
    est.update(100_000.0, 40.0, 0, T_REF)
    assert est.gas_iaq == 0.0
    value, _ = est.update(50_000.0, 70.0, 3000, T_REF)
    assert est.gas_iaq is not None and 0.0 < est.gas_iaq < value  # the comfort term is not in it


BAND_CASES = [
    (0, "good"),
    (50, "good"),
    (50.5, "moderate"),
    (100, "moderate"),
    (101, "unhealthy for sensitive groups"),
    (150, "unhealthy for sensitive groups"),
    (151, "unhealthy"),
    (200, "unhealthy"),
    (201, "very unhealthy"),
    (300, "very unhealthy"),
    (301, "hazardous"),
    (500, "hazardous"),
]


@pytest.mark.parametrize("value, name", BAND_CASES)
def test_band_boundaries(value: float, name: str) -> None:
    assert iaq.band(value) == name


# --- IAQ estimator state (snapshot/restore) ------------------------------------------

HOUR_MS = 3_600_000


def through_json(estimator: Any) -> dict[str, Any]:
    """`to_state` as it travels in a snapshot."""
    state: dict[str, Any] = json.loads(json.dumps(estimator.to_state()))
    return state


def test_iaq_state_round_trip_is_exact_and_continues_identically() -> None:
    original = iaq.IaqEstimator(burn_in_s=60.0)
    _, acc, t = run(original, 100_000.0, 200, 1_000_000)
    assert acc[-1] == 2
    restored = iaq.IaqEstimator.from_state(through_json(original), burn_in_s=60.0)
    assert restored.to_state() == original.to_state()
    assert restored.baseline_ohm == original.baseline_ohm
    assert restored.resume(t - 3000) is False  # no gap since the last reading
    for gas in [100_000.0] * 30 + [60_000.0] * 10 + [130_000.0] * 10:
        assert restored.update(gas, 45.0, t, T_REF) == original.update(gas, 45.0, t, T_REF)
        t += 3000
    assert restored.to_state() == original.to_state()


def test_iaq_restored_burn_in_resumes_where_it_stopped() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    _, acc, t = run(est, 100_000.0, 30, 0)  # half the burn-in
    assert set(acc) == {0}
    est = iaq.IaqEstimator.from_state(through_json(est), burn_in_s=60.0)
    later = t + 2 * HOUR_MS  # a restart two hours later
    assert est.resume(later) is False
    _, acc, _ = run(est, 100_000.0, 120, later)
    # The last reading was 27 s into the burn-in and the gap does not count, so
    # accuracy 1 comes 33 s (11 readings) after the restart, not 60 s.
    assert acc.index(1) == 11 and acc[-1] == 2


def test_iaq_restored_accuracy_and_baseline_survive_a_gap() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    _, acc, t = run(est, 100_000.0, 300, 0)
    assert acc[-1] == 3
    est = iaq.IaqEstimator.from_state(through_json(est), burn_in_s=60.0)
    later = t + 20 * HOUR_MS  # under the 24 h bound
    assert est.resume(later) is False
    # The first reading after the gap is polluted air; the unobserved 20 h do
    # not let it drag the baseline down (the gap is not tracking time).
    value, accuracy = est.update(50_000.0, 40.0, later, T_REF)
    assert accuracy == 3 and value == pytest.approx(187.5)
    assert est.baseline_ohm == pytest.approx(100_000.0)
    values, acc, _ = run(est, 100_000.0, 120, later + 3000)
    assert set(acc) == {3} and values[-1] < 1.0


@pytest.mark.parametrize("gap_ms", [25 * HOUR_MS, -10 * 60_000], ids=["old", "clock-back"])
def test_iaq_stale_state_keeps_the_baseline_at_accuracy_1(gap_ms: int) -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    _, acc, t = run(est, 100_000.0, 300, 10 * HOUR_MS)
    assert acc[-1] == 3
    last = t - 3000
    est = iaq.IaqEstimator.from_state(through_json(est), burn_in_s=60.0)
    assert est.resume(last + gap_ms) is True
    assert est.baseline_ohm == pytest.approx(100_000.0)
    values, acc, _ = run(est, 100_000.0, 300, last + gap_ms)
    # Never back to 0 (no new burn-in), but trusted again only as stability builds up.
    assert acc[0] == 1 and acc == sorted(acc) and acc[-1] == 3
    assert acc.index(2) == 20 and acc.index(3) == 60  # after 1 and 3 burn-ins
    assert values[0] < 1.0


def test_iaq_stale_state_during_burn_in_starts_afresh() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    run(est, 100_000.0, 30, 0)
    est = iaq.IaqEstimator.from_state(through_json(est), burn_in_s=60.0)
    assert est.resume(30 * HOUR_MS) is True
    assert est.to_state() == iaq.IaqEstimator(60.0).to_state()
    _, acc, _ = run(est, 80_000.0, 60, 30 * HOUR_MS)
    assert set(acc) == {0} and est.baseline_ohm == pytest.approx(80_000.0)


def test_iaq_fresh_state_round_trips_to_fresh() -> None:
    state = through_json(iaq.IaqEstimator())
    assert state["start_ms"] is None and state["window"] == []
    est = iaq.IaqEstimator.from_state(state)
    assert est.resume(123) is False and est.baseline_ohm is None
    assert est.update(100_000.0, 40.0, 1000, T_REF) == (0.0, 0)


def test_iaq_state_window_is_thinned_to_a_small_snapshot() -> None:
    est = iaq.IaqEstimator(burn_in_s=3600.0)
    _, _, t = run(est, 100_000.0, 3600 + 1800, 0)  # stability window: 600 readings
    state = through_json(est)
    window = state["window"]
    assert len(window) == iaq.STATE_WINDOW_MAX
    assert window[0] == list(est._window[0]) and window[-1] == list(est._window[-1])
    assert [w[0] for w in window] == sorted({w[0] for w in window})
    assert len(json.dumps(state)) < 12_000
    restored = iaq.IaqEstimator.from_state(state, burn_in_s=3600.0)
    assert restored.resume(t - 3000) is False
    assert restored.update(100_000.0, 40.0, t, T_REF) == est.update(100_000.0, 40.0, t, T_REF)


def _valid_iaq_state() -> dict[str, Any]:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    run(est, 100_000.0, 120, 1_000_000)
    return through_json(est)


IAQ_STATE_DAMAGE: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("not an object", lambda s: [s]),
    ("missing key", lambda s: {k: v for k, v in s.items() if k != "baseline_ohm"}),
    ("unknown key", lambda s: {**s, "extra": 1}),
    ("NaN baseline", lambda s: {**s, "baseline_ohm": float("nan")}),
    ("infinite baseline", lambda s: {**s, "baseline_ohm": float("inf")}),
    ("negative baseline", lambda s: {**s, "baseline_ohm": -5.0}),
    ("zero baseline", lambda s: {**s, "baseline_ohm": 0}),
    ("string baseline", lambda s: {**s, "baseline_ohm": "100000"}),
    ("bool baseline", lambda s: {**s, "baseline_ohm": True}),
    ("int burned_in", lambda s: {**s, "burned_in": 1}),
    ("float time", lambda s: {**s, "clock_ms": float(s["clock_ms"])}),
    ("clock before start", lambda s: {**s, "clock_ms": s["start_ms"] - 1}),
    ("window not a list", lambda s: {**s, "window": {}}),
    ("window entry shape", lambda s: {**s, "window": [[s["clock_ms"]]]}),
    ("window NaN value", lambda s: {**s, "window": [[s["clock_ms"], float("nan")]]}),
    ("window out of order", lambda s: {**s, "window": s["window"][::-1]}),
    ("window after clock", lambda s: {**s, "window": [[s["clock_ms"] + 1, 1.0]]}),
    ("window too long", lambda s: {**s, "window": [[s["clock_ms"], 1.0]] * 257}),
    ("stable_since null", lambda s: {**s, "stable_since_ms": None}),
    ("stable_since late", lambda s: {**s, "stable_since_ms": s["clock_ms"] + 1}),
    ("burn-in stable_since", lambda s: {**s, "burned_in": False}),
    ("fresh with baseline", lambda s: {**s, "start_ms": None}),
    ("huge time", lambda s: {**s, "clock_ms": 2**70}),
]


@pytest.mark.parametrize(
    "damage", [d for _, d in IAQ_STATE_DAMAGE], ids=[n for n, _ in IAQ_STATE_DAMAGE]
)
def test_iaq_from_state_refuses_damaged_states(damage: Callable[[dict[str, Any]], Any]) -> None:
    state = _valid_iaq_state()
    iaq.IaqEstimator.from_state(state, burn_in_s=60.0)  # the undamaged one is fine
    with pytest.raises(ValueError, match="iaq state"):
        iaq.IaqEstimator.from_state(damage(state), burn_in_s=60.0)


# --- Wall-clock jumps ---------------------------------------------------------------
# The host clock the estimator is timed with is the wall clock. On a Pi without a
# real-time clock it starts in 1970 (or at the last shutdown) and NTP steps it to the
# present a minute after boot, by hours to decades, and sometimes back.

YEAR_MS = 365 * 24 * HOUR_MS
NOW_MS = 1_700_000_000_000  # November 2023
BOOT_MS = 5_000  # five seconds into 1970


def run_from(estimator: Any, gas: float, readings: int, start_ms: int) -> tuple[list[int], int]:
    """`readings` updates 3 s apart from `start_ms`; returns the accuracies and the next time."""
    _, accuracy, t = run(estimator, gas, readings * 3, start_ms)
    return accuracy, t


def test_iaq_forward_clock_jump_on_the_second_reading_does_not_end_burn_in() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    assert est.update(100_000.0, 40.0, BOOT_MS, T_REF)[1] == 0
    accuracy, _ = run_from(est, 100_000.0, 40, NOW_MS)  # NTP: 1970 -> 2023
    # The jump counts as FIRST_STEP_MAX_S at most (nothing is known of the spacing yet),
    # the rest of the burn-in is 3 s readings.
    assert iaq.FIRST_STEP_MAX_S == 10.0
    assert accuracy.index(1) == 17  # 10 s + 17 x 3 s >= 60 s
    assert set(accuracy[:17]) == {0}


def test_iaq_forward_clock_jump_mid_burn_in_does_not_end_it() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    accuracy, t = run_from(est, 100_000.0, 10, BOOT_MS)  # 27 s of burn-in in 1970
    accuracy, _ = run_from(est, 100_000.0, 40, t - 3000 + YEAR_MS)
    # The jump counts as MAX_STEP_FACTOR typical gaps (4 x 3 s), not as a year.
    assert accuracy.index(1) == 7  # 27 s + 12 s + 7 x 3 s = 60 s
    assert set(accuracy[:7]) == {0}


@pytest.mark.parametrize("back_ms", [HOUR_MS, NOW_MS - BOOT_MS], ids=["an hour", "to 1970"])
def test_iaq_backward_clock_jump_neither_stalls_nor_restarts_burn_in(back_ms: int) -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    accuracy, t = run_from(est, 100_000.0, 10, NOW_MS)  # 27 s of burn-in
    accuracy, t = run_from(est, 100_000.0, 40, t - back_ms)
    assert accuracy.index(1) == 11  # the step back counts as no time: 27 s + 11 x 3 s = 60 s
    assert accuracy[-1] == 2
    # Whatever the clock did, the state is a valid snapshot that continues identically.
    restored = iaq.IaqEstimator.from_state(through_json(est), burn_in_s=60.0)
    assert restored.resume(t - 3000) is False
    assert restored.update(90_000.0, 40.0, t, T_REF) == est.update(90_000.0, 40.0, t, T_REF)


def test_iaq_forward_clock_jump_after_burn_in_neither_moves_the_baseline_nor_the_accuracy() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    accuracy, t = run_from(est, 100_000.0, 30, NOW_MS)
    assert accuracy[-1] == 1  # 30 s into the stability clock
    # The first reading after a year-long step is polluted air. Were the step time,
    # the falling baseline would follow it all the way and call it clean.
    value, accuracy_after = est.update(50_000.0, 40.0, t + YEAR_MS, T_REF)
    assert accuracy_after == 1  # not 3: the stability clock did not run for a year
    assert value > 150.0
    assert est.baseline_ohm == pytest.approx(100_000.0, rel=1e-3)


def test_iaq_backward_clock_jump_after_burn_in_does_not_freeze_the_estimator() -> None:
    est = iaq.IaqEstimator(burn_in_s=60.0)
    accuracy, t = run_from(est, 100_000.0, 30, NOW_MS)
    assert accuracy[-1] == 1
    accuracy, t = run_from(est, 100_000.0, 60, t - YEAR_MS)
    assert accuracy == sorted(accuracy) and accuracy[-1] == 3  # the stability clock ran on
    # The baseline follows a lasting change at its usual pace again.
    run_from(est, 130_000.0, 100, t)
    assert est.baseline_ohm > 115_000.0  # 1 - 1/e of the way in one up-tau (300 s)


def test_iaq_typical_gap_follows_the_poll_interval() -> None:
    """The bound on one gap is a few typical gaps, so a slower poll interval is
    counted in full once a few gaps are known; a one-off long gap is capped."""
    est = iaq.IaqEstimator(burn_in_s=3600.0)
    t = NOW_MS
    est.update(100_000.0, 40.0, t, T_REF)
    for _ in range(5):
        t += 600_000  # a 10 min poll interval
        est.update(100_000.0, 40.0, t, T_REF)
    assert est._clock_ms - est._start_ms == 10_000 + 4 * 600_000  # only the first gap capped
    est.update(100_000.0, 40.0, t + 10 * HOUR_MS, T_REF)
    assert est._clock_ms - est._start_ms == 10_000 + 4 * 600_000 + 4 * 600_000


# --- The plugin app with fake componentize-py bindings -------------------------------


class FakeErr(Exception):
    """Like componentize_py_types.Err: the payload is `.value`."""

    def __init__(self, value: str) -> None:
        super().__init__(value)
        self.value = value


class FakeAlarm(enum.Enum):
    NONE = 0
    HIGH = 1
    LOW = 2


def fake_module(name: str, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    vars(module).update(attributes)
    return module


@dataclasses.dataclass
class FakeData:
    temperature_c: float
    humidity_percent: float
    pressure_hpa: float
    gas_resistance_ohm: float
    iaq: float
    co2_equivalent_ppm: float
    breath_voc_ppm: float
    iaq_accuracy: int
    alarm: Any
    poll_count: int


class Host:
    """The capabilities the app imports, backed by an emulated chip."""

    def __init__(self) -> None:
        self.chip = Bme680Chip(random.Random(5))
        self.now_ms = 1_700_000_000_000
        self.leds: list[tuple[int, int, int, int]] = []
        self.bus_down = False
        self.transfers: list[bytes] = []  # bytes written by each I2C transfer, in order
        self.idle_status_reads = 0  # status reads to answer "idle, no data" instead of the chip

    def transfer(self, address: int, data: bytes, read_len: int) -> bytes:
        self.transfers.append(bytes(data))
        if self.bus_down:
            raise FakeErr("i2c bus timeout")
        if data == b"\x1d" and self.idle_status_reads:
            self.idle_status_reads -= 1
            return b"\x00"
        return self.chip.transfer(data, read_len)

    def wait(self, ms: int) -> None:
        """Let `ms` of wall time pass between polls.

        The emulator has no clock: it finishes a conversion after a few status
        reads. Seconds between polls are far longer than a conversion, so the
        status is read here, off the counted bus, until the chip is idle.
        """
        self.now_ms += ms
        for _ in range(1000):
            if not self.chip.transfer(b"\x1d", 1)[0] & 0x60:  # measuring, gas_measuring
                return
        raise AssertionError("emulated conversion did not finish")

    def poll_counting(self, logic: Any) -> tuple[Any, list[bytes]]:
        """Poll once; returns (result or FakeErr, the transfers the poll made)."""
        start = len(self.transfers)
        try:
            result = logic.poll()
        except FakeErr as exc:
            result = exc
        return result, self.transfers[start:]

    def set_led(self, index: int, r: int, g: int, b: int) -> None:
        self.leds.append((index, r, g, b))


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Host]]:
    host = Host()
    leaves = [
        fake_module("componentize_py_types", Err=FakeErr),
        fake_module("wit_world.exports.bme680_logic", Bme680Data=FakeData),
        fake_module("wit_world.imports.i2c", transfer=host.transfer),
        fake_module("wit_world.imports.gpio_provider", get_timestamp_ms=lambda: host.now_ms),
        fake_module("wit_world.imports.led_controller", set_led=host.set_led),
        fake_module("wit_world.imports.alarm_types", Alarm=FakeAlarm),
    ]
    by_name = {module.__name__.rsplit(".", 1)[-1]: module for module in leaves}
    imports = fake_module("wit_world.imports", **by_name)
    exports = fake_module(
        "wit_world.exports",
        Settings=type("Settings", (), {}),
        State=type("State", (), {}),
        Bme680Logic=type("Bme680Logic", (), {}),
        bme680_logic=by_name["bme680_logic"],
    )
    root = fake_module("wit_world", exports=exports, imports=imports)
    for module in (*leaves, imports, exports, root):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    module = _load("bme680_plugin_app", PLUGIN_DIR / "app.py")
    yield module, host
    for name in [name for name in sys.modules if name.startswith("bme680_plugin_app")]:
        sys.modules.pop(name)


def test_app_polls_learns_alarms_and_recovers(app: tuple[Any, Host]) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"i2c_address": 0x77, "led": 2, "burn_in_s": 30}))
    logic = module.Bme680Logic()
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    first = logic.poll()
    assert first.poll_count == 1 and first.iaq_accuracy == 0 and first.alarm.name == "NONE"
    assert first.pressure_hpa == pytest.approx(1005.0, abs=0.5)
    assert host.leds[-1] == (2, *module.CALIBRATING_RGB)
    for _ in range(20):
        host.now_ms += 3000
        data = logic.poll()
    assert data.iaq_accuracy >= 1 and host.leds[-1] == (2, *module.BAND_RGB["good"])
    host.chip.set_environment(21.0, 40.0, 1005.0, 50_000.0)
    host.now_ms += 3000
    assert logic.poll().alarm.name == "HIGH"  # IAQ ~250 >= 150
    host.bus_down = True
    with pytest.raises(FakeErr, match="i2c bus timeout"):
        logic.poll()
    host.bus_down = False
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    host.now_ms += 3000
    recovered = logic.poll()  # driver re-initialised; baseline kept, alarm released
    assert (
        recovered.poll_count == 24
        and recovered.alarm.name == "NONE"
        and recovered.iaq_accuracy >= 1
    )


@pytest.mark.parametrize(
    "settings",
    [
        "[]",
        "{",
        '{"i2c_address": "0x77"}',
        '{"led": true}',
        '{"burn_in_s": 0}',
        '{"alarm_on_iaq": 100, "alarm_off_iaq": 120}',
        '{"alarm_on_iqa": 100}',  # a typo is reported, not ignored
        '{"humidity_slope": -0.01}',
        '{"humidity_slope": 0.3}',
        '{"humidity_slope": "0.03"}',
    ],
)
def test_app_refuses_bad_settings(app: tuple[Any, Host], settings: str) -> None:
    module, _ = app
    with pytest.raises(FakeErr):
        module.Settings().configure(settings)


STATUS, FIELD, TRIGGER = b"\x1d", b"\x1f", b"\x74\x8d"  # ctrl_meas: T x8, P x4, forced


def test_app_steady_state_polls_make_three_transfers(app: tuple[Any, Host]) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    logic = module.Bme680Logic()
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    first, transfers = host.poll_counting(logic)
    # Nothing in flight yet: init, trigger, wait (3 "measuring" reads + 1), read, trigger.
    assert first.pressure_hpa == pytest.approx(1005.0, abs=0.5)
    assert transfers[-7:] == [TRIGGER, STATUS, STATUS, STATUS, STATUS, FIELD, TRIGGER]
    for _ in range(10):
        host.wait(3000)
        data, transfers = host.poll_counting(logic)
        # One status read finds the measurement triggered last poll done; read; trigger.
        assert transfers == [STATUS, FIELD, TRIGGER]
        assert data.gas_resistance_ohm == pytest.approx(150_000.0, rel=0.02)
    # Even with no time passing (the emulator still "measuring"), the wait is bounded.
    data, transfers = host.poll_counting(logic)
    assert isinstance(data, FakeData)
    assert len(transfers) <= module.STATUS_READS + 2


def test_app_reset_chip_mid_pipeline_gives_one_clean_error_then_recovers(
    app: tuple[Any, Host],
) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    logic = module.Bme680Logic()
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    for _ in range(15):
        host.wait(3000)
        before = logic.poll()
    assert before.iaq_accuracy >= 1
    host.chip.transfer(b"\xe0\xb6", 0)  # the chip resets between polls
    host.wait(3000)
    error, transfers = host.poll_counting(logic)
    assert isinstance(error, FakeErr) and "lost" in error.value and "re-triggered" in error.value
    assert transfers[0] == STATUS and transfers.count(STATUS) == 1  # no spinning
    assert len(transfers) <= 10  # that status read, init (8 transfers), trigger
    assert transfers[-1] == TRIGGER and b"\xe0\xb6" in transfers  # re-initialised, re-triggered
    host.wait(3000)
    recovered, transfers = host.poll_counting(logic)
    assert transfers == [STATUS, FIELD, TRIGGER]  # straight back to the pipeline
    assert recovered.poll_count == before.poll_count + 2
    assert recovered.gas_resistance_ohm == pytest.approx(150_000.0, rel=0.02)
    assert recovered.humidity_percent == pytest.approx(40.0, abs=1.0)  # ctrl_hum restored
    assert recovered.iaq_accuracy >= 1  # the learnt baseline survived


def test_app_first_poll_on_a_slow_chip_reports_warming_up_once(
    app: tuple[Any, Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    logic = module.Bme680Logic()
    # Real hardware: a ~0.2 s conversion is far more status reads than the first-poll bound.
    monkeypatch.setattr(sys.modules[Bme680Chip.__module__], "_BUSY_STATUS_READS", 100)
    error, transfers = host.poll_counting(logic)
    assert isinstance(error, FakeErr) and "warming up: first measurement in progress" in error.value
    assert transfers.count(STATUS) == module.FIRST_POLL_STATUS_READS
    still, _ = host.poll_counting(logic)  # polled again before the conversion could finish
    assert isinstance(still, FakeErr) and "still running" in still.value
    host.wait(3000)
    data, transfers = host.poll_counting(logic)  # the first measurement, not a new one
    assert transfers == [STATUS, FIELD, TRIGGER] and data.poll_count == 3


def test_app_first_poll_that_sees_an_idle_chip_recovers_next_poll(app: tuple[Any, Host]) -> None:
    """A chip read straight after the trigger as idle must not re-initialise forever."""
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    logic = module.Bme680Logic()
    host.idle_status_reads = 1
    error, _ = host.poll_counting(logic)
    assert isinstance(error, FakeErr) and "re-triggered" in error.value
    host.wait(3000)
    data, transfers = host.poll_counting(logic)
    assert isinstance(data, FakeData) and transfers == [STATUS, FIELD, TRIGGER]


# --- The plugin's state export ---------------------------------------------------------


def another_instance(settings: dict[str, Any]) -> Any:
    """A second, configured instance of the app, as the host makes on a reload,
    after a trap or at start-up (the fake bindings stay in place)."""
    name = f"bme680_plugin_app_{len([n for n in sys.modules if 'bme680_plugin_app' in n])}"
    module = _load(name, PLUGIN_DIR / "app.py")
    module.Settings().configure(json.dumps(settings))
    return module


def poll_for(module: Any, host: Host, seconds: float) -> list[Any]:
    results = []
    for _ in range(int(seconds // 3)):
        host.wait(3000)
        results.append(module.Bme680Logic().poll())
    return results


def test_state_round_trip_keeps_baseline_accuracy_alarm_and_count(app: tuple[Any, Host]) -> None:
    module, host = app
    settings = {"burn_in_s": 30}
    module.Settings().configure(json.dumps(settings))
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    before = poll_for(module, host, 150)[-1]
    assert before.iaq_accuracy == 3
    host.chip.set_environment(21.0, 40.0, 1005.0, 50_000.0)
    polluted = poll_for(module, host, 3)[-1]
    assert polluted.alarm.name == "HIGH" and polluted.iaq > 150
    data = module.State().snapshot()
    document = json.loads(data)
    assert document["v"] == 2 and document["alarm"] is True and document["polls"] == 51
    assert document["last_iaq"] == [pytest.approx(polluted.iaq), 3]
    assert len(data) < 4000
    # Restored straight away (a reload): the new instance's snapshot is the same state.
    new = another_instance(settings)
    new.State().restore(data)
    assert new._estimator.baseline_ohm == module._estimator.baseline_ohm
    assert new.State().snapshot() == data
    # Between the thresholds the latch stays on, so the alarm was carried, not re-derived.
    host.chip.set_environment(21.0, 40.0, 1005.0, 95_000.0)
    start = len(host.transfers)
    after = poll_for(new, host, 3)[-1]
    assert b"\xe0\xb6" in host.transfers[start:]  # the driver is not state: chip re-initialised
    assert after.poll_count == 52 and after.iaq_accuracy == 3
    assert 120 < after.iaq < 150 and after.alarm.name == "HIGH"
    assert host.leds[-1] != (2, *new.CALIBRATING_RGB)


def test_restored_plugin_keeps_rising_in_accuracy(app: tuple[Any, Host]) -> None:
    module, host = app
    settings = {"burn_in_s": 30}
    module.Settings().configure(json.dumps(settings))
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    accuracy = [d.iaq_accuracy for d in poll_for(module, host, 45)]
    assert accuracy[-1] == 1
    data = module.State().snapshot()
    host.now_ms += 3 * HOUR_MS  # host restart three hours later
    new = another_instance(settings)
    new.State().restore(data)
    accuracy = [d.iaq_accuracy for d in poll_for(new, host, 90)]
    # No new burn-in: 1 straight away, 2 and 3 as the stability clock carries on.
    assert accuracy[0] == 1 and accuracy == sorted(accuracy) and accuracy[-1] == 3


def test_fresh_plugin_snapshot_restores_to_a_fresh_plugin(app: tuple[Any, Host]) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    data = module.State().snapshot()
    assert json.loads(data) == {
        "v": 2,
        "iaq": iaq.IaqEstimator(30.0).to_state(),
        "alarm": False,
        "polls": 0,
        "last_iaq": [0.0, 0],
        "last_gas_iaq": 0.0,
    }
    new = another_instance({"burn_in_s": 30})
    host.now_ms += 5 * 24 * HOUR_MS
    new.State().restore(data)
    assert new.State().snapshot() == data
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    first = poll_for(new, host, 3)[0]
    assert first.poll_count == 1 and first.iaq_accuracy == 0


@pytest.mark.parametrize("gap_ms", [25 * HOUR_MS, -HOUR_MS], ids=["old", "clock-back"])
def test_stale_snapshot_lowers_accuracy_to_1_and_drops_the_alarm(
    app: tuple[Any, Host], gap_ms: int
) -> None:
    module, host = app
    settings = {"burn_in_s": 30}
    module.Settings().configure(json.dumps(settings))
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    assert poll_for(module, host, 150)[-1].iaq_accuracy == 3
    host.chip.set_environment(21.0, 40.0, 1005.0, 50_000.0)
    assert poll_for(module, host, 3)[-1].alarm.name == "HIGH"
    data = module.State().snapshot()
    baseline = module._estimator.baseline_ohm
    host.now_ms += gap_ms
    new = another_instance(settings)
    new.State().restore(data)
    assert new._estimator.baseline_ohm == baseline
    assert new._alarm is False and new._last_iaq == (0.0, 0)
    host.chip.set_environment(21.0, 40.0, 1005.0, 95_000.0)  # between the thresholds
    after = poll_for(new, host, 3)[-1]
    assert after.iaq_accuracy == 1 and after.alarm.name == "NONE" and after.poll_count == 52
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    later = [d.iaq_accuracy for d in poll_for(new, host, 120)]
    assert later == sorted(later) and later[-1] == 3


# A snapshot as the plugin wrote it before humidity compensation (version 1): its
# baseline was learnt on raw ohms. Times are the Host's clock, 20 min after its start.
V1_START_MS = 1_700_000_000_000
V1_SNAPSHOT: dict[str, Any] = {
    "v": 1,
    "iaq": {
        "start_ms": V1_START_MS,
        "clock_ms": V1_START_MS + 1_200_000,
        "baseline_ohm": 150_123.5,
        "burned_in": True,
        "window": [[V1_START_MS + 1_170_000, 150_120.0], [V1_START_MS + 1_200_000, 150_123.5]],
        "stable_since_ms": V1_START_MS + 30_000,
    },
    "alarm": True,
    "polls": 400,
    "last_iaq": [160.5, 3],
}


def test_a_snapshot_from_before_humidity_compensation_restores(app: tuple[Any, Host]) -> None:
    """Version 1 is read: the baseline is kept (40 %RH at 20 degC is the reference,
    so a raw baseline from ordinary indoor air is close to a compensated one), but
    it was learnt without compensation, so it restores like a stale snapshot."""
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    host.now_ms = V1_START_MS + 1_203_000  # a reload, one poll later
    module.State().restore(json.dumps(V1_SNAPSHOT).encode())
    assert module._estimator.baseline_ohm == 150_123.5
    assert module._poll_count == 400
    assert module._alarm is False and module._last_iaq == (0.0, 0)
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    polled = poll_for(module, host, 120)
    assert polled[0].poll_count == 401 and polled[0].iaq_accuracy == 1  # no new burn-in
    assert polled[0].iaq < 10.0 and polled[0].alarm.name == "NONE"
    accuracy = [d.iaq_accuracy for d in polled]
    assert accuracy == sorted(accuracy) and accuracy[-1] == 3
    document = json.loads(module.State().snapshot())
    assert document["v"] == 2 and document["iaq"]["humidity_slope"] == 0.03
    assert module.air_estimates() == (pytest.approx(400.0, abs=30), pytest.approx(0.5, abs=0.05))


def test_a_v1_snapshot_still_burning_in_starts_afresh(app: tuple[Any, Host]) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 300}))
    burning: dict[str, Any] = json.loads(json.dumps(V1_SNAPSHOT))
    burning.update(alarm=False, last_iaq=[3.0, 0])
    burning["iaq"].update(
        burned_in=False,
        stable_since_ms=None,
        clock_ms=V1_START_MS + 100_000,
        window=[[V1_START_MS + 100_000, 150_000.0]],
    )
    host.now_ms = V1_START_MS + 103_000
    module.State().restore(json.dumps(burning).encode())
    assert module._estimator.baseline_ohm is None and module._poll_count == 400


def test_a_changed_humidity_slope_restores_like_a_stale_snapshot(app: tuple[Any, Host]) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    assert poll_for(module, host, 150)[-1].iaq_accuracy == 3
    data = module.State().snapshot()
    same = another_instance({"burn_in_s": 30})
    same.State().restore(data)
    assert poll_for(same, host, 3)[-1].iaq_accuracy == 3
    steeper = another_instance({"burn_in_s": 30, "humidity_slope": 0.05})
    steeper.State().restore(data)
    assert steeper._estimator.baseline_ohm == module._estimator.baseline_ohm
    assert poll_for(steeper, host, 3)[-1].iaq_accuracy == 1


def test_air_estimates_follow_the_gas_part_of_the_iaq(app: tuple[Any, Host]) -> None:
    module, host = app
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    assert module.air_estimates() == (400.0, 0.5)  # nothing measured yet: clean air
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    poll_for(module, host, 60)
    co2, bvoc = module.air_estimates()
    assert 400.0 <= co2 < 450.0 and 0.5 <= bvoc < 0.55
    host.chip.set_environment(21.0, 40.0, 1005.0, 75_000.0)  # half the baseline
    poll_for(module, host, 3)
    co2, bvoc = module.air_estimates()
    assert bvoc == pytest.approx(2.0, rel=0.05) and co2 == pytest.approx(2494.0, rel=0.05)
    snapshot = json.loads(module.State().snapshot())
    assert snapshot["last_gas_iaq"] == pytest.approx(187.5, rel=0.02)
    new = another_instance({"burn_in_s": 30})
    new.State().restore(json.dumps(snapshot).encode())
    assert new.air_estimates() == module.air_estimates()


def _good_snapshot(module: Any, host: Host) -> dict[str, Any]:
    module.Settings().configure(json.dumps({"burn_in_s": 30}))
    host.chip.set_environment(21.0, 40.0, 1005.0, 150_000.0)
    poll_for(module, host, 60)
    document: dict[str, Any] = json.loads(module.State().snapshot())
    return document


SNAPSHOT_DAMAGE: list[tuple[str, Callable[[dict[str, Any]], bytes]]] = [
    ("empty", lambda d: b""),
    ("not UTF-8", lambda d: b"\xff\xfe"),
    ("not JSON", lambda d: b"{"),
    ("list", lambda d: b"[]"),
    ("deep nesting", lambda d: b"[" * 60_000),  # would overflow the wasm stack in json
    ("too large", lambda d: json.dumps({**d, "pad": " " * 70_000}).encode()),
    ("version 3", lambda d: json.dumps({**d, "v": 3}).encode()),
    ("version true", lambda d: json.dumps({**d, "v": True}).encode()),
    ("no version", lambda d: json.dumps({k: v for k, v in d.items() if k != "v"}).encode()),
    ("missing iaq", lambda d: json.dumps({k: v for k, v in d.items() if k != "iaq"}).encode()),
    ("unknown key", lambda d: json.dumps({**d, "driver": {}}).encode()),
    ("alarm string", lambda d: json.dumps({**d, "alarm": "yes"}).encode()),
    ("negative polls", lambda d: json.dumps({**d, "polls": -1}).encode()),
    ("float polls", lambda d: json.dumps({**d, "polls": 3.0}).encode()),
    ("last_iaq shape", lambda d: json.dumps({**d, "last_iaq": [10.0]}).encode()),
    ("last_iaq range", lambda d: json.dumps({**d, "last_iaq": [10.0, 4]}).encode()),
    ("NaN last IAQ", lambda d: json.dumps({**d, "last_iaq": [float("nan"), 1]}).encode()),
    (
        "NaN baseline",
        lambda d: json.dumps({**d, "iaq": {**d["iaq"], "baseline_ohm": float("nan")}}).encode(),
    ),
    (
        "negative baseline",
        lambda d: json.dumps({**d, "iaq": {**d["iaq"], "baseline_ohm": -1.0}}).encode(),
    ),
    ("iaq not an object", lambda d: json.dumps({**d, "iaq": None}).encode()),
    ("last_gas_iaq range", lambda d: json.dumps({**d, "last_gas_iaq": 376.0}).encode()),
    ("last_gas_iaq bool", lambda d: json.dumps({**d, "last_gas_iaq": True}).encode()),
    (
        "no last_gas_iaq",
        lambda d: json.dumps({k: v for k, v in d.items() if k != "last_gas_iaq"}).encode(),
    ),
    (
        "version 1 with version 2 keys",  # a v1 snapshot has neither new key
        lambda d: json.dumps({**d, "v": 1}).encode(),
    ),
    (
        "no humidity_slope",
        lambda d: json.dumps(
            {**d, "iaq": {k: v for k, v in d["iaq"].items() if k != "humidity_slope"}}
        ).encode(),
    ),
    (
        "humidity_slope range",
        lambda d: json.dumps({**d, "iaq": {**d["iaq"], "humidity_slope": 0.5}}).encode(),
    ),
]


@pytest.mark.parametrize(
    "damage", [d for _, d in SNAPSHOT_DAMAGE], ids=[n for n, _ in SNAPSHOT_DAMAGE]
)
def test_invalid_snapshots_are_refused_with_err_and_change_nothing(
    app: tuple[Any, Host], damage: Callable[[dict[str, Any]], bytes]
) -> None:
    module, host = app
    document = _good_snapshot(module, host)
    before = module.State().snapshot()
    with pytest.raises(FakeErr, match="bme680 snapshot refused: ") as refused:
        module.State().restore(damage(document))
    assert isinstance(refused.value.value, str)
    assert module.State().snapshot() == before  # nothing half-restored
    module.State().restore(json.dumps(document).encode())  # the good one is accepted


def test_restore_turns_any_unexpected_failure_into_err(
    app: tuple[Any, Host], monkeypatch: pytest.MonkeyPatch
) -> None:
    module, host = app
    data = json.dumps(_good_snapshot(module, host)).encode()

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(module.IaqEstimator, "from_state", broken)
    with pytest.raises(FakeErr, match="RuntimeError: bug"):
        module.State().restore(data)
