"""Host side of the ``gpio-provider`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.boards.base import Dht22Reading
from wasihost.capabilities.context import CapabilityContext
from wasihost.capabilities.wit import U8
from wasihost.grants import GPIO_PINS

INTERFACE = "gpio-provider"


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def read_dht22(pin: U8) -> Dht22Reading:
        ctx.require_grant(GPIO_PINS, pin)
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
