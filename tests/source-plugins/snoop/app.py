"""Hostile source plugin of the dashboard world, which has no capabilities.

The runtime hides the capability bindings its world lacks, so importing them
fails; this plugin calls the runtime's import trampoline directly instead,
as an attacker would, with the import numbers it is given (comma-separated,
as the "state" the test renders). The host's linker must refuse each call:
a ``result`` capability answers its error, any other traps.
"""

from __future__ import annotations

from typing import Any

import componentize_py_runtime
from wit_world import exports


def _attempt(index: int) -> str:
    call: Any = componentize_py_runtime.call_import  # type: ignore[attr-defined]
    try:
        return f"{index} returned {call(index, [])!r}"
    except Exception as exc:
        return f"{index} raised {type(exc).__name__}: {exc}"


class DashboardLogic(exports.DashboardLogic):
    def render(self, state_json: str) -> str:
        return "\n".join(_attempt(int(i)) for i in state_json.split(","))
