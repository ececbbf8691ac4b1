"""An emulated Bosch BME680 on a virtual I2C bus.

The emulator speaks the register protocol of the BME680 datasheet
(BST-BME680-DS001, section 5 "Global memory map" and its I2C interface section)
closely enough that an unmodified driver can detect it, read its calibration,
configure the heater and run forced-mode measurements. It is stdlib-only so
that any board can plug it behind an I2C capability.

Raw ADC values are produced by numerically inverting the float compensation
formulas (Bosch BME68x SensorAPI calc_temperature/calc_pressure/calc_humidity,
datasheet 3.4.1 for the gas resistance) for the chip's own calibration,
so a correct driver recovers the environment given to `set_environment`
(plus a little gaussian sensor noise and the ADC quantisation).
"""

import random
from collections.abc import Callable

CHIP_ID = 0x61
VARIANT_ID_BME680 = 0x00

_REG_MEAS_STATUS = 0x1D
_REG_PRESS_MSB = 0x1F
_REG_TEMP_MSB = 0x22
_REG_HUM_MSB = 0x25
_REG_GAS_R_MSB = 0x2A
_REG_RES_HEAT_0 = 0x5A
_REG_GAS_WAIT_0 = 0x64
_REG_CTRL_GAS_0 = 0x70
_REG_CTRL_GAS_1 = 0x71
_REG_CTRL_HUM = 0x72
_REG_CTRL_MEAS = 0x74
_REG_CHIP_ID = 0xD0
_REG_SOFT_RESET = 0xE0
_REG_VARIANT_ID = 0xF0
_SOFT_RESET_CMD = 0xB6

# Writable control registers: idac_heat_0..9 through gas_wait_0..9 (0x50-0x6D)
# and ctrl_gas_0 through config (0x70-0x75). Writes elsewhere are ignored,
# as the real chip ignores writes to read-only registers.
_CONTROL_REGS = frozenset(range(0x50, 0x6E)) | frozenset(range(0x70, 0x76))

_NEW_DATA = 0x80
_GAS_MEASURING = 0x40
_MEASURING = 0x20
_MODE_MASK = 0x03
_MODE_FORCED = 0x01
_RUN_GAS = 0x10
_HEAT_OFF = 0x08

# Status reads that report "measuring" after a forced-mode trigger before the
# data is ready. There is no clock in the emulator, so the conversion time is
# counted in status polls; more than one makes a driver that does not poll fail.
_BUSY_STATUS_READS = 3

# 1-sigma noise added to each measurement, roughly the datasheet RMS noise
# (T 0.005 degC, P ~1 Pa at x4 oversampling, H 0.01 %RH) and a gas noise of 0.3 %.
_NOISE_T_C = 0.005
_NOISE_P_PA = 1.0
_NOISE_H_PERCENT = 0.01
_NOISE_GAS_REL = 0.003

# Calibration of a real BME680: the NVM dump published in
# https://github.com/pimoroni/bme680-python/issues/11 and used as the
# calibration fixture of that library's tests. Its range_sw_err is 0.
CALIBRATION: dict[str, int] = {
    "par_t1": 26041,
    "par_t2": 26469,
    "par_t3": 3,
    "par_p1": 36673,
    "par_p2": -10515,
    "par_p3": 88,
    "par_p4": 7310,
    "par_p5": -129,
    "par_p6": 30,
    "par_p7": 46,
    "par_p8": -3177,
    "par_p9": -2379,
    "par_p10": 30,
    "par_h1": 676,
    "par_h2": 1029,
    "par_h3": 0,
    "par_h4": 45,
    "par_h5": 20,
    "par_h6": 120,
    "par_h7": -100,
    "par_gh1": -30,
    "par_gh2": -24754,
    "par_gh3": 18,
    "res_heat_range": 1,
    "res_heat_val": 48,
    "range_sw_err": 0,
}

# Datasheet section 3.4.1: gas range constants of the BME680 (low gas variant).
_CONST_ARRAY1 = (1, 1, 1, 1, 1, 0.99, 1, 0.992, 1, 1, 0.998, 0.995, 1, 0.99, 1, 1)
_CONST_ARRAY2 = (
    8000000.0, 4000000.0, 2000000.0, 1000000.0, 499500.4995, 248262.1648,
    125000.0, 63004.03226, 31281.28128, 15625.0, 7812.5, 3906.25,
    1953.125, 976.5625, 488.28125, 244.140625,
)  # fmt: skip


