"""Every kind of grant, defined once.

A grant is hardware a plugin may reach beyond what its world imports. A row
of ``GRANTS`` holds all the host knows about one kind, so adding one is one
row (plus its field in ``Grants``, which a test keeps in step): the config
validates ``[plugins.<name>.grants]`` from its values, ``plugin_specs`` gives
it its default from the world's imports, ``devices_of`` says which board
device it reaches, and a capability refusing a call outside it, like
``wasihost check`` listing it, names it the same way.

It sits outside the layers, beside ``errors.py``, because both the
capabilities (layer 2) and ``config.py`` read it, and the boards (layer 1)
import ``config``: inside ``capabilities/`` it would make config import that
package, which imports the boards, which import config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Grants:
    """The hardware a plugin may touch beyond what its world imports: one field
    per row of ``GRANTS``, of the same name. The defaults grant nothing."""

    leds: frozenset[int] = frozenset()
    gpio_pins: frozenset[int] = frozenset()
    i2c_addresses: frozenset[int] = frozenset()
    buzzer: bool = False
    fan: bool = False


@dataclass(frozen=True)
class Grant:
    """One kind of grant: a set of numbers (LEDs, pins, addresses) or a switch
    (a device the plugin may use or not)."""

    key: str  # its ``Grants`` field and its key in ``[plugins.<name>.grants]``
    label: str  # in ``wasihost check``'s grant line, e.g. "LEDs 1, 2", "buzzer yes"
    device: str  # the board device it reaches, named as ``BoardProblem.device`` names it
    refusal: str  # the kind a refused call is counted under (``refused_by_kind``)
    refused: str  # the refusal, from {value}, {plugin} and {granted}
    values: tuple[int, int | None] | None = None  # lowest and highest value; None: a switch
    hex: bool = False  # written and shown as "0x44"
    imported_by: str | None = None  # a switch is on by default where the world imports this

    @property
    def is_switch(self) -> bool:
        return self.values is None

    def held(self, grants: Grants) -> frozenset[int] | bool:
        held: frozenset[int] | bool = getattr(grants, self.key)
        return held

    def default(self, imports: Set[str]) -> frozenset[int] | bool:
        """What a plugin whose world imports ``imports`` gets without asking."""
        if self.is_switch:
            return self.imported_by is not None and self.imported_by in imports
        return frozenset()

    def holds(self, value: object) -> bool:
        """Whether ``value`` is one this kind of grant can hold (a switch holds none)."""
        if self.values is None or type(value) is not int:
            return False
        low, high = self.values
        return low <= value and (high is None or value <= high)

    def show(self, value: int) -> str:
        return f"0x{value:02x}" if self.hex else str(value)

    def listed(self, grants: Grants) -> str:
        """The granted values, e.g. "1, 2" or "none"; a switch: "yes" or "no"."""
        held = self.held(grants)
        if isinstance(held, bool):
            return "yes" if held else "no"
        return ", ".join(self.show(value) for value in sorted(held)) or "none"

    def allows(self, grants: Grants, value: int | None = None) -> bool:
        """Whether ``value`` is granted (a switch: whether it is on)."""
        held = self.held(grants)
        return held if isinstance(held, bool) else value in held

    def refusal_message(self, grants: Grants, plugin: str, value: int | None = None) -> str:
        shown = "" if value is None else self.show(value)
        return self.refused.format(value=shown, plugin=plugin, granted=self.listed(grants))


LEDS = Grant(
    "leds",
    "LEDs",
    device="leds",
    refusal="led",
    # The granted LEDs are named: picking another plugin's index is the usual slip.
    refused="LED {value} is not granted to {plugin} (granted: {granted})",
    values=(0, None),  # the strip's length bounds it (``[board] led_count``)
)
GPIO_PINS = Grant(
    "gpio_pins",
    "GPIO",
    device="dht22",
    refusal="gpio",
    refused="GPIO {value} is not granted to {plugin}",
    values=(0, 27),  # the BCM numbers of the 40-pin header
)
I2C_ADDRESSES = Grant(
    "i2c_addresses",
    "I2C",
    device="i2c",
    refusal="i2c",
    refused="I2C address {value} is not granted to {plugin}",
    values=(0x03, 0x77),  # 7-bit addresses a device may have
    hex=True,
)
BUZZER = Grant(
    "buzzer",
    "buzzer",
    device="buzzer",
    refusal="buzzer",
    refused="the buzzer is not granted to {plugin}",
    imported_by="buzzer-controller",
)
FAN = Grant(
    "fan",
    "fan",
    device="fan",
    refusal="fan",
    refused="the fan is not granted to {plugin}",
    imported_by="fan-controller",
)

GRANTS: tuple[Grant, ...] = (LEDS, GPIO_PINS, I2C_ADDRESSES, BUZZER, FAN)

# Devices a world reaches by importing an interface, with no grant in between.
IMPORTED_DEVICES = {"gpio-provider": "cpu-temperature", "system-info": "system"}


def grants_for(explicit: Mapping[str, Iterable[int] | bool], imports: Set[str]) -> Grants:
    """A plugin's grants: what ``explicit`` (its ``[plugins.<name>.grants]``) says,
    each kind it leaves out at its default for a world importing ``imports``."""
    values: dict[str, Any] = {}
    for grant in GRANTS:
        value = explicit.get(grant.key)
        if value is None:
            values[grant.key] = grant.default(imports)
        else:
            values[grant.key] = value if isinstance(value, bool) else frozenset(value)
    return Grants(**values)


def devices_of(grants: Grants, imports: Set[str]) -> frozenset[str]:
    """The board devices a plugin with ``grants``, whose world imports ``imports``,
    can reach, named as ``BoardProblem.device`` names them."""
    granted = {grant.device for grant in GRANTS if grant.held(grants)}
    imported = {device for interface, device in IMPORTED_DEVICES.items() if interface in imports}
    return frozenset(granted | imported)


def describe(grants: Grants) -> str:
    """One line naming every grant, e.g. "LEDs 1; GPIO 4; I2C none; buzzer yes; fan no"."""
    return "; ".join(f"{grant.label} {grant.listed(grants)}" for grant in GRANTS)
