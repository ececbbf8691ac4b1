"""Bosch BME680 driver that runs inside the sandboxed plugin.

All bus access goes through one `Transfer` callable (the host's combined I2C
write-then-read), so the same code runs natively against an emulator and in
WebAssembly against real hardware. Stdlib only, no threads, no sleeping: the
guest has no `time.sleep`. A measurement is therefore split in two calls,
`trigger` and `read_if_ready`, so that a caller polling every few seconds can
start the next conversion at the end of one poll and collect it at the start
of the next instead of spinning on the status register while the chip works;
`read_if_ready` checks the status register only a bounded number of times.

Compensation uses the float formulas of Bosch's BME68x SensorAPI (bme68x.c,
the `BME68X_USE_FPU` paths calc_temperature, calc_pressure, calc_humidity and
calc_res_heat) and, for the gas resistance, the BME680 datasheet
(BST-BME680-DS001, section 3.4.1 with const_array1/const_array2). Only the
BME680 ("low gas" variant) is supported: the BME688 uses another gas formula.
"""

from collections.abc import Callable
from dataclasses import dataclass

Transfer = Callable[[int, bytes, int], bytes]
"""(7-bit address, bytes to write, bytes to read) -> bytes read; raises on bus error."""

CHIP_ID = 0x61
VARIANT_ID_BME680 = 0x00

_REG_COEFF3 = 0x00  # res_heat_val 0x00, res_heat_range 0x02, range_sw_err 0x04
_LEN_COEFF3 = 5
_REG_MEAS_STATUS = 0x1D
_REG_FIELD = 0x1F  # press_msb .. gas_r_lsb (0x2B)
_LEN_FIELD = 13
_REG_RES_HEAT_0 = 0x5A
_REG_GAS_WAIT_0 = 0x64
_REG_CTRL_GAS_0 = 0x70
_REG_CTRL_GAS_1 = 0x71
_REG_CTRL_HUM = 0x72
_REG_CTRL_MEAS = 0x74
_REG_CONFIG = 0x75
_REG_COEFF1 = 0x8A
_LEN_COEFF1 = 23  # 0x8A..0xA0
_REG_CHIP_ID = 0xD0
_REG_SOFT_RESET = 0xE0
_REG_COEFF2 = 0xE1
_LEN_COEFF2 = 14  # 0xE1..0xEE
_REG_VARIANT_ID = 0xF0
_SOFT_RESET_CMD = 0xB6

_OSRS_X2 = 0b010
_OSRS_X4 = 0b011
_OSRS_X8 = 0b100
_FILTER_SIZE_3 = 0b010
_MODE_FORCED = 0b01
_RUN_GAS = 0x10  # ctrl_gas_1 run_gas, heater profile (nb_conv) 0
_NEW_DATA = 0x80
_GAS_MEASURING = 0x40
_MEASURING = 0x20
_GAS_VALID = 0x20
_HEAT_STAB = 0x10

HEATER_TARGET_C = 320
HEATER_DURATION_MS = 150
# Ambient temperature for the heater set point. It enters calc_res_heat as
# par_gh3 / 1024 per degC, about 0.06 register counts per degC for typical
# chips, so a fixed indoor value is within one count of a measured one.
AMBIENT_C = 25.0
# Attempts to read the chip id back after a soft reset; the chip needs ~2 ms
# to restart and may not answer meanwhile, and the guest cannot sleep.
_RESET_ATTEMPTS = 20

# Datasheet section 3.4.1: gas range constants of the BME680.
_CONST_ARRAY1 = (1, 1, 1, 1, 1, 0.99, 1, 0.992, 1, 1, 0.998, 0.995, 1, 0.99, 1, 1)
_CONST_ARRAY2 = (
    8000000.0, 4000000.0, 2000000.0, 1000000.0, 499500.4995, 248262.1648,
    125000.0, 63004.03226, 31281.28128, 15625.0, 7812.5, 3906.25,
    1953.125, 976.5625, 488.28125, 244.140625,
)  # fmt: skip


