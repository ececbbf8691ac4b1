"""Host side of the ``system-info`` interface."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasihost.boards.base import MemoryInfo
from wasihost.capabilities.context import CapabilityContext

INTERFACE = "system-info"


def bind(ctx: CapabilityContext) -> dict[str, Callable[..., Any]]:
    def get_memory() -> MemoryInfo:
        return ctx.board.memory()

    def get_cpu_load() -> float:
        return ctx.board.cpu_load_percent()

    def get_uptime_seconds() -> int:
        return ctx.board.uptime_seconds()

    return {
        "get-memory": get_memory,
        "get-cpu-load": get_cpu_load,
        "get-uptime-seconds": get_uptime_seconds,
    }
