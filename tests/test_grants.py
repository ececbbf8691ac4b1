"""The grant table and the capabilities' signatures agree with everything derived from them.

A grant kind is one row of ``wasihost.grants.GRANTS``; a capability's WIT
types are its Python signature. These tests hold the rest of the host to
them: the ``Grants`` fields, the config's grant keys, the contract.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.capabilities import MODULES, PROVIDERS, CapabilityContext
from wasihost.capabilities.wit import checked, signature
from wasihost.config import GrantsConfig, parse_config
from wasihost.errors import CapabilityError, ConfigError
from wasihost.grants import GRANTS, Grants, describe, devices_of, grants_for
from wasihost.leds import LedBuffer
from wasihost.runtime.contract import load_contract


def test_every_grant_kind_is_a_grants_field_and_a_config_key() -> None:
    fields = dataclasses.fields(Grants)
    assert [field.name for field in fields] == [grant.key for grant in GRANTS]
    for field, grant in zip(fields, GRANTS, strict=True):
        assert field.type == ("bool" if grant.is_switch else "frozenset[int]"), grant.key
    assert list(GrantsConfig.model_fields) == [grant.key for grant in GRANTS]


def test_defaults_come_from_the_worlds_imports() -> None:
    contract = load_contract()
    pi_monitor = contract.worlds["pi-monitor-plugin"].imports
    assert grants_for({}, pi_monitor) == Grants(fan=True)
    assert grants_for({"fan": False, "leds": [0]}, pi_monitor) == Grants(leds=frozenset({0}))
    assert grants_for({}, contract.worlds["dht22-plugin"].imports) == Grants(buzzer=True)
    assert grants_for({}, contract.worlds["dashboard-plugin"].imports) == Grants()


@pytest.mark.parametrize(
    ("grants", "imports", "devices"),
    [
        (Grants(), set(), set()),
        (Grants(), {"gpio-provider", "system-info"}, {"cpu-temperature", "system"}),
        (Grants(gpio_pins=frozenset({4}), leds=frozenset({1})), set(), {"dht22", "leds"}),
        (Grants(i2c_addresses=frozenset({0x77}), buzzer=True), set(), {"i2c", "buzzer"}),
        (Grants(fan=True), {"fan-controller"}, {"fan"}),
    ],
)
def test_devices_a_plugin_reaches(grants: Grants, imports: set[str], devices: set[str]) -> None:
    assert devices_of(grants, imports) == devices


def test_grants_are_described_in_one_line() -> None:
    grants = Grants(leds=frozenset({2, 1}), i2c_addresses=frozenset({0x44, 0x77}), fan=True)
    assert describe(grants) == "LEDs 1, 2; GPIO none; I2C 0x44, 0x77; buzzer no; fan yes"


@pytest.fixture
def ctx() -> CapabilityContext:
    board = SimBoard(seed=1)
    return CapabilityContext("p", board, LedBuffer(board.led_count), Grants(leds=frozenset({3})))


@pytest.mark.parametrize(
    ("interface", "function", "args", "kind", "message"),
    [
        (
            "led-controller",
            "set-led",
            (5, 0, 0, 0),
            "led",
            "LED 5 is not granted to p (granted: 3)",
        ),
        ("gpio-provider", "read-dht22", (4,), "gpio", "GPIO 4 is not granted to p"),
        ("i2c", "transfer", (0x76, b"", 1), "i2c", "I2C address 0x76 is not granted to p"),
        ("buzzer-controller", "beep", (1, 10, 10), "buzzer", "the buzzer is not granted to p"),
        ("fan-controller", "set-fan", (True,), "fan", "the fan is not granted to p"),
    ],
)
def test_a_call_outside_a_grant_is_refused_as_its_row_says(
    ctx: CapabilityContext,
    interface: str,
    function: str,
    args: tuple[Any, ...],
    kind: str,
    message: str,
) -> None:
    with pytest.raises(CapabilityError) as refused:
        PROVIDERS[interface](ctx)[function](*args)
    assert str(refused.value) == message
    assert ctx.refusals == {kind: 1}


def test_every_capability_signature_is_the_contracts() -> None:
    """The WIT types a capability function states are the ones ``wit/plugin.wit``
    gives: the argument checks are built from them."""
    contract = load_contract()
    board = SimBoard(seed=1)
    ctx = CapabilityContext("p", board, LedBuffer(board.led_count), Grants())
    imported = set().union(*(world.imports for world in contract.worlds.values()))
    assert {module.INTERFACE for module in MODULES} == imported
    for module in MODULES:
        interface = contract.interfaces[module.INTERFACE]
        functions: dict[str, Callable[..., Any]] = module.bind(ctx)
        assert set(functions) == set(interface.signatures), module.INTERFACE
        for name, function in functions.items():
            wit = interface.signatures[name]
            expected = tuple((param, ty.show()) for param, ty in wit.params)
            assert signature(function) == expected, f"{module.INTERFACE}#{name}"


def test_a_function_without_parameters_is_not_wrapped(ctx: CapabilityContext) -> None:
    def uptime() -> int:
        return 1

    assert checked(ctx, "uptime", uptime) is uptime


def test_old_and_new_grant_spellings_refuse_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"h\.toml: .*\n  plugins\.x\.grants\.gpio_pins\.0: "):
        parse_config({"plugins": {"x": {"grants": {"gpio_pins": [28]}}}}, Path("h.toml"))
    with pytest.raises(ConfigError, match=r"h\.toml: .*\n  sensors\.dht22\.gpio_pin: "):
        parse_config({"sensors": {"dht22": {"gpio_pin": 28}}}, Path("h.toml"))