class DriverError(Exception):
    """The chip is missing, the wrong chip, silent, or the bus failed."""


class MeasurementLost(DriverError):
    """The chip is idle without new data although a measurement was triggered.

    It was reset or power-cycled meanwhile, which also cleared its heater and
    oversampling settings: only `init` brings it back, re-triggering does not.
    """


@dataclass(frozen=True)
class Calibration:
    """Factory trimming coefficients from the chip's NVM, as named by the SensorAPI."""

    par_t1: int
    par_t2: int
    par_t3: int
    par_p1: int
    par_p2: int
    par_p3: int
    par_p4: int
    par_p5: int
    par_p6: int
    par_p7: int
    par_p8: int
    par_p9: int
    par_p10: int
    par_h1: int
    par_h2: int
    par_h3: int
    par_h4: int
    par_h5: int
    par_h6: int
    par_h7: int
    par_gh1: int
    par_gh2: int
    par_gh3: int
    res_heat_range: int
    res_heat_val: int
    range_sw_err: int


@dataclass(frozen=True)
class Measurement:
    """One compensated forced-mode measurement.

    The gas resistance is only meaningful when `gas_valid` and `heat_stable`
    are both true (the heater reached its target before the conversion).
    """

    temperature_c: float
    pressure_hpa: float
    humidity_percent: float
    gas_resistance_ohm: float
    gas_valid: bool
    heat_stable: bool


def _s8(value: int) -> int:
    return value - 256 if value & 0x80 else value


def _u16(block: bytes, lsb: int) -> int:
    return block[lsb] | (block[lsb + 1] << 8)


def _s16(block: bytes, lsb: int) -> int:
    value = _u16(block, lsb)
    return value - 65536 if value & 0x8000 else value


def parse_calibration(
    block1: bytes, block2: bytes, res_heat_range: int, res_heat_val: int, range_sw_err: int
) -> Calibration:
    """Decode the coefficient registers (layout of bme68x_defs.h / get_calib_data).

    `block1` is 0x8A-0xA0 (23 bytes), `block2` 0xE1-0xEE (14 bytes); the last
    three arguments are the raw register bytes 0x02, 0x00 and 0x04. Only bits
    5:4 of 0x02 and the signed bits 7:4 of 0x04 are coefficients, the rest is
    reserved. Raises ValueError when a block has the wrong length.
    """
    if len(block1) != _LEN_COEFF1 or len(block2) != _LEN_COEFF2:
        raise ValueError(
            f"calibration blocks must be {_LEN_COEFF1} and {_LEN_COEFF2} bytes, "
            f"got {len(block1)} and {len(block2)}"
        )
    b1, b2 = block1, block2
    return Calibration(
        par_t1=_u16(b2, 8),
        par_t2=_s16(b1, 0),
        par_t3=_s8(b1[2]),
        par_p1=_u16(b1, 4),
        par_p2=_s16(b1, 6),
        par_p3=_s8(b1[8]),
        par_p4=_s16(b1, 10),
        par_p5=_s16(b1, 12),
        par_p6=_s8(b1[15]),
        par_p7=_s8(b1[14]),
        par_p8=_s16(b1, 18),
        par_p9=_s16(b1, 20),
        par_p10=b1[22],
        par_h1=(b2[2] << 4) | (b2[1] & 0x0F),
        par_h2=(b2[0] << 4) | (b2[1] >> 4),
        par_h3=_s8(b2[3]),
        par_h4=_s8(b2[4]),
        par_h5=_s8(b2[5]),
        par_h6=b2[6],
        par_h7=_s8(b2[7]),
        par_gh1=_s8(b2[12]),
        par_gh2=_s16(b2, 10),
        par_gh3=_s8(b2[13]),
        res_heat_range=(res_heat_range & 0x30) >> 4,
        res_heat_val=_s8(res_heat_val),
        range_sw_err=_s8(range_sw_err & 0xF0) // 16,
    )


