"""Buzzer and fan relays against a fake ``gpiod`` whose lines hold physical levels."""

from __future__ import annotations

import atexit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.pi import relay as relay_module
from wasihost.boards.pi import safe_off
from wasihost.boards.pi.buzzer import Buzzer
from wasihost.boards.pi.fakes import FakePi, Value
from wasihost.boards.pi.relay import Relay
from wasihost.errors import BoardError

HIGH, LOW = True, False


@pytest.fixture
def pi(tmp_path: Path) -> FakePi:
    return FakePi(tmp_path)


def relay(pi: FakePi, pin: int = 27, active_low: bool = True, device: str = "fan") -> Relay:
    return Relay(device, device, str(pi.dev / "gpiochip0"), pin, active_low, pi.gpiod)


def level(pi: FakePi, pin: int) -> bool:
    return pi.gpiod.levels[(str(pi.dev / "gpiochip0"), pin)]


@pytest.mark.parametrize(("active_low", "off", "on"), [(True, HIGH, LOW), (False, LOW, HIGH)])
def test_polarity_maps_on_and_off_to_pin_levels(
    pi: FakePi, active_low: bool, off: bool, on: bool
) -> None:
    fan = relay(pi, active_low=active_low)
    assert level(pi, 27) is off  # requested already in the safe state
    fan.set(True)
    assert level(pi, 27) is on and fan.get() is True
    fan.set(False)
    assert level(pi, 27) is off and fan.get() is False
    fan.close()


def test_state_is_read_back_from_the_line(pi: FakePi) -> None:
    fan = relay(pi)
    pi.gpiod.levels[(str(pi.dev / "gpiochip0"), 27)] = LOW  # something else pulled it
    assert fan.get() is True
    fan.close()


def test_close_drives_off_releases_once_and_refuses_later_use(pi: FakePi) -> None:
    fan = relay(pi)
    fan.set(True)
    fan.close()
    fan.close()
    assert level(pi, 27) is HIGH  # off for an active-low relay, and it stays so
    assert pi.gpiod.requests[0].released and not pi.gpiod.held
    with pytest.raises(BoardError, match="already released"):
        fan.set(True)


def test_interpreter_exit_drives_relays_off(pi: FakePi, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks: list[Callable[[], Any]] = []
    monkeypatch.setattr(atexit, "register", hooks.append)
    monkeypatch.setattr(atexit, "unregister", lambda hook: None)
    fan = relay(pi)
    fan.set(True)
    assert hooks == [fan.close]
    for hook in hooks:  # what the interpreter does at exit
        hook()
    assert level(pi, 27) is HIGH and pi.gpiod.requests[0].released


def test_a_busy_line_is_a_problem_only_for_that_relay(pi: FakePi) -> None:
    holder = relay(pi, pin=27)
    busy = relay(pi, pin=27)
    problem = busy.problem()
    assert problem is not None and problem.busy
    with pytest.raises(BoardError, match=r"fan missing: GPIO 27 on .* held by another process"):
        busy.set(True)
    holder.set(True)  # the first request still works
    holder.close()


def test_without_gpiod_the_fix_is_the_pi_extra(pi: FakePi, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(relay_module, "load_gpiod", lambda: None)
    fan = Relay("fan", "fan", str(pi.dev / "gpiochip0"), 27)
    with pytest.raises(BoardError, match=r"fan missing: the gpiod package \(fix: pip install"):
        fan.get()
    fan.close()


def test_a_missing_chip_points_at_the_gpio_chip_key(pi: FakePi) -> None:
    fan = Relay("fan", "fan", str(pi.dev / "gpiochip4"), 27, True, pi.gpiod)
    problem = fan.problem()
    assert problem is not None and "[board.pi] gpio_chip" in problem.fix


def history(pi: FakePi, pin: int) -> list[bool]:
    """Every level the buzzer line took, from the fake's request log."""
    return [on for p, on in pi.gpiod.requests[0].history if p == pin]


def test_beep_plays_the_pattern_in_the_background_and_ends_off(pi: FakePi) -> None:
    buzzer = Buzzer(relay(pi, pin=17, device="buzzer"))
    buzzer.beep(3, 1, 1)
    assert buzzer.wait_idle(timeout=5)
    # requested off (high: active-low), on/off three times, then off again in `finally`
    assert history(pi, 17) == [HIGH, LOW, HIGH, LOW, HIGH, LOW, HIGH, HIGH]
    assert buzzer.is_on() is False
    buzzer.close()


def test_close_stops_a_long_pattern_and_leaves_the_buzzer_off(pi: FakePi) -> None:
    buzzer = Buzzer(relay(pi, pin=17, device="buzzer"))
    buzzer.beep(1, 5000, 0)  # returns at once; the pattern would last 5 s
    buzzer.close()  # interrupts it
    assert buzzer.wait_idle(timeout=0)
    assert level(pi, 17) is HIGH  # off (active-low)
    assert pi.gpiod.requests[0].released


def test_a_new_pattern_replaces_the_one_playing(pi: FakePi) -> None:
    buzzer = Buzzer(relay(pi, pin=17, device="buzzer"))
    buzzer.beep(1, 5000, 0)
    buzzer.beep(1, 1, 0)
    assert buzzer.wait_idle(timeout=5)
    assert level(pi, 17) is HIGH
    buzzer.close()


def test_safe_off_drives_both_relays_off_from_the_config(
    pi: FakePi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chip = str(pi.dev / "gpiochip0")
    pi.gpiod.levels[(chip, 17)] = LOW  # left on by a host killed mid-beep
    pi.gpiod.levels[(chip, 5)] = HIGH  # an active-high fan left on
    config = tmp_path / "host.toml"
    config.write_text(
        f'[board]\nkind = "pi"\n[board.pi]\ngpio_chip = "{chip}"\n'
        "fan_pin = 5\nfan_active_low = false\n"
    )
    monkeypatch.setattr(relay_module, "load_gpiod", lambda: pi.gpiod)
    assert safe_off.main(["--config", str(config)]) == 0
    assert pi.gpiod.levels[(chip, 17)] is HIGH and pi.gpiod.levels[(chip, 5)] is LOW
    assert all(request.released for request in pi.gpiod.requests)


def test_the_fake_speaks_the_real_gpiod_api() -> None:
    """The names and keywords the relay uses exist in gpiod 2.x as installed."""
    gpiod = pytest.importorskip("gpiod")
    import inspect

    settings = gpiod.LineSettings(
        direction=gpiod.line.Direction.OUTPUT, output_value=gpiod.line.Value.INACTIVE
    )
    assert settings.output_value is gpiod.line.Value.INACTIVE
    assert {"path", "config", "consumer"} <= set(inspect.signature(gpiod.request_lines).parameters)
    assert {v.name for v in gpiod.line.Value} == {v.name for v in Value}
    for name in ("set_value", "get_value", "release"):
        assert callable(getattr(gpiod.LineRequest, name))
    missing = Relay("fan", "fan", "/nonexistent/gpiochip0", 27, True, gpiod)
    assert missing.problem() is not None
