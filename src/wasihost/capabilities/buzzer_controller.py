"""Host side of the ``buzzer-controller`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext

INTERFACE = "buzzer-controller"
MAX_BEEPS = 20
MAX_DURATION_MS = 5000


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def beep(count: int, duration_ms: int, interval_ms: int) -> None:
        ctx.require(
            "beep",
            count=(count, "u8"),
            duration_ms=(duration_ms, "u32"),
            interval_ms=(interval_ms, "u32"),
        )
        if not ctx.grants.buzzer:
            raise ctx.refuse("buzzer", f"the buzzer is not granted to {ctx.plugin}")
        if count > MAX_BEEPS or duration_ms > MAX_DURATION_MS or interval_ms > MAX_DURATION_MS:
            raise ctx.refuse(
                "buzzer-pattern",
                f"beep pattern too long: at most {MAX_BEEPS} beeps of {MAX_DURATION_MS} ms",
            )
        ctx.within_rate("buzzer")
        ctx.board.beep(count, duration_ms, interval_ms)

    return {"beep": beep}
