"""One plugin: its checked component, its live instance, its lifecycle and counters.

``Plugin`` is the only place a plugin's state changes. Calls are serialised
by a per-plugin lock (a wasmtime store must never be used by two threads at
once) and run on worker threads, never on the event loop.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from wasihost.boards.base import Board
from wasihost.capabilities import CapabilityContext, Grants
from wasihost.capabilities.context import wall_clock_ms
from wasihost.errors import GuestError, PluginError, PluginLoadError, PluginTrap
from wasihost.leds import LedBuffer
from wasihost.runtime.component import CheckedComponent, check_component
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.instance import Instance, build_linker

log = logging.getLogger("wasihost.plugin")


class PluginState(StrEnum):
    LOADING = "loading"
    RUNNING = "running"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PluginSpec:
    """Everything the host decided about a plugin from the config."""

    name: str
    world: str
    wasm: Path
    settings: dict[str, Any] = field(default_factory=dict)
    grants: Grants = field(default_factory=Grants)
    timeout_ms: int = 1000
    max_memory_mb: int = 64


@dataclass
class PluginStats:
    polls: int = 0
    errors: int = 0
    traps: int = 0
    restarts: int = 0
    last_error: str | None = None
    last_poll_ms: float | None = None


class Plugin:
    def __init__(
        self,
        spec: PluginSpec,
        engine: Engine,
        contract: Contract,
        board: Board,
        leds: LedBuffer,
        clock_ms: Callable[[], int] = wall_clock_ms,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.world = spec.world
        self._engine = engine
        self._contract = contract
        self.ctx = CapabilityContext(spec.name, board, leds, spec.grants, clock_ms)
        # The world must exist (the host checks the config first); its logic
        # function says whether the cycle polls this plugin or the web renders it.
        self.role = "renderer" if contract.logic_of(spec.world)[1] == "render" else "sensor"
        self.state = PluginState.LOADING
        self.stats = PluginStats()
        self._lock = threading.Lock()
        self._checked: CheckedComponent | None = None
        self._linker: Any = None
        self._instance: Instance | None = None
        self._logic = ""

    # -- lifecycle ----------------------------------------------------------
    def load(self) -> None:
        """Compile, check, link, instantiate and configure; blocking (call off the loop)."""
        try:
            checked = check_component(
                self.name, self._engine, self._contract, self.world, self.spec.wasm
            )
            linker = build_linker(self._engine, self._contract, self.world, self.ctx)
            instance = self._instantiate(checked, linker)
        except PluginError as exc:
            self.state = PluginState.FAILED
            self.stats.last_error = exc.reason
            raise
        with self._lock:
            self._close_instance()
            self._checked, self._linker, self._instance = checked, linker, instance
            self._logic = f"{checked.logic_interface.split('/')[1].split('@')[0]}." + (
                checked.logic_function
            )
            self.state = PluginState.RUNNING
        log.info(
            "[%s] loaded %s (%s, sha256 %s)",
            self.name,
            self.spec.wasm,
            self.world,
            checked.sha256[:12],
        )

    def _instantiate(self, checked: CheckedComponent, linker: Any) -> Instance:
        instance = Instance(
            self.name, self._engine, checked, linker, self.spec.timeout_ms, self.spec.max_memory_mb
        )
        if checked.has_settings:
            try:
                instance.call("settings.configure", json.dumps(self.spec.settings))
            except GuestError as exc:
                instance.close()
                raise PluginLoadError(self.name, f"refused its settings: {exc.reason}") from None
            except PluginTrap as exc:
                instance.close()
                raise PluginLoadError(self.name, exc.reason) from None
        return instance

    def _close_instance(self) -> None:
        if self._instance is not None:
            self._instance.close()
            self._instance = None

    def close(self) -> None:
        with self._lock:
            self._close_instance()
            self.state = PluginState.STOPPED

    # -- calls --------------------------------------------------------------
    def call(self, *args: Any) -> Any:
        """Call the world's logic function (``poll`` or ``render``); blocking.

        Raises ``GuestError`` for the guest's own error result, ``PluginTrap``
        when the guest trapped (the instance is discarded and the next call
        runs on a fresh one, with fresh state), ``PluginError`` when the
        plugin is not loaded.
        """
        with self._lock:
            if self._checked is None or self.state is PluginState.STOPPED:
                raise PluginError(self.name, f"not running: {self.stats.last_error}")
            if self._instance is None:
                self._restart()
            assert self._instance is not None
            self.stats.polls += 1
            started = time.perf_counter()
            try:
                return self._instance.call(self._logic, *args)
            except GuestError as exc:
                self.stats.errors += 1
                self.stats.last_error = exc.reason
                raise
            except PluginTrap as exc:
                self.stats.traps += 1
                self.stats.last_error = exc.reason
                self._close_instance()
                raise
            finally:
                self.stats.last_poll_ms = (time.perf_counter() - started) * 1000

    def _restart(self) -> None:
        assert self._checked is not None
        try:
            self._instance = self._instantiate(self._checked, self._linker)
        except PluginLoadError as exc:
            self.state = PluginState.FAILED
            self.stats.last_error = exc.reason
            raise
        self.stats.restarts += 1
        self.state = PluginState.RUNNING
        log.warning("[%s] new instance after a trap; guest state was reset", self.name)

    def status(self) -> dict[str, Any]:
        """The plugin's health as ``/api/plugins`` reports it."""
        return {
            "state": self.state.value,
            "world": self.world,
            "polls": self.stats.polls,
            "errors": self.stats.errors,
            "traps": self.stats.traps,
            "restarts": self.stats.restarts,
            "refused_calls": sum(self.ctx.refusals.values()),
            "last_error": self.stats.last_error,
            "last_poll_ms": self.stats.last_poll_ms,
            "loaded_hash": self._checked.sha256[:12] if self._checked else None,
            "wasm": str(self.spec.wasm),
        }
