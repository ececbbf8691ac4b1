"""Imports every module of the runtime's curated standard library, by the names
the render call is given, and uses a lazily imported one (``datetime.strptime``)."""

from __future__ import annotations

import datetime
import importlib

from wit_world import exports


class DashboardLogic(exports.DashboardLogic):
    def render(self, state_json: str) -> str:
        failed = []
        for name in state_json.split(","):
            try:
                importlib.import_module(name)
            except ImportError as exc:
                failed.append(f"{name}: {exc}")
        parsed = datetime.datetime.strptime("2026-12-06", "%Y-%m-%d").date().isoformat()
        return "\n".join([parsed, *failed])
