"""Host side of the ``fan-controller`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext
from wasihost.capabilities.wit import Bool
from wasihost.grants import FAN

INTERFACE = "fan-controller"


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def set_fan(on: Bool) -> None:
        ctx.require_grant(FAN)
        if on != ctx.board.get_fan():  # setting the current state is free
            ctx.within_rate("fan")
            ctx.board.set_fan(on)

    def get_fan_state() -> bool:
        return ctx.board.get_fan()

    return {"set-fan": set_fan, "get-fan-state": get_fan_state}