def compensate_temperature(cal: Calibration, adc_temp: int) -> tuple[float, float]:
    """SensorAPI calc_temperature: (temperature in degC, t_fine used by P and H)."""
    var1 = (adc_temp / 16384.0 - cal.par_t1 / 1024.0) * cal.par_t2
    var2 = (adc_temp / 131072.0 - cal.par_t1 / 8192.0) ** 2 * (cal.par_t3 * 16.0)
    t_fine = var1 + var2
    return t_fine / 5120.0, t_fine


def compensate_pressure(cal: Calibration, adc_press: int, t_fine: float) -> float:
    """SensorAPI calc_pressure: pressure in Pa.

    Raises DriverError for a zero divisor, which only an all-zero (unread
    or corrupt) calibration produces; Bosch's code silently returns 0 Pa.
    """
    var1 = t_fine / 2.0 - 64000.0
    var2 = var1 * var1 * (cal.par_p6 / 131072.0)
    var2 = var2 + var1 * cal.par_p5 * 2.0
    var2 = var2 / 4.0 + cal.par_p4 * 65536.0
    var1 = (cal.par_p3 * var1 * var1 / 16384.0 + cal.par_p2 * var1) / 524288.0
    var1 = (1.0 + var1 / 32768.0) * cal.par_p1
    if int(var1) == 0:
        raise DriverError("invalid calibration: pressure divisor is zero (par_p1 = 0?)")
    press = (1048576.0 - adc_press - var2 / 4096.0) * 6250.0 / var1
    var1 = cal.par_p9 * press * press / 2147483648.0
    var2 = press * (cal.par_p8 / 32768.0)
    var3 = (press / 256.0) ** 3 * (cal.par_p10 / 131072.0)
    return press + (var1 + var2 + var3 + cal.par_p7 * 128.0) / 16.0


def compensate_humidity(cal: Calibration, adc_hum: int, temp_c: float) -> float:
    """SensorAPI calc_humidity: relative humidity in %, clamped to 0..100 as Bosch does."""
    var1 = adc_hum - (cal.par_h1 * 16.0 + cal.par_h3 / 2.0 * temp_c)
    var2 = var1 * (
        cal.par_h2
        / 262144.0
        * (1.0 + cal.par_h4 / 16384.0 * temp_c + cal.par_h5 / 1048576.0 * temp_c * temp_c)
    )
    var3 = cal.par_h6 / 16384.0
    var4 = cal.par_h7 / 2097152.0
    humidity = var2 + (var3 + var4 * temp_c) * var2 * var2
    return min(100.0, max(0.0, humidity))


def compensate_gas_resistance(cal: Calibration, adc_gas: int, gas_range: int) -> float:
    """Datasheet 3.4.1 (BME680): gas resistance in ohms.

    `adc_gas` is the 10-bit gas_r value, `gas_range` the 4-bit gas_range_r;
    range_sw_err corrects the range switching error of the individual chip.
    """
    if not 0 <= gas_range <= 15 or not 0 <= adc_gas <= 1023:
        raise ValueError(f"gas adc {adc_gas} / range {gas_range} out of 0..1023 / 0..15")
    var1 = (1340.0 + 5.0 * cal.range_sw_err) * _CONST_ARRAY1[gas_range]
    return var1 * _CONST_ARRAY2[gas_range] / (adc_gas - 512.0 + var1)


def heater_resistance(cal: Calibration, target_c: float, ambient_c: float) -> int:
    """SensorAPI calc_res_heat (datasheet table 11 inputs): res_heat_x for a heater target.

    Targets above 400 degC are capped as in Bosch's code; the result is
    clamped to the register's 0..255.
    """
    target_c = min(target_c, 400.0)
    var1 = cal.par_gh1 / 16.0 + 49.0
    var2 = cal.par_gh2 / 32768.0 * 0.0005 + 0.00235
    var3 = cal.par_gh3 / 1024.0
    var4 = var1 * (1.0 + var2 * target_c)
    var5 = var4 + var3 * ambient_c
    scale = 4.0 / (4.0 + cal.res_heat_range) * (1.0 / (1.0 + cal.res_heat_val * 0.002))
    return min(255, max(0, int(3.4 * (var5 * scale - 25.0))))


