"""``wasihost doctor`` on healthy and broken Pis built as temporary trees."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.pi.doctor import run_doctor
from wasihost.boards.pi.fakes import FakePi
from wasihost.cli import doctor_facts, main
from wasihost.config import HostConfig, parse_config

SEEDS = {"pi_monitor": {"led": 0}, "dht22": {"led": 1}, "bme680": {"led": 2}}


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def config(pi: FakePi, plugins: dict[str, Any] | None = None, **board: Any) -> HostConfig:
    data = {
        "board": {"kind": "pi", "pi": {**pi.config_section(), **board}},
        "plugins": SEEDS if plugins is None else plugins,
    }
    return parse_config(data, Path("host.toml"))


def doctor(pi: FakePi, cfg: HostConfig | None = None, **machine: Any) -> tuple[int, str]:
    lines: list[str] = []
    checked = cfg or config(pi)
    code = run_doctor(
        checked, lambda: doctor_facts(checked), pi.machine(**machine), lines.append, **pi.hardware()
    )
    return code, "\n".join(lines)


def test_a_healthy_pi_passes(pi: FakePi) -> None:
    code, report = doctor(pi)
    assert code == 0, report
    assert "FAIL" not in report and "0 problems found." in report
    assert "BME680 at 0x77 (bme680): answers (chip id 0x61)" in report
    assert "DHT22 on GPIO 4: 21.5 °C, 45.2 %RH" in report
    assert "is pinctrl-rp1 (Raspberry Pi 5)" in report


def test_the_simulated_board_has_nothing_to_check(tmp_path: Path, capsys: Any) -> None:
    path = tmp_path / "host.toml"
    path.write_text('[board]\nkind = "sim"\n')
    assert main(["doctor", "--config", str(path)]) == 0
    assert "simulated: nothing to check" in capsys.readouterr().out


def test_i2c_off_says_how_to_turn_it_on(pi: FakePi) -> None:
    pi.remove("dev/i2c-1")
    (pi.root / "boot/firmware/config.txt").write_text("dtparam=spi=on\ndtoverlay=dht11\n")
    code, report = doctor(pi)
    assert code == 1
    assert "FAIL  I2C bus 1:" in report
    assert "sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on" in report


def test_i2c_enabled_but_no_device_file_needs_the_module(pi: FakePi) -> None:
    pi.remove("dev/i2c-1")
    code, report = doctor(pi)
    assert code == 1 and "sudo modprobe i2c-dev" in report


@pytest.mark.parametrize(
    ("membership", "fix"),
    [
        ((False, False), "sudo usermod -aG i2c pi, then log out and back in"),
        ((True, False), "pi is in group i2c but this session predates it"),
    ],
)
def test_a_device_file_this_user_cannot_open_names_the_group(
    pi: FakePi, membership: tuple[bool, bool], fix: str
) -> None:
    code, report = doctor(
        pi,
        access=lambda path: path.name != "i2c-1",
        group_of=lambda path: "i2c",
        membership=lambda user, group: membership,
    )
    assert code == 1
    assert "i2c-1 is not readable and writable by pi" in report and fix in report


def test_no_chip_at_the_bme680_address_suggests_the_other_one(tmp_path: Path) -> None:
    pi = FakePi(tmp_path, devices={})
    code, report = doctor(pi)
    assert code == 1
    assert "FAIL  BME680 at 0x77 (bme680): I2C bus 1: no device answered at 0x77" in report
    assert 'set [sensors.bme680] i2c_address = "0x76"' in report


def test_granted_i2c_addresses_of_other_plugins_are_probed(pi: FakePi) -> None:
    plugins = {**SEEDS, "sht31": {"world": "sensor-plugin", "grants": {"i2c_addresses": ["0x44"]}}}
    code, report = doctor(pi, config(pi, plugins))
    assert code == 1
    assert "I2C device at 0x44 (sht31): I2C bus 1: no device answered at 0x44" in report


def test_no_dht_overlay_gives_the_config_line_for_the_configured_pin(pi: FakePi) -> None:
    pi.remove("sys/bus/iio/devices/iio:device0")
    (pi.root / "boot/firmware/config.txt").write_text("dtoverlay=dht11,gpiopin=17\n")
    code, report = doctor(pi)
    assert code == 1
    assert "config.txt loads the overlay for GPIO 17, not 4: change it to" in report
    (pi.root / "boot/firmware/config.txt").write_text("dtparam=i2c_arm=on\n")
    code, report = doctor(pi)
    assert "add dtoverlay=dht11,gpiopin=4 to /boot/firmware/config.txt" in report


def test_a_dht22_that_does_not_answer_is_reported_with_wiring_advice(pi: FakePi) -> None:
    import errno

    pi.fail_dht(errno.ETIMEDOUT, 3)
    code, report = doctor(pi)
    assert code == 1
    assert "FAIL  DHT22 on GPIO 4: DHT22 on GPIO 4: no reading after 1 try" in report
    assert "10 kΩ pull-up" in report


def test_an_unused_device_only_warns(pi: FakePi) -> None:
    pi.remove("sys/bus/iio/devices/iio:device0")
    plugins = {"pi_monitor": {"led": 0}, "bme680": {"led": 2}}
    code, report = doctor(pi, config(pi, plugins))
    assert code == 0
    assert "warn  DHT22 on GPIO 4" in report and "(no enabled plugin uses it)" in report


def test_the_wrong_gpio_chip_names_the_header_chip(pi: FakePi) -> None:
    """A Pi 5 on an older kernel: the header is gpiochip4, gpiochip0 is the SoC's."""
    (pi.dev / "gpiochip4").touch()
    pi.chip_labels = {"gpiochip0": "gpio-brcmstb@107d508500", "gpiochip4": "pinctrl-rp1"}
    code, report = doctor(pi)
    assert code == 1
    assert f'set gpio_chip = "{pi.dev / "gpiochip4"}" under [board.pi]' in report