def _calibration_registers(c: dict[str, int]) -> dict[int, int]:
    """Lay the coefficients out in NVM as in the BME68x SensorAPI (bme68x_defs.h).

    0x8A-0xA0 and 0xE1-0xEE hold the T/P/H/gas coefficients (16-bit values
    little-endian, par_h1/par_h2 sharing the nibbles of 0xE2); 0x00, 0x02 and
    0x04 hold res_heat_val, res_heat_range (bits 5:4) and range_sw_err
    (bits 7:4, signed). Reserved bits of 0x02/0x04 are set on purpose so that a
    driver that forgets to mask them gets wrong values.
    """
    regs: dict[int, int] = {}

    def word(reg: int, value: int) -> None:
        regs[reg] = value & 0xFF
        regs[reg + 1] = (value >> 8) & 0xFF

    word(0x8A, c["par_t2"])
    regs[0x8C] = c["par_t3"] & 0xFF
    word(0x8E, c["par_p1"])
    word(0x90, c["par_p2"])
    regs[0x92] = c["par_p3"] & 0xFF
    word(0x94, c["par_p4"])
    word(0x96, c["par_p5"])
    regs[0x98] = c["par_p7"] & 0xFF
    regs[0x99] = c["par_p6"] & 0xFF
    word(0x9C, c["par_p8"])
    word(0x9E, c["par_p9"])
    regs[0xA0] = c["par_p10"] & 0xFF
    regs[0xE1] = c["par_h2"] >> 4
    regs[0xE2] = ((c["par_h2"] & 0x0F) << 4) | (c["par_h1"] & 0x0F)
    regs[0xE3] = c["par_h1"] >> 4
    regs[0xE4] = c["par_h3"] & 0xFF
    regs[0xE5] = c["par_h4"] & 0xFF
    regs[0xE6] = c["par_h5"] & 0xFF
    regs[0xE7] = c["par_h6"] & 0xFF
    regs[0xE8] = c["par_h7"] & 0xFF
    word(0xE9, c["par_t1"])
    word(0xEB, c["par_gh2"])
    regs[0xED] = c["par_gh1"] & 0xFF
    regs[0xEE] = c["par_gh3"] & 0xFF
    regs[0x00] = c["res_heat_val"] & 0xFF
    regs[0x02] = (c["res_heat_range"] << 4) | 0x06
    regs[0x04] = ((c["range_sw_err"] << 4) & 0xF0) | 0x0B
    return regs


def _temperature(c: dict[str, int], adc: int) -> tuple[float, float]:
    """SensorAPI calc_temperature: (temperature degC, t_fine)."""
    var1 = (adc / 16384.0 - c["par_t1"] / 1024.0) * c["par_t2"]
    var2 = (adc / 131072.0 - c["par_t1"] / 8192.0) ** 2 * (c["par_t3"] * 16.0)
    t_fine = var1 + var2
    return t_fine / 5120.0, t_fine


