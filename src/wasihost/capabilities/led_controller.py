"""Host side of the ``led-controller`` interface: writes go to the LED buffer only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext

INTERFACE = "led-controller"


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    granted = sorted(ctx.grants.leds)

    def check(index: int) -> None:
        if index not in ctx.grants.leds:
            shown = ", ".join(map(str, granted)) or "none"
            raise ctx.refuse(
                "led", f"LED {index} is not granted to {ctx.plugin} (granted: {shown})"
            )

    def set_led(index: int, r: int, g: int, b: int) -> None:
        ctx.require("set-led", index=(index, "u32"), r=(r, "u8"), g=(g, "u8"), b=(b, "u8"))
        check(index)
        ctx.leds.set(index, (r, g, b))

    def set_two(
        index_a: int, r_a: int, g_a: int, b_a: int, index_b: int, r_b: int, g_b: int, b_b: int
    ) -> None:
        ctx.require(
            "set-two",
            index_a=(index_a, "u32"), r_a=(r_a, "u8"), g_a=(g_a, "u8"), b_a=(b_a, "u8"),
            index_b=(index_b, "u32"), r_b=(r_b, "u8"), g_b=(g_b, "u8"), b_b=(b_b, "u8"),
        )  # fmt: skip
        check(index_a)
        check(index_b)
        ctx.leds.set(index_a, (r_a, g_a, b_a))
        ctx.leds.set(index_b, (r_b, g_b, b_b))

    def set_all(r: int, g: int, b: int) -> None:
        ctx.require("set-all", r=(r, "u8"), g=(g, "u8"), b=(b, "u8"))
        for index in granted:
            ctx.leds.set(index, (r, g, b))

    def clear() -> None:
        set_all(0, 0, 0)

    return {"set-led": set_led, "set-two": set_two, "set-all": set_all, "clear": clear}