def test_relays_held_by_a_running_host_only_warn(pi: FakePi) -> None:
    running = pi.board()  # the host, holding the lines
    try:
        code, report = doctor(pi)
    finally:
        running.close()
    assert code == 0
    assert "warn  buzzer relay on GPIO 17" in report and "held by another process" in report


def test_without_gpiod_the_relays_fail_with_the_install_command(
    pi: FakePi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasihost.boards.pi import relay

    monkeypatch.setattr(relay, "load_gpiod", lambda: None)
    lines: list[str] = []
    hardware = {k: v for k, v in pi.hardware().items() if k != "gpiod"}
    cfg = config(pi)
    code = run_doctor(cfg, lambda: doctor_facts(cfg), pi.machine(), lines.append, **hardware)
    assert code == 1
    assert "fix: pip install 'wasihost[pi]'" in "\n".join(lines)


def test_a_pi4_is_warned_about_the_core_clock(pi: FakePi) -> None:
    (pi.sys / "firmware/devicetree/base/model").write_text("Raspberry Pi 4 Model B Rev 1.5\0")
    pi.chip_labels = {"gpiochip0": "pinctrl-bcm2711"}
    code, report = doctor(pi)
    assert code == 0
    assert "warn  LED strip: on a Pi 4 the SPI clock follows the core clock" in report
    assert "core_freq_min=500" in report


def test_doctor_from_the_command_line_on_this_machine(tmp_path: Path, capsys: Any) -> None:
    """The real machine is no Pi: doctor reports problems, exits 1, and does not crash."""
    path = tmp_path / "host.toml"
    path.write_text(
        '[board]\nkind = "pi"\n[board.pi]\ngpio_chip = "/nonexistent/gpiochip0"\n'
        'spi_device = "/nonexistent/spidev0.0"\n'
    )
    assert main(["doctor", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "problem" in out and "fix:" in out


def test_call_plans_without_the_compiled_module_only_warn(
    pi: FakePi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasihost.runtime import compiled

    code, report = doctor(pi)
    assert "ok    call plans: compiled" in report
    monkeypatch.setattr(compiled, "_UNAVAILABLE", "not built (no compiler)")
    code, report = doctor(pi)
    assert code == 0, report  # the host runs fine on the Python plans
    assert "warn  call plans: compiled ones not built (no compiler)" in report
    assert "apt install gcc python3-dev" in report


# -- one actionable fix per problem (issue 20) ------------------------------------


def no_gpio_chip(pi: FakePi) -> None:
    """Off a Pi (or a kernel without GPIO character devices): no /dev/gpiochip* at all."""
    pi.remove("dev/gpiochip0")
    pi.chip_labels = {}


def half_set_up(pi: FakePi) -> None:
    """Interfaces off, the DHT overlay missing, a BME280 where the BME680 should be."""
    pi.remove("dev/i2c-1")
    pi.remove("dev/spidev0.0")
    pi.remove("sys/bus/iio/devices/iio:device0")
    (pi.root / "boot/firmware/config.txt").write_text("dtparam=i2c_arm=on\ndtparam=spi=on\n")


def off_a_pi(pi: FakePi) -> None:
    no_gpio_chip(pi)
    for relative in (
        "dev/i2c-1",
        "dev/spidev0.0",
        "sys/bus/iio/devices/iio:device0",
        "sys/firmware/devicetree/base/model",
        "sys/class/thermal/thermal_zone0/temp",
        "boot/firmware/config.txt",
    ):
        pi.remove(relative)


def wrong_chip(pi: FakePi) -> None:
    (pi.dev / "gpiochip4").touch()
    pi.chip_labels = {"gpiochip0": "gpio-brcmstb@107d508500", "gpiochip4": "pinctrl-rp1"}


def unknown_chip(pi: FakePi) -> None:
    pi.chip_labels = {"gpiochip0": "some-future-soc"}


BREAKAGES = {
    "no GPIO chip": no_gpio_chip,
    "half set up": half_set_up,
    "off a Pi": off_a_pi,
    "the wrong GPIO chip": wrong_chip,
    "an unknown GPIO chip": unknown_chip,
}


def findings_and_report(pi: FakePi, cfg: HostConfig | None = None, **hardware: Any) -> Any:
    from wasihost.boards.pi.doctor import diagnose, render

    checked = cfg or config(pi)
    seams = {**pi.hardware(), **hardware}
    findings = diagnose(checked, lambda: doctor_facts(checked), pi.machine(), **seams)
    return findings, render(findings)


def assert_one_fix_each(findings: Any, report: str) -> None:
    problems = [f for f in findings if not f.ok]
    assert problems, report
    for finding in problems:
        assert finding.fix, f"{finding.subject}: no fix\n{report}"
        assert "wasihost doctor" not in finding.fix, report
    fixes = [line for line in report.splitlines() if line.strip().startswith("fix:")]
    assert len(fixes) == len(problems), report
    assert len(set(fixes)) == len(fixes), f"a fix printed twice\n{report}"


@pytest.mark.parametrize("breakage", BREAKAGES.values(), ids=BREAKAGES.keys())
def test_every_problem_has_one_actionable_fix(pi: FakePi, breakage: Any) -> None:
    breakage(pi)
    findings, report = findings_and_report(pi)
    assert_one_fix_each(findings, report)


def test_without_a_gpio_chip_the_relays_are_one_finding_with_one_fix(pi: FakePi) -> None:
    no_gpio_chip(pi)
    findings, report = findings_and_report(pi)
    assert "relay on GPIO" not in report, report
    (chip,) = [f for f in findings if f.subject == "GPIO chip"]
    assert not chip.ok and "does not exist" in chip.detail
    assert "buzzer (GPIO 17) and fan (GPIO 27) relays cannot start" in chip.detail
    assert chip.fix is not None and "run wasihost on the Raspberry Pi" in chip.fix


def test_the_wrong_chip_is_said_once_with_the_header_chip(pi: FakePi) -> None:
    wrong_chip(pi)
    _findings, report = findings_and_report(pi)
    assert report.count(f'set gpio_chip = "{pi.dev / "gpiochip4"}"') == 1, report


def test_without_gpiod_both_relays_are_one_finding(
    pi: FakePi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wasihost.boards.pi import relay

    monkeypatch.setattr(relay, "load_gpiod", lambda: None)
    cfg = config(pi)
    lines: list[str] = []
    hardware = {k: v for k, v in pi.hardware().items() if k != "gpiod"}
    run_doctor(cfg, lambda: doctor_facts(cfg), pi.machine(), lines.append, **hardware)
    report = "\n".join(lines)
    assert "FAIL  buzzer and fan relays on GPIO 17, 27: the gpiod package" in report
    assert report.count("fix: pip install 'wasihost[pi]'") == 1, report


def test_config_txt_that_enables_an_interface_replaces_the_enable_fix(pi: FakePi) -> None:
    half_set_up(pi)
    findings, _report = findings_and_report(pi)
    i2c = next(f for f in findings if f.subject == "I2C bus 1")
    leds = next(f for f in findings if f.subject == "LED strip")
    assert i2c.fix is not None and i2c.fix.startswith("config.txt enables I2C")
    assert leds.fix == "config.txt enables SPI: sudo reboot"


def test_a_shared_pin_says_which_keys_to_change(pi: FakePi) -> None:
    findings, report = findings_and_report(pi, config(pi, fan_pin=4))
    shared = next(f for f in findings if f.subject == "GPIO pins")
    assert shared.fix is not None and "fan_pin" in shared.fix
    assert_one_fix_each(findings, report)


def test_a_dht22_read_failure_has_one_fix(pi: FakePi) -> None:
    import errno

    pi.fail_dht(errno.ETIMEDOUT, 3)
    findings, report = findings_and_report(pi)
    assert_one_fix_each(findings, report)


def test_a_bme680_address_that_does_not_answer_has_one_fix(tmp_path: Path) -> None:
    pi = FakePi(tmp_path, devices={})
    findings, report = findings_and_report(pi)
    assert_one_fix_each(findings, report)
    assert "i2cdetect -y 1" in report and 'i2c_address = "0x76"' in report