def _pressure(c: dict[str, int], adc: int, t_fine: float) -> float:
    """SensorAPI calc_pressure, in Pa."""
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * (c["par_p6"] / 131072.0) + var1 * c["par_p5"] * 2.0
    var2 = var2 / 4.0 + c["par_p4"] * 65536.0
    var1 = (c["par_p3"] * var1 * var1 / 16384.0 + c["par_p2"] * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * c["par_p1"]
    press = (1048576.0 - adc - var2 / 4096.0) * 6250.0 / var1
    var1 = c["par_p9"] * press * press / 2147483648.0
    var2 = press * (c["par_p8"] / 32768.0)
    var3 = (press / 256.0) ** 3 * (c["par_p10"] / 131072.0)
    return press + (var1 + var2 + var3 + c["par_p7"] * 128.0) / 16.0


def _humidity(c: dict[str, int], adc: int, temp_c: float) -> float:
    """SensorAPI calc_humidity, in %RH, not clamped (so it stays monotonic)."""
    var1 = adc - (c["par_h1"] * 16.0 + c["par_h3"] / 2.0 * temp_c)
    var2 = var1 * (
        c["par_h2"]
        / 262144.0
        * (1.0 + c["par_h4"] / 16384.0 * temp_c + c["par_h5"] / 1048576.0 * temp_c * temp_c)
    )
    var3 = c["par_h6"] / 16384.0
    var4 = c["par_h7"] / 2097152.0
    return var2 + (var3 + var4 * temp_c) * var2 * var2


def _invert(f: Callable[[int], float], target: float, hi: int, increasing: bool) -> int:
    """The integer x in [0, hi] whose f(x) is closest to target, f monotonic.

    Bisection, so about 20 evaluations for a 20-bit ADC.
    """
    lo = 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if (f(mid) < target) == increasing:
            lo = mid
        else:
            hi = mid
    return lo if abs(f(lo) - target) <= abs(f(hi) - target) else hi


def _gas_adc(c: dict[str, int], resistance: float) -> tuple[int, int]:
    """(adc 0-1023, gas_range 0-15) for a resistance, inverting datasheet 3.4.1.

    R = var1 * const_array2[r] / (adc - 512 + var1) solves to
    adc = var1 * const_array2[r] / R + 512 - var1. Like the chip's auto
    ranging, the range whose ADC value is nearest mid-scale is used;
    resistances outside the measurable span clamp to the ADC limits.
    """
    best: tuple[float, int, int] | None = None
    for gas_range, (k1, k2) in enumerate(zip(_CONST_ARRAY1, _CONST_ARRAY2, strict=True)):
        var1 = (1340.0 + 5.0 * c["range_sw_err"]) * k1
        exact = var1 * k2 / resistance + 512.0 - var1
        adc = min(1023, max(0, int(exact + 0.5)))
        distance = abs(exact - 512.0)
        if best is None or distance < best[0]:
            best = (distance, adc, gas_range)
    assert best is not None
    return best[1], best[2]


class Bme680Chip:
    """A BME680 (chip id 0x61, variant 0x00) with the real-chip calibration above.

    Forced mode: writing ctrl_meas (0x74) with mode 01 starts a measurement;
    the next `_BUSY_STATUS_READS` reads of meas_status_0 (0x1D) report
    "measuring", then the data registers 0x1F-0x2B are filled, new_data_0 is
    set and the mode falls back to sleep. Until then the data registers keep
    their previous contents, as on the chip. Register reads from 0x00-0xFF
    never fail; unimplemented registers read 0x00.
    """

    def __init__(self, rng: random.Random | None = None) -> None:
        """`rng` drives the sensor noise; a fixed seed is used when omitted so runs repeat."""
        self._rng = rng if rng is not None else random.Random(0x680)
        self._cal = dict(CALIBRATION)
        self._regs = bytearray(256)
        for reg, value in _calibration_registers(self._cal).items():
            self._regs[reg] = value
        self._regs[_REG_CHIP_ID] = CHIP_ID
        self._regs[_REG_VARIANT_ID] = VARIANT_ID_BME680
        self._busy_reads = 0
        self._environment = (25.0, 40.0, 1013.25, 100_000.0)
        self._reset()

    def set_environment(
        self,
        temperature_c: float,
        humidity_percent: float,
        pressure_hpa: float,
        gas_resistance_ohm: float,
    ) -> None:
        """Set what the next measurements sense.

        Raises ValueError outside the chip's operating range (-40..85 degC,
        0..100 %RH, 300..1100 hPa) or for a non-positive gas resistance.
        """
        if not -40.0 <= temperature_c <= 85.0:
            raise ValueError(f"temperature {temperature_c} degC outside -40..85")
        if not 0.0 <= humidity_percent <= 100.0:
            raise ValueError(f"humidity {humidity_percent} %RH outside 0..100")
        if not 300.0 <= pressure_hpa <= 1100.0:
            raise ValueError(f"pressure {pressure_hpa} hPa outside 300..1100")
        if not gas_resistance_ohm > 0.0:
            raise ValueError(f"gas resistance {gas_resistance_ohm} ohm must be positive")
        self._environment = (temperature_c, humidity_percent, pressure_hpa, gas_resistance_ohm)

    def transfer(self, data: bytes, read_len: int) -> bytes:
        """One combined I2C write-then-read.

        `data` is either a lone register address (sets the read pointer) or
        [reg, value, reg, value, ...] register writes (the datasheet's I2C write protocol); after
        writes the read pointer is the last register written. Then `read_len`
        bytes are read from the pointer with auto-increment (wrapping at 0xFF).
        Raises ValueError for an empty write, an odd-length burst write or a
        negative read length.
        """
        if not data:
            raise ValueError("I2C write must start with a register address")
        if len(data) > 1 and len(data) % 2:
            raise ValueError(f"burst write needs register/value pairs, got {len(data)} bytes")
        if read_len < 0:
            raise ValueError(f"negative read length {read_len}")
        for i in range(0, len(data) - 1, 2):
            self._write(data[i], data[i + 1])
        pointer = data[-1] if len(data) == 1 else data[-2]
        addresses = [(pointer + i) & 0xFF for i in range(read_len)]
        result = bytes(self._regs[a] for a in addresses)
        if self._busy_reads and _REG_MEAS_STATUS in addresses:
            self._busy_reads -= 1
            if not self._busy_reads:
                self._complete_measurement()
        return result

    def _write(self, reg: int, value: int) -> None:
        """Apply one register write; writes to read-only registers are ignored."""
        if reg == _REG_SOFT_RESET:
            if value == _SOFT_RESET_CMD:
                self._reset()
        elif reg in _CONTROL_REGS:
            self._regs[reg] = value
            if reg == _REG_CTRL_MEAS and value & _MODE_MASK == _MODE_FORCED:
                self._start_measurement()

    def _reset(self) -> None:
        """Soft reset: control registers to 0, data registers to their reset values."""
        self._regs[0x50:0x76] = bytes(0x76 - 0x50)
        self._regs[_REG_MEAS_STATUS : _REG_GAS_R_MSB + 2] = bytes(
            _REG_GAS_R_MSB + 2 - _REG_MEAS_STATUS
        )
        for msb in (_REG_PRESS_MSB, _REG_TEMP_MSB, _REG_HUM_MSB):
            self._regs[msb] = 0x80
        self._busy_reads = 0

    def _gas_enabled(self) -> bool:
        return (
            bool(self._regs[_REG_CTRL_GAS_1] & _RUN_GAS)
            and not self._regs[_REG_CTRL_GAS_0] & _HEAT_OFF
        )

    def _start_measurement(self) -> None:
        profile = self._regs[_REG_CTRL_GAS_1] & 0x0F
        gas_flag = _GAS_MEASURING if self._gas_enabled() else 0
        self._regs[_REG_MEAS_STATUS] = _MEASURING | gas_flag | profile
        self._busy_reads = _BUSY_STATUS_READS

    def _complete_measurement(self) -> None:
        """Latch noisy raw values for the current environment into 0x1F-0x2B."""
        temp_c, hum, press_hpa, gas = self._environment
        rng, c, regs = self._rng, self._cal, self._regs
        temp_c += rng.gauss(0.0, _NOISE_T_C)
        press_pa = press_hpa * 100.0 + rng.gauss(0.0, _NOISE_P_PA)
        hum = min(100.0, max(0.0, hum + rng.gauss(0.0, _NOISE_H_PERCENT)))
        gas *= 1.0 + rng.gauss(0.0, _NOISE_GAS_REL)

        adc_t = _invert(lambda a: _temperature(c, a)[0], temp_c, 0xFFFFF, increasing=True)
        actual_t, t_fine = _temperature(c, adc_t)
        adc_p = _invert(lambda a: _pressure(c, a, t_fine), press_pa, 0xFFFFF, increasing=False)
        adc_h = _invert(lambda a: _humidity(c, a, actual_t), hum, 0xFFFF, increasing=True)

        ctrl_meas, osrs_h = regs[_REG_CTRL_MEAS], regs[_REG_CTRL_HUM] & 0x07
        # A skipped measurement (oversampling 0) reads the reset value 0x80000 / 0x8000.
        if not ctrl_meas >> 5:
            adc_t = 0x80000
        if not (ctrl_meas >> 2) & 0x07:
            adc_p = 0x80000
        if not osrs_h:
            adc_h = 0x8000
        regs[_REG_TEMP_MSB : _REG_TEMP_MSB + 3] = bytes(
            (adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0x0F) << 4)
        )
        regs[_REG_PRESS_MSB : _REG_PRESS_MSB + 3] = bytes(
            (adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0x0F) << 4)
        )
        regs[_REG_HUM_MSB : _REG_HUM_MSB + 2] = bytes((adc_h >> 8, adc_h & 0xFF))

        profile = regs[_REG_CTRL_GAS_1] & 0x0F
        if self._gas_enabled():
            adc_g, gas_range = _gas_adc(c, gas)
            heated = regs[_REG_RES_HEAT_0 + profile] != 0 and regs[_REG_GAS_WAIT_0 + profile] != 0
            flags = 0x20 | (0x10 if heated else 0)  # gas_valid_r, heat_stab_r
            regs[_REG_GAS_R_MSB] = adc_g >> 2
            regs[_REG_GAS_R_MSB + 1] = ((adc_g & 0x03) << 6) | flags | gas_range
        else:
            regs[_REG_GAS_R_MSB : _REG_GAS_R_MSB + 2] = bytes(2)
        regs[_REG_MEAS_STATUS] = _NEW_DATA | profile
        regs[_REG_CTRL_MEAS] = ctrl_meas & ~_MODE_MASK & 0xFF
