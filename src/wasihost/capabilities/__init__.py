"""Host implementations of the WIT capability interfaces, one module each.

``PROVIDERS`` maps a WIT interface name to the function that binds its host
functions to one plugin's ``CapabilityContext``. Every path that hands a
capability to a plugin (the runtime's linker, the native test harness) takes
it from here, so each gets the same check of its arguments' WIT types
(``wit.checked``) before the module's own policy runs.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from wasihost.capabilities import (
    buzzer_controller,
    fan_controller,
    gpio_provider,
    i2c,
    led_controller,
    system_info,
)
from wasihost.capabilities.context import CapabilityContext
from wasihost.capabilities.wit import checked
from wasihost.grants import Grants

Binder = Callable[[CapabilityContext], dict[str, Callable[..., Any]]]


def _checked(module: ModuleType) -> Binder:
    def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
        functions: dict[str, Callable[..., Any]] = module.bind(ctx)
        return {name: checked(ctx, name, function) for name, function in functions.items()}

    return bind


# One module per interface: ``INTERFACE``, its WIT name, and ``bind``, its policy.
MODULES: tuple[ModuleType, ...] = (
    gpio_provider,
    i2c,
    led_controller,
    buzzer_controller,
    fan_controller,
    system_info,
)

PROVIDERS: dict[str, Binder] = {module.INTERFACE: _checked(module) for module in MODULES}

__all__ = ["MODULES", "PROVIDERS", "Binder", "CapabilityContext", "Grants"]
