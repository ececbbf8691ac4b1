"""Grants: the table, the refusals, and what they do in a running host and in the config.

A grant kind is one row of ``wasihost.grants.GRANTS``; a capability's WIT
types are its Python signature. The first tests hold the rest of the host to
them: the ``Grants`` fields, the config's grant keys, the contract. The
others check that a plugin reaches exactly what it is granted, through a
real host and a built plugin, and that the config refuses a bad grant.
(The hostile suite, tests/hostile/, attacks the grants too.)
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
from wasihost.config import GrantsConfig, HostConfig, parse_config
from wasihost.errors import CapabilityError, ConfigError, GuestError
from wasihost.grants import GRANTS, Grants, describe, devices_of, grants_for
from wasihost.host import Host
from wasihost.leds import LedBuffer
from wasihost.runtime.contract import load_contract

MakeConfig = Callable[..., HostConfig]
MakeHost = Callable[[HostConfig], Host]


# -- the table, and refusals at the capability ---------------------------------------------
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


# -- grants in a running host --------------------------------------------------------------
def chaos(**settings: object) -> dict[str, object]:
    return {"built": "chaos", "world": "dht22-plugin", "settings": settings}


def generic(**plugin: object) -> dict[str, object]:
    return {"built": "generic", "world": "sensor-plugin", **plugin}


def test_led_write_outside_grant_is_refused(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard
) -> None:
    host = make_host(make_config({"intruder": {**chaos(mode="led_outside", index=5), "led": 3}}))
    plugin = host.plugins["intruder"]
    with pytest.raises(
        GuestError, match=r"refused: LED 5 is not granted to intruder \(granted: 3\)"
    ):
        plugin.call()
    assert host.leds.snapshot()[5] == (0, 0, 0)
    assert plugin.ctx.refusals["led"] == 1


def test_gpio_pin_outside_grant_is_refused(make_config: MakeConfig, make_host: MakeHost) -> None:
    host = make_host(make_config({"prober": chaos(mode="read_pin", pin=17)}))
    with pytest.raises(GuestError, match="GPIO 17 is not granted to prober"):
        host.plugins["prober"].call()


def test_explicit_gpio_grant(make_config: MakeConfig, make_host: MakeHost, board: SimBoard) -> None:
    board.set_dht22(20.0, 50.0)  # no random read failures
    host = make_host(
        make_config({"probe": {**chaos(mode="read_pin", pin=17), "grants": {"gpio_pins": [17]}}})
    )
    assert host.plugins["probe"].call()["poll_count"] == 1


def test_buzzer_needs_a_grant(
    make_config: MakeConfig, make_host: MakeHost, board: SimBoard
) -> None:
    host = make_host(make_config({"quiet": {**chaos(mode="beep"), "grants": {"buzzer": False}}}))
    with pytest.raises(GuestError, match="the buzzer is not granted to quiet"):
        host.plugins["quiet"].call()
    assert board.beeps == []


@pytest.mark.parametrize(("grant", "ok"), [([], False), (["0x77"], True)])
def test_i2c_comes_from_grants(
    make_config: MakeConfig, make_host: MakeHost, grant: list[str], ok: bool
) -> None:
    host = make_host(
        make_config({"probe": generic(settings={"probe": 0x77}, grants={"i2c_addresses": grant})})
    )
    if ok:
        host.plugins["probe"].call()
    else:
        with pytest.raises(GuestError, match="I2C address 0x77 is not granted to probe"):
            host.plugins["probe"].call()


# -- grants in the config ------------------------------------------------------------------
def test_grants_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.x\.grants\.i2c_addresses\.0"):
        parse_config({"plugins": {"x": {"grants": {"i2c_addresses": ["0x99"]}}}}, Path("h.toml"))
    with pytest.raises(ConfigError, match=r"plugins\.x\.grants\.leds\[0\]: LED index 30"):
        parse_config({"plugins": {"x": {"grants": {"leds": [30]}}}}, Path("h.toml"))


def test_old_and_new_grant_spellings_refuse_the_same_way() -> None:
    with pytest.raises(ConfigError, match=r"h\.toml: .*\n  plugins\.x\.grants\.gpio_pins\.0: "):
        parse_config({"plugins": {"x": {"grants": {"gpio_pins": [28]}}}}, Path("h.toml"))
    with pytest.raises(ConfigError, match=r"h\.toml: .*\n  sensors\.dht22\.gpio_pin: "):
        parse_config({"sensors": {"dht22": {"gpio_pin": 28}}}, Path("h.toml"))
