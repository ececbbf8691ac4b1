"""The one wasmtime Engine of the host, and its epoch ticker.

One engine is shared by every plugin so compiled code and the on-disk
compile cache are shared too. Deadlines use epoch interruption: a single
ticker thread advances the engine's epoch every ``TICK_MS`` and each call
sets its store's deadline in ticks, which costs the guest almost nothing,
unlike fuel metering.
"""

from __future__ import annotations

import functools
import logging
import math
import platform
import threading
import weakref
from importlib import metadata
from typing import Literal

import wasmtime
from wasmtime import component

from wasihost.runtime import compiled, values

TICK_MS = 10

log = logging.getLogger("wasihost.runtime")

# "compiled": call plans built once per function, converting in C (compiled.py);
# "typed": the same plans in Python (plans.py), used where the C module is not built;
# "generic": wasmtime-py's public component API, the fallback should the others misbehave.
CallPath = Literal["compiled", "typed", "generic"]


class Engine:
    # Everything that makes compiled code of one engine unusable by another:
    # precompiled artifacts are tagged with it and ignored when it differs.
    # The wasm stack cap (wasmtime's default, stated here so it is a decision):
    # deep recursion in a guest traps instead of overflowing the host's stack.
    MAX_WASM_STACK = 512 * 1024
    SETTINGS = f"epoch_interruption=1;max_wasm_stack={MAX_WASM_STACK}"

    def __init__(self, cache: bool = True, call_path: CallPath = "compiled") -> None:
        missing = compiled.unavailable()
        if call_path == "compiled" and missing:
            log.warning(
                'compiled call plans %s: using the Python ones (call_path = "typed")', missing
            )
            call_path = "typed"
        if call_path == "typed" and values.LAYOUT_PROBLEM is not None:
            # The typed plans read the same layout: rather slow than wrong.
            log.warning(
                'call plans off: %s; using wasmtime-py\'s own API (call_path = "generic")',
                values.LAYOUT_PROBLEM,
            )
            call_path = "generic"
        self.call_path: CallPath = call_path
        self.wasmtime = wasmtime.Engine(self.config(cache))
        # Compiled components by the sha256 of their bytes. Plugins loaded from the
        # same file share one compiled copy (tens of MB each); an entry disappears
        # when no plugin holds that version any more (e.g. after a reload).
        self.components: weakref.WeakValueDictionary[str, component.Component] = (
            weakref.WeakValueDictionary()
        )
        # The sha256 of a file as last read, by (path, inode, mtime, ctime, size): the
        # shared runtime (20 MB) is loaded by every source plugin and on every
        # reload of one; reading and hashing it each time cost ~40 ms.
        self.file_hashes: dict[tuple[str, int, int, int, int], str] = {}
        self._compile_locks: dict[str, threading.Lock] = {}
        self._compile_locks_lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="wasihost-epoch", daemon=True)
        self._ticker.start()

    @classmethod
    def config(cls, cache: bool = True, target: str | None = None) -> wasmtime.Config:
        """The settings ``SETTINGS`` names, in one place: the host's engine and the
        one that compiles baseline artifacts (artifacts.py) must agree on them, or
        the artifacts' tag would vouch for code compiled otherwise."""
        config = wasmtime.Config()
        config.cache = cache
        config.epoch_interruption = True
        config.max_wasm_stack = cls.MAX_WASM_STACK
        if target is not None:
            config.target = target
        return config

    def _tick(self) -> None:
        while not self._stop.wait(TICK_MS / 1000):
            self.wasmtime.increment_epoch()

    def compile_lock(self, sha256: str) -> threading.Lock:
        """The lock to hold while loading one component: plugins of the same file
        wait for one compile, different components compile at the same time."""
        with self._compile_locks_lock:
            return self._compile_locks.setdefault(sha256, threading.Lock())

    @functools.cached_property
    def tag(self) -> str:
        """Identifies compiled code this engine can load: wasmtime, settings, CPU."""
        version = metadata.version("wasmtime")
        return f"wasmtime-{version};{self.SETTINGS};{platform.machine()}"

    @staticmethod
    def ticks_for(timeout_ms: int) -> int:
        """Epoch ticks for a deadline of ``timeout_ms`` (at least one, rounded up)."""
        return max(1, math.ceil(timeout_ms / TICK_MS))

    def close(self) -> None:
        self._stop.set()
        self._ticker.join(timeout=1)
