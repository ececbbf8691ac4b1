"""Host side of the ``gpio-provider`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.boards.base import Dht22Reading
from wasihost.capabilities.context import CapabilityContext

INTERFACE = "gpio-provider"


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def read_dht22(pin: int) -> Dht22Reading:
        ctx.require("read-dht22", pin=(pin, "u8"))
        if pin not in ctx.grants.gpio_pins:
            raise ctx.refuse("gpio", f"GPIO {pin} is not granted to {ctx.plugin}")
        return ctx.board.read_dht22(pin)

    def read_cpu_temperature() -> float:
        return ctx.board.read_cpu_temperature()

    def get_timestamp_ms() -> int:
        return ctx.clock_ms()

    return {
        "read-dht22": read_dht22,
        "read-cpu-temperature": read_cpu_temperature,
        "get-timestamp-ms": get_timestamp_ms,
    }