def gas_wait_code(duration_ms: int) -> int:
    """Encode a heating time for gas_wait_x: 6-bit value times 1/4/16/64 (bits 7:6).

    Durations of 4032 ms and more saturate at 0xFF, as in Bosch's calc_gas_wait.
    """
    if duration_ms >= 0xFC0:
        return 0xFF
    factor = 0
    while duration_ms > 0x3F:
        duration_ms //= 4
        factor += 1
    return duration_ms + factor * 64


class Bme680:
    """A BME680 at one I2C address, driven in forced mode with heater profile 0."""

    def __init__(self, transfer: Transfer, address: int = 0x77) -> None:
        """`address` is 0x76 (SDO low) or 0x77 (SDO high, the breakout default)."""
        self._transfer = transfer
        self._address = address
        self._calibration: Calibration | None = None
        self._ctrl_meas = 0
        self._pending = False  # a triggered measurement has not been read yet

    @property
    def calibration(self) -> Calibration | None:
        """The coefficients read by `init`, None before."""
        return self._calibration

    def init(self) -> None:
        """Identify, reset and configure the chip.

        Oversampling T x8, P x4, H x2, IIR filter size 3 and the heater at
        320 degC for 150 ms: the forced-mode example of Bosch's BME680_driver
        README, also the defaults of common Python drivers.
        Raises DriverError for a missing or wrong chip or a bus failure.
        """
        chip_id = self._read(_REG_CHIP_ID, 1)[0]
        if chip_id != CHIP_ID:
            raise DriverError(
                f"no BME680 at I2C address 0x{self._address:02X}: "
                f"chip id is 0x{chip_id:02X}, expected 0x{CHIP_ID:02X}"
            )
        variant = self._read(_REG_VARIANT_ID, 1)[0]
        if variant != VARIANT_ID_BME680:
            raise DriverError(
                f"chip at 0x{self._address:02X} has variant id 0x{variant:02X}: "
                "not a BME680 (a BME688 needs a different gas formula)"
            )
        self._write(_REG_SOFT_RESET, _SOFT_RESET_CMD)
        self._await_reset()
        coeff3 = self._read(_REG_COEFF3, _LEN_COEFF3)
        calibration = parse_calibration(
            self._read(_REG_COEFF1, _LEN_COEFF1),
            self._read(_REG_COEFF2, _LEN_COEFF2),
            res_heat_range=coeff3[2],
            res_heat_val=coeff3[0],
            range_sw_err=coeff3[4],
        )
        self._ctrl_meas = (_OSRS_X8 << 5) | (_OSRS_X4 << 2)
        # ctrl_hum only takes effect with the following ctrl_meas write (datasheet, ctrl_hum).
        self._write(
            _REG_CTRL_HUM, _OSRS_X2,
            _REG_CONFIG, _FILTER_SIZE_3 << 2,
            _REG_CTRL_MEAS, self._ctrl_meas,
            _REG_RES_HEAT_0, heater_resistance(calibration, HEATER_TARGET_C, AMBIENT_C),
            _REG_GAS_WAIT_0, gas_wait_code(HEATER_DURATION_MS),
            _REG_CTRL_GAS_0, 0x00,
            _REG_CTRL_GAS_1, _RUN_GAS,
        )  # fmt: skip
        self._calibration = calibration
        self._pending = False  # the soft reset aborted any measurement

    def trigger(self) -> None:
        """Start one forced-mode T/P/H/gas measurement and return at once.

        The conversion (with the 150 ms heater about 0.2 s) runs on the chip
        while the caller does other work; collect it with `read_if_ready`.
        Call it after `init` or after the previous measurement was read.
        Raises DriverError when not initialised or on a bus failure.
        """
        if self._calibration is None:
            raise DriverError("BME680 not initialised: call init() first")
        self._write(_REG_CTRL_MEAS, self._ctrl_meas | _MODE_FORCED)
        self._pending = True

    def read_if_ready(self, max_status_reads: int) -> Measurement | None:
        """Collect and compensate the triggered measurement if it has finished.

        Reads meas_status_0 at most `max_status_reads` times (the guest
        cannot sleep, so the bound is in bus round trips, not time) and
        returns None while the chip still reports the conversion running;
        the measurement then stays pending and a later call can collect it.
        Each triggered measurement is returned once: data left over from an
        earlier one is never handed out again.

        Raises DriverError when not initialised, when nothing was triggered
        or on a bus failure, and MeasurementLost when the chip is idle with
        no new data (it was reset since `trigger`).
        """
        if max_status_reads < 1:
            raise ValueError(f"max_status_reads must be at least 1, got {max_status_reads}")
        calibration = self._calibration
        if calibration is None:
            raise DriverError("BME680 not initialised: call init() first")
        if not self._pending:
            raise DriverError("no BME680 measurement in progress: call trigger() first")
        for _ in range(max_status_reads):
            status = self._read(_REG_MEAS_STATUS, 1)[0]
            if status & (_MEASURING | _GAS_MEASURING):
                continue
            self._pending = False
            if not status & _NEW_DATA:
                raise MeasurementLost(
                    "idle with no new data, the triggered measurement was lost (chip reset?)"
                )
            return _compensate_field(calibration, self._read(_REG_FIELD, _LEN_FIELD))
        return None

    def _await_reset(self) -> None:
        last_problem = ""
        for _ in range(_RESET_ATTEMPTS):
            try:
                chip_id = self._read(_REG_CHIP_ID, 1)[0]
            except DriverError as exc:
                last_problem = str(exc)
                continue
            if chip_id == CHIP_ID:
                return
            last_problem = f"chip id 0x{chip_id:02X}"
        raise DriverError(f"BME680 did not come back after soft reset: {last_problem}")

    def _write(self, *pairs: int) -> None:
        """Burst-write register/value pairs (the datasheet's I2C multi-byte write)."""
        self._io(bytes(pairs), 0)

    def _read(self, register: int, length: int) -> bytes:
        return self._io(bytes((register,)), length)

    def _io(self, data: bytes, read_len: int) -> bytes:
        try:
            result = bytes(self._transfer(self._address, data, read_len))
        except Exception as exc:  # any bus failure; the transfer's type is not ours to know
            raise DriverError(f"i2c error at 0x{self._address:02X}: {exc}") from exc
        if len(result) != read_len:
            raise DriverError(
                f"i2c short read at 0x{self._address:02X}: got {len(result)} of {read_len} bytes"
            )
        return result


def _compensate_field(cal: Calibration, field: bytes) -> Measurement:
    """Decode registers 0x1F-0x2B (20-bit T/P with the IIR filter on, 16-bit H, 10-bit gas)."""
    adc_press = (field[0] << 12) | (field[1] << 4) | (field[2] >> 4)
    adc_temp = (field[3] << 12) | (field[4] << 4) | (field[5] >> 4)
    adc_hum = (field[6] << 8) | field[7]
    adc_gas = (field[11] << 2) | (field[12] >> 6)
    gas_flags = field[12]
    temp_c, t_fine = compensate_temperature(cal, adc_temp)
    return Measurement(
        temperature_c=temp_c,
        pressure_hpa=compensate_pressure(cal, adc_press, t_fine) / 100.0,
        humidity_percent=compensate_humidity(cal, adc_hum, temp_c),
        gas_resistance_ohm=compensate_gas_resistance(cal, adc_gas, gas_flags & 0x0F),
        gas_valid=bool(gas_flags & _GAS_VALID),
        heat_stable=bool(gas_flags & _HEAT_STAB),
    )
