"""Host side of the ``led-controller`` interface: writes go to the LED buffer only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext
from wasihost.capabilities.wit import U8, U32
from wasihost.grants import LEDS

INTERFACE = "led-controller"


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    granted = sorted(ctx.grants.leds)

    def set_led(index: U32, r: U8, g: U8, b: U8) -> None:
        ctx.require_grant(LEDS, index)
        ctx.leds.set(index, (r, g, b))

    def set_two(
        index_a: U32, r_a: U8, g_a: U8, b_a: U8, index_b: U32, r_b: U8, g_b: U8, b_b: U8
    ) -> None:
        ctx.require_grant(LEDS, index_a)
        ctx.require_grant(LEDS, index_b)
        ctx.leds.set(index_a, (r_a, g_a, b_a))
        ctx.leds.set(index_b, (r_b, g_b, b_b))

    def set_all(r: U8, g: U8, b: U8) -> None:
        for index in granted:
            ctx.leds.set(index, (r, g, b))

    def clear() -> None:
        set_all(0, 0, 0)

    return {"set-led": set_led, "set-two": set_two, "set-all": set_all, "clear": clear}
