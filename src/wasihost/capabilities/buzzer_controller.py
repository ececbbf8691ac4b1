"""Host side of the ``buzzer-controller`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.capabilities.context import CapabilityContext
from wasihost.capabilities.wit import U8, U32
from wasihost.grants import BUZZER

INTERFACE = "buzzer-controller"
MAX_BEEPS = 20
MAX_DURATION_MS = 5000


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def beep(count: U8, duration_ms: U32, interval_ms: U32) -> None:
        ctx.require_grant(BUZZER)
        if count > MAX_BEEPS or duration_ms > MAX_DURATION_MS or interval_ms > MAX_DURATION_MS:
            raise ctx.refuse(
                "buzzer-pattern",
                f"beep pattern too long: at most {MAX_BEEPS} beeps of {MAX_DURATION_MS} ms",
            )
        ctx.within_rate("buzzer")
        ctx.board.beep(count, duration_ms, interval_ms)

    return {"beep": beep}
