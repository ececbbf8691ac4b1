"""Host implementations of the WIT capability interfaces, one module each.

``PROVIDERS`` maps a WIT interface name to the function that binds its host
functions to one plugin's ``CapabilityContext``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities import (
    buzzer_controller,
    fan_controller,
    gpio_provider,
    i2c,
    led_controller,
    system_info,
)
from wasihost.capabilities.context import CapabilityContext, Grants

Binder = Callable[[CapabilityContext], dict[str, Callable[..., Any]]]

PROVIDERS: dict[str, Binder] = {
    module.INTERFACE: module.bind
    for module in (
        gpio_provider,
        i2c,
        led_controller,
        buzzer_controller,
        fan_controller,
        system_info,
    )
}

__all__ = ["PROVIDERS", "Binder", "CapabilityContext", "Grants"]
