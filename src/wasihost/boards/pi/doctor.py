"""``wasihost doctor``: is this machine ready for the configured board?

It builds the board exactly as ``wasihost run`` would (so it sees the same
problems through the same code), then adds what only a look around the
machine can tell: whether this user may open each device file and which
group would let it, what ``config.txt`` enables, which GPIO chip is the
header's, whether a chip answers at each configured I2C address and
whether the DHT22 gives a reading. Every finding that is wrong carries the
command or config line that fixes it. Exit status 1 when anything is.

Doctor drives the buzzer and fan relays to "off" when it can request
them (a running host holds them: that shows as a warning) and leaves the
LED strip dark when it closes the board.

It lives with the Pi board and, like it, imports nothing above the board
layer: what it needs to know about the plugins and the runtime (the
devices and I2C addresses the enabled plugins' grants use, whether the
compiled call plans load) comes in as ``HostFacts``, plain data that
``wasihost.cli`` computes. The doctor asks for them only once it knows the
board is a Pi and has built it, so a check that must run before anything
imports the runtime (the OS and CPU, issue 20) has its place at the head
of ``diagnose``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasihost.boards.pi import BoardProblem, PiBoard
from wasihost.boards.pi.dht22 import overlay_line
from wasihost.boards.pi.setup import HEADER_CHIPS, BootConfig, Machine
from wasihost.boards.pi.ws2812 import SPI_HZ, frame_size
from wasihost.config import HostConfig
from wasihost.errors import BoardError

BME680_CHIP_ID = 0x61

# The LED strip, CPU temperature and system figures always count as used.
ALWAYS_USED = frozenset({"leds", "cpu-temperature", "system"})


@dataclass(frozen=True)
class Finding:
    ok: bool
    subject: str
    detail: str
    fixes: tuple[str, ...] = ()
    warning: bool = False  # shown with its fixes, but not a failure


@dataclass(frozen=True)
class HostFacts:
    """What the doctor needs from the layers above the board, as plain data.

    ``devices``: the board devices some enabled plugin's grants use (a problem
    with any other device only warns), named as ``BoardProblem.device`` names
    them. ``i2c_users``: each I2C address an enabled plugin is granted, with
    the names of the plugins granted it. ``call_plans``: why the compiled call
    plans cannot be used here, or None when they can.
    """

    devices: frozenset[str]
    i2c_users: Mapping[int, tuple[str, ...]]
    call_plans: str | None


class _Doctor:
    def __init__(
        self, config: HostConfig, machine: Machine, board: PiBoard, facts: HostFacts
    ) -> None:
        self.config = config
        self.pi = config.board.pi
        self.machine = machine
        self.board = board
        self.facts = facts
        self.used = ALWAYS_USED | facts.devices
        self.boot = BootConfig.find(machine.boot_configs)
        self.findings: list[Finding] = []
        self.problems = {p.device: p for p in board.problems()}

    def add(self, ok: bool, subject: str, detail: str, *fixes: str, warn: bool = False) -> None:
        self.findings.append(Finding(ok, subject, detail, tuple(fixes), warn))

    def fail(self, device: str, subject: str, detail: str, *fixes: str) -> None:
        """A failure, or only a warning when no enabled plugin uses the device."""
        unused = device not in self.used
        if unused:
            detail += " (no enabled plugin uses it)"
        self.add(False, subject, detail, *fixes, warn=unused)

    def accessible(self, device: str, subject: str, path: Path, group: str) -> bool:
        """False (with a finding) when ``path`` exists but this user may not use it."""
        if not path.exists() or self.machine.access(path):
            return True
        user = self.machine.user
        owner = self.machine.group_of(path)
        listed, active = self.machine.membership(user, group)
        if owner not in (None, group):
            fix = (
                f"{path} belongs to group {owner}, not {group}: the udev rules of "
                "raspberrypi-sys-mods are missing (sudo apt install raspberrypi-sys-mods)"
            )
        elif listed and not active:
            fix = f"{user} is in group {group} but this session predates it: log out and back in"
        else:
            fix = f"sudo usermod -aG {group} {user}, then log out and back in"
        self.fail(device, subject, f"{path} is not readable and writable by {user}", fix)
        return False

    def boot_fix(self, dtparams: tuple[str, ...], present_fix: str) -> tuple[str, ...]:
        """``present_fix`` when config.txt turns one of ``dtparams`` on yet the device
        is missing (otherwise the board's own fix already says to add the line)."""
        if self.boot is not None and self.boot.dtparam_on(*dtparams):
            return (present_fix,)
        return ()

    def problem(self, problem: BoardProblem, subject: str, *extra: str) -> None:
        if problem.busy:
            self.add(False, subject, problem.what, problem.fix, warn=True)
        else:
            self.fail(problem.device, subject, problem.what, problem.fix, *extra)

    # -- checks ---------------------------------------------------------------
    def model(self) -> None:
        path = self.machine.sys_root / "firmware/devicetree/base/model"
        try:
            model = path.read_text(encoding="ascii", errors="replace").rstrip("\0\n")
        except OSError:
            self.add(False, "machine", "not a Raspberry Pi (no devicetree model)", warn=True)
            return
        self.add(True, "machine", model)

    def i2c(self) -> None:
        subject = f"I2C bus {self.pi.i2c_bus}"
        path = self.machine.dev_root / f"i2c-{self.pi.i2c_bus}"
        if not self.accessible("i2c", subject, path, "i2c"):
            return
        problem = self.problems.get("i2c")
        if problem is not None:
            extra: tuple[str, ...] = ()
            if not path.exists() and self.pi.i2c_bus == 1:
                extra = self.boot_fix(
                    ("i2c_arm", "i2c"),
                    "config.txt enables I2C but the device is missing: sudo modprobe "
                    "i2c-dev, and add i2c-dev to /etc/modules",
                )
            self.problem(problem, subject, *extra)
            return
        self.add(True, subject, f"{path} open")
        self.i2c_addresses()

    def i2c_addresses(self) -> None:
        users = self.facts.i2c_users
        bme680 = self.config.sensors.bme680.i2c_address
        for address in sorted(users):
            names = ", ".join(sorted(users[address]))
            is_bme680 = address == bme680 and "bme680" in users[address]
            subject = f"{'BME680' if is_bme680 else 'I2C device'} at 0x{address:02x} ({names})"
            try:
                if is_bme680:
                    chip_id = self.board.i2c_transfer(address, b"\xd0", 1)[0]
                else:
                    self.board.i2c_transfer(address, b"", 1)
            except BoardError as exc:
                fixes = [
                    "check wiring: SDA to GPIO 2 (pin 3), SCL to GPIO 3 (pin 5), 3.3 V and GND",
                    f"i2cdetect -y {self.pi.i2c_bus} lists the addresses that answer",
                ]
                if is_bme680:
                    other = 0x76 if address == 0x77 else 0x77
                    fixes.append(
                        f"a BME680 with SDO to {'GND' if other == 0x76 else '3.3 V'} answers at "
                        f'0x{other:02x}: set [sensors.bme680] i2c_address = "0x{other:02x}"'
                    )
                self.fail("i2c", subject, str(exc), *fixes)
                continue
            if is_bme680 and chip_id != BME680_CHIP_ID:
                self.fail(
                    "i2c",
                    subject,
                    f"a chip answers but its id is 0x{chip_id:02x}, not the BME680's 0x61",
                    "is another chip (a BME280 is 0x60) at this address?",
                )
            else:
                self.add(True, subject, "answers" + (" (chip id 0x61)" if is_bme680 else ""))

    def dht22(self) -> None:
        pin = self.config.sensors.dht22.gpio_pin
        subject = f"DHT22 on GPIO {pin}"
        problem = self.problems.get("dht22")
        if problem is not None:
            # With an overlay line already in config.txt, "add the line" is the wrong advice.
            fix = problem.fix
            overlays = self.boot.overlays("dht11") if self.boot else []
            pins = {int(o.get("gpiopin") or "4", 0) for o in overlays}
            if overlays and pin not in pins:
                shown = ", ".join(str(p) for p in sorted(pins))
                fix = (
                    f"config.txt loads the overlay for GPIO {shown}, not {pin}: change it to "
                    f"{overlay_line(pin)} (or set [sensors.dht22] gpio_pin), then sudo reboot"
                )
            elif overlays:
                fix = "the overlay is in config.txt: sudo reboot, then check dmesg | grep dht11"
            self.fail("dht22", subject, problem.what, fix)
            return
        try:
            reading = self.board.read_dht22(pin)
        except BoardError as exc:
            self.fail(
                "dht22",
                subject,
                str(exc),
                f"check wiring: data to GPIO {pin}, a 10 kΩ pull-up from data to 3.3 V, power",
                "one failed read can happen: run wasihost doctor again",
            )
            return
        self.add(True, subject, f"{reading.temperature_c} °C, {reading.humidity_percent} %RH")

    def leds(self) -> None:
        path = Path(self.pi.spi_device)
        subject = "LED strip"
        if not self.accessible("leds", subject, path, "spi"):
            return
        problem = self.problems.get("leds")
        if problem is not None:
            extra: tuple[str, ...] = ()
            if not path.exists():
                extra = self.boot_fix(("spi",), "config.txt enables SPI: sudo reboot")
            self.problem(problem, subject, *extra)
        else:
            count = self.config.board.led_count
            self.add(
                True,
                subject,
                f"{path} at {SPI_HZ / 1e6:.1f} MHz, {count} LEDs "
                f"({frame_size(count)}-byte frames), brightness {self.pi.led_brightness}",
            )
        model = next((f.detail for f in self.findings if f.subject == "machine" and f.ok), "")
        if "Pi 4" in model and self.boot is not None and not self.boot.has("core_freq_min=500"):
            self.add(
                False,
                subject,
                "on a Pi 4 the SPI clock follows the core clock, which scales with load: "
                "colours can flicker",
                f"add core_freq=500 and core_freq_min=500 to {self.boot.path}, then sudo reboot",
                warn=True,
            )

    def gpio(self) -> None:
        chip = Path(self.pi.gpio_chip)
        if not self.accessible("fan", "GPIO chip", chip, "gpio"):
            return
        labels = {
            path: self.machine.chip_label(path)
            for path in sorted(self.machine.dev_root.glob("gpiochip*"))
        }
        header = next((path for path, label in labels.items() if label in HEADER_CHIPS), None)
        label = self.machine.chip_label(chip) if chip.exists() else None
        if label in HEADER_CHIPS:
            self.add(True, "GPIO chip", f"{chip} is {label} ({HEADER_CHIPS[label]})")
        elif header is not None:
            self.fail(
                "fan",
                "GPIO chip",
                f"{chip} is {label or 'missing'}, not the 40-pin header's chip",
                f'set gpio_chip = "{header}" under [board.pi] (it is {labels[header]})',
            )
        elif labels:
            self.add(False, "GPIO chip", "no chip labelled pinctrl-rp1/-bcm2711 found", warn=True)
        pins = {
            "buzzer": self.pi.buzzer_pin,
            "fan": self.pi.fan_pin,
            "DHT22": self.config.sensors.dht22.gpio_pin,
        }
        if len(set(pins.values())) < len(pins):
            shown = ", ".join(f"{name} GPIO {pin}" for name, pin in pins.items())
            self.add(False, "GPIO pins", f"two devices share a pin: {shown}", "give each its own")
        for relay, active_low in (
            (self.board.buzzer.relay, self.pi.buzzer_active_low),
            (self.board.fan, self.pi.fan_active_low),
        ):
            subject = f"{relay.label} relay on GPIO {relay.pin}"
            problem = relay.problem()
            if problem is not None:
                self.problem(problem, subject)
                continue
            state = "on" if relay.get() else "off"
            polarity = "active-low" if active_low else "active-high"
            self.add(True, subject, f"{polarity}, reads back {state}")

    def call_plans(self) -> None:
        reason = self.facts.call_plans
        if reason is None:
            self.add(True, "call plans", "compiled (runtime/_compiled.c)")
            return
        self.add(
            False,
            "call plans",
            f"compiled ones {reason}; using the Python ones (plugin calls ~1.6x slower)",
            "sudo apt install gcc python3-dev, then install wasihost again (make setup)",
            warn=True,
        )

    def system(self) -> None:
        try:
            temperature = self.board.read_cpu_temperature()
            memory = self.board.memory()
            load = self.board.cpu_load_percent()
        except BoardError as exc:
            self.fail("system", "CPU and memory", str(exc))
            return
        self.add(
            True,
            "CPU and memory",
            f"{temperature} °C, load {load} %, "
            f"{memory.available_kb // 1024} of {memory.total_kb // 1024} MB available",
        )


def diagnose(
    config: HostConfig,
    facts: Callable[[], HostFacts],
    machine: Machine | None = None,
    **seams: Any,
) -> list[Finding]:
    """Every finding for ``config``'s Pi board; ``facts`` is asked once, after the
    board is built; ``seams`` reach ``PiBoard`` (tests)."""
    machine = machine or Machine()
    board = PiBoard.from_config(
        config,
        sys_root=machine.sys_root,
        proc_root=machine.proc_root,
        dev_root=machine.dev_root,
        **seams,
    )
    try:
        doctor = _Doctor(config, machine, board, facts())
        for check in (doctor.model, doctor.i2c, doctor.dht22, doctor.leds, doctor.gpio):
            check()
        doctor.system()
        doctor.call_plans()
    finally:
        board.close()
    return doctor.findings


def render(findings: list[Finding]) -> str:
    lines = []
    for finding in findings:
        tag = "ok  " if finding.ok else "warn" if finding.warning else "FAIL"
        lines.append(f"  {tag}  {finding.subject}: {finding.detail}")
        lines.extend(f"          fix: {fix}" for fix in finding.fixes)
    failures = sum(1 for f in findings if not f.ok and not f.warning)
    warnings = sum(1 for f in findings if f.warning)
    summary = f"{failures} problem{'s' if failures != 1 else ''} found"
    lines.append(f"\n{summary}" + (f", {warnings} warning(s)" if warnings else "") + ".")
    return "\n".join(lines)


def run_doctor(
    config: HostConfig,
    facts: Callable[[], HostFacts],
    machine: Machine | None = None,
    echo: Callable[[str], None] = print,
    **seams: Any,
) -> int:
    """Print the report; 0 when nothing is wrong, 1 otherwise. ``facts`` gives
    what only the layers above the board know (``wasihost.cli.doctor_facts``);
    it is not asked for a simulated board."""
    kind = config.board.kind
    if kind != "pi":
        echo(f'wasihost doctor: board "{kind}" ({config.path}) is simulated: nothing to check.')
        return 0
    machine = machine or Machine()
    echo(f'wasihost doctor: board "pi" ({config.path}), checked as user {machine.user}\n')
    findings = diagnose(config, facts, machine, **seams)
    echo(render(findings))
    return 1 if any(not f.ok and not f.warning for f in findings) else 0
