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
board is a Pi and has built it. The OS and CPU come first, before anything
imports wasmtime (``boards.platform_check``, issue 20): on a 32-bit OS that
is the only finding, since wasmtime cannot load and reinstalling the OS
resets ``config.txt`` and the groups anyway.

Every finding that is not ok carries exactly one ``fix``: a command or a
config line, never "see wasihost doctor" (the board's own fixes say that for
``/api/plugins``; here the doctor says what it found instead). A problem
that several devices share (no GPIO chip, no ``gpiod``) is one finding.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wasihost.boards import platform_check
from wasihost.boards.pi import BoardProblem, PiBoard
from wasihost.boards.pi.dht22 import overlay_line
from wasihost.boards.pi.relay import CHIP_FIX
from wasihost.boards.pi.setup import HEADER_CHIPS, BootConfig, Machine, devicetree_model
from wasihost.boards.pi.ws2812 import SPI_HZ, frame_size
from wasihost.boards.platform_check import PlatformFacts
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
    fix: str | None = None  # one, for every finding that is not ok
    warning: bool = False  # shown with its fix, but not a failure


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

    def add(
        self, ok: bool, subject: str, detail: str, fix: str | None = None, warn: bool = False
    ) -> None:
        self.findings.append(Finding(ok, subject, detail, fix, warn))

    def fail(self, devices: str | tuple[str, ...], subject: str, detail: str, fix: str) -> None:
        """A failure, or only a warning when no enabled plugin uses the device(s)."""
        unused = not set((devices,) if isinstance(devices, str) else devices) & self.used
        if unused:
            detail += " (no enabled plugin uses it)"
        self.add(False, subject, detail, fix, warn=unused)

    def accessible(
        self, device: str | tuple[str, ...], subject: str, path: Path, group: str
    ) -> bool:
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

    def boot_fix(self, dtparams: tuple[str, ...], present_fix: str) -> str | None:
        """``present_fix`` when config.txt turns one of ``dtparams`` on yet the device
        is missing (otherwise the board's own fix, to add the line, is the one)."""
        if self.boot is not None and self.boot.dtparam_on(*dtparams):
            return present_fix
        return None

    def own_fix(self, fix: str) -> str:
        """A board fix as the doctor gives it: one that defers to the doctor
        (meant for ``/api/plugins``) is replaced by what the doctor can say."""
        if fix == CHIP_FIX:
            return self.chip_fix()
        if "wasihost doctor" in fix:
            return "dmesg | tail shows the kernel's reason; sudo reboot clears most driver faults"
        return fix

    def problem(self, problem: BoardProblem, subject: str, fix: str | None = None) -> None:
        """``problem`` as a finding, with ``fix`` instead of the board's when given."""
        chosen = self.own_fix(fix or problem.fix)
        if problem.busy:
            self.add(False, subject, problem.what, chosen, warn=True)
        else:
            self.fail(problem.device, subject, problem.what, chosen)

    def chips(self) -> dict[Path, str | None]:
        """Every GPIO chip in /dev, with its label."""
        return {
            path: self.machine.chip_label(path)
            for path in sorted(self.machine.dev_root.glob("gpiochip*"))
        }

    def chip_fix(self) -> str:
        """How to point ``gpio_chip`` at the 40-pin header's chip, from what /dev holds."""
        chips = self.chips()
        header = next((path for path, label in chips.items() if label in HEADER_CHIPS), None)
        if header is not None:
            return f'set gpio_chip = "{header}" under [board.pi] (it is {chips[header]})'
        if not chips:
            return (
                f"no {self.machine.dev_root}/gpiochip* here: run wasihost on the Raspberry Pi "
                "(in a container, pass the chip through: --device /dev/gpiochip0)"
            )
        return (
            "gpiodetect (sudo apt install gpiod) lists the chips and their labels: set "
            '[board.pi] gpio_chip to the one labelled "pinctrl-rp1" (Pi 5) or '
            '"pinctrl-bcm2711" (Pi 4)'
        )

    # -- checks ---------------------------------------------------------------
    def model(self) -> None:
        model = devicetree_model(self.machine.sys_root)
        if model is None:
            self.add(
                False,
                "machine",
                "not a Raspberry Pi (no devicetree model)",
                f'run wasihost on the Raspberry Pi, or set [board] kind = "sim" in '
                f"{self.config.path} to simulate one",
                warn=True,
            )
            return
        self.add(True, "machine", model)

    def i2c(self) -> None:
        subject = f"I2C bus {self.pi.i2c_bus}"
        path = self.machine.dev_root / f"i2c-{self.pi.i2c_bus}"
        if not self.accessible("i2c", subject, path, "i2c"):
            return
        problem = self.problems.get("i2c")
        if problem is not None:
            fix = None
            if not path.exists() and self.pi.i2c_bus == 1:
                fix = self.boot_fix(
                    ("i2c_arm", "i2c"),
                    "config.txt enables I2C but the device is missing: sudo modprobe "
                    "i2c-dev, and add i2c-dev to /etc/modules",
                )
            self.problem(problem, subject, fix)
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
                fix = (
                    "check wiring: SDA to GPIO 2 (pin 3), SCL to GPIO 3 (pin 5), 3.3 V and GND; "
                    f"i2cdetect -y {self.pi.i2c_bus} lists the addresses that answer"
                )
                if is_bme680:
                    other = 0x76 if address == 0x77 else 0x77
                    fix += (
                        f"; a BME680 with SDO to {'GND' if other == 0x76 else '3.3 V'} answers at "
                        f'0x{other:02x}: set [sensors.bme680] i2c_address = "0x{other:02x}"'
                    )
                self.fail("i2c", subject, str(exc), fix)
                continue
            if is_bme680 and chip_id != BME680_CHIP_ID:
                self.fail(
                    "i2c",
                    subject,
                    f"a chip answers but its id is 0x{chip_id:02x}, not the BME680's 0x61",
                    "put a BME680 at this address (a BME280 answers 0x60 and is another chip: "
                    "it needs a plugin of its own, granted this address)",
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
                f"check wiring: data to GPIO {pin}, a 10 kΩ pull-up from data to 3.3 V, power "
                "(a single failed read can happen: one good read in a second run is fine)",
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
            fix = None
            if not path.exists():
                fix = self.boot_fix(("spi",), "config.txt enables SPI: sudo reboot")
            self.problem(problem, subject, fix)
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
        relays = (
            (self.board.buzzer.relay, self.pi.buzzer_active_low),
            (self.board.fan, self.pi.fan_active_low),
        )
        devices = tuple(relay.device for relay, _ in relays)
        if not self.accessible(devices, "GPIO chip", chip, "gpio"):
            return
        # A relay that cannot start because of the chip is said once, here.
        on_chip = [relay for relay, _ in relays if (p := relay.problem()) and p.fix == CHIP_FIX]
        label = self.machine.chip_label(chip) if chip.exists() else None
        if label in HEADER_CHIPS:
            self.add(True, "GPIO chip", f"{chip} is {label} ({HEADER_CHIPS[label]})")
        elif chip.exists() and not on_chip and not set(self.chips().values()) & set(HEADER_CHIPS):
            # An unknown label and no header chip elsewhere, yet the relays start.
            detail = f"{chip} is {label}, not a chip labelled pinctrl-rp1/-bcm2711"
            self.add(False, "GPIO chip", detail, self.chip_fix(), warn=True)
        else:
            detail = (
                f"{chip} is {label}, not the 40-pin header's chip"
                if chip.exists()
                else f"{chip} does not exist"
            )
            if on_chip:
                names = " and ".join(f"{r.label} (GPIO {r.pin})" for r in on_chip)
                detail += f": the {names} relay{'s' if len(on_chip) > 1 else ''} cannot start"
            self.fail(
                tuple(r.device for r in on_chip) or devices, "GPIO chip", detail, self.chip_fix()
            )
        pins = {
            "buzzer": self.pi.buzzer_pin,
            "fan": self.pi.fan_pin,
            "DHT22": self.config.sensors.dht22.gpio_pin,
        }
        if len(set(pins.values())) < len(pins):
            shown = ", ".join(f"{name} GPIO {pin}" for name, pin in pins.items())
            self.add(
                False,
                "GPIO pins",
                f"two devices share a pin: {shown}",
                "give each its own pin: [board.pi] buzzer_pin and fan_pin, "
                "[sensors.dht22] gpio_pin (and the dtoverlay=dht11 line's gpiopin)",
            )
        # Relays that fail the same way (no gpiod, no permission) are one finding.
        failing: dict[tuple[str, str, bool], list[Any]] = {}
        for relay, active_low in relays:
            problem = relay.problem()
            if problem is None:
                state = "on" if relay.get() else "off"
                polarity = "active-low" if active_low else "active-high"
                self.add(
                    True,
                    f"{relay.label} relay on GPIO {relay.pin}",
                    f"{polarity}, reads back {state}",
                )
            elif relay in on_chip and label not in HEADER_CHIPS:
                continue  # in the GPIO chip finding
            else:
                failing.setdefault((problem.what, problem.fix, problem.busy), []).append(relay)
        for (what, fix, busy), group in failing.items():
            subject = (
                " and ".join(r.label for r in group) + " relay" + ("s" if len(group) > 1 else "")
            )
            subject += " on GPIO " + ", ".join(str(r.pin) for r in group)
            if fix == CHIP_FIX:  # on the header's chip, yet the pin is not on it
                fix = "set [board.pi] buzzer_pin and fan_pin to pins of the 40-pin header (2-27)"
            fix = self.own_fix(fix)
            if busy:
                self.add(False, subject, what, fix, warn=True)
            else:
                self.fail(tuple(r.device for r in group), subject, what, fix)

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
        problem = self.problems.get("cpu-temperature")
        if problem is not None:
            self.problem(problem, "CPU and memory")
            return
        try:
            temperature = self.board.read_cpu_temperature()
            memory = self.board.memory()
            load = self.board.cpu_load_percent()
        except BoardError as exc:
            self.fail(
                "system",
                "CPU and memory",
                str(exc),
                f"is /proc (and /sys) mounted? mount -t proc proc {self.machine.proc_root}",
            )
            return
        self.add(
            True,
            "CPU and memory",
            f"{temperature} °C, load {load} %, "
            f"{memory.available_kb // 1024} of {memory.total_kb // 1024} MB available",
        )


def os_and_cpu(platform: PlatformFacts) -> Finding:
    """The first finding: can wasmtime run on this OS and CPU at all?"""
    problem = platform_check.problem(platform)
    if problem is None:
        return Finding(True, "OS and CPU", platform.describe())
    return Finding(
        False, "OS and CPU", f"{problem.what}; {problem.why}; check: {problem.check}", problem.fix
    )


def diagnose(
    config: HostConfig,
    facts: Callable[[], HostFacts],
    machine: Machine | None = None,
    platform: PlatformFacts | None = None,
    **seams: Any,
) -> list[Finding]:
    """Every finding for ``config``'s Pi board, the OS and CPU first; ``facts`` is
    asked once, after the board is built; ``seams`` reach ``PiBoard`` (tests).

    When wasmtime cannot run here (a 32-bit OS) that is the only finding:
    ``facts`` would import it, and the OS must be reinstalled anyway."""
    first = os_and_cpu(platform or PlatformFacts.current())
    if not first.ok:
        return [first]
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
        doctor.findings.append(first)
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
        if finding.fix is not None:
            lines.append(f"          fix: {finding.fix}")
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
    platform: PlatformFacts | None = None,
    **seams: Any,
) -> int:
    """Print the report; 0 when nothing is wrong, 1 otherwise. ``facts`` gives
    what only the layers above the board know (``wasihost.cli.doctor_facts``);
    it is not asked for a simulated board, nor on an OS wasmtime cannot run on."""
    platform = platform or PlatformFacts.current()
    kind = config.board.kind
    if kind != "pi":
        first = os_and_cpu(platform)
        if first.ok:
            echo(f'wasihost doctor: board "{kind}" ({config.path}) is simulated: nothing to check.')
            return 0
        echo(f'wasihost doctor: board "{kind}" ({config.path}) is simulated; this machine:\n')
        echo(render([first]))
        return 1
    machine = machine or Machine()
    echo(f'wasihost doctor: board "pi" ({config.path}), checked as user {machine.user}\n')
    findings = diagnose(config, facts, machine, platform, **seams)
    echo(render(findings))
    if len(findings) == 1 and not findings[0].ok:
        echo(
            "The devices are checked once the OS is 64-bit "
            "(a new image resets config.txt and the groups anyway)."
        )
    return 1 if any(not f.ok and not f.warning for f in findings) else 0
