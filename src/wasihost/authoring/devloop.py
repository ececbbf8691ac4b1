"""``wasihost run --dev``: edit a plugin, save, and see the new logic live.

Watches plugin sources and the WIT, rebuilds what changed (a WIT change
rebuilds every plugin) into the build folder, and leaves the rest to the
reloader, which sees the new ``.wasm`` like any other deploy. A build
error is logged with the compiler's message; the running version stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from watchfiles import Change, awatch

from wasihost.authoring.build import build_one, discover
from wasihost.errors import BuildError
from wasihost.runtime.engine import Engine
from wasihost.runtime.reload import READY_PROBE_MS

log = logging.getLogger("wasihost.dev")


def _relevant(_change: Change, path: str) -> bool:
    return path.endswith((".py", ".wit", "plugin.toml")) and "__pycache__" not in path


class DevRebuilder:
    def __init__(
        self, engine: Engine, plugins_dir: Path, wit_dir: Path, out_dir: Path, names: Iterable[str]
    ) -> None:
        self.engine = engine
        self.plugins_dir = plugins_dir
        self.wit_dir = wit_dir
        self.out_dir = out_dir
        self.names = set(names)  # only plugins the host runs from this build folder
        self.failures = 0
        self.ready = asyncio.Event()  # set once the file watcher is watching

    def affected(self, paths: Iterable[Path]) -> set[str]:
        """Plugins to rebuild for these changed files."""
        names: set[str] = set()
        plugins_root = self.plugins_dir.resolve()
        for path in paths:
            path = path.resolve()
            if path.is_relative_to(self.wit_dir.resolve()):
                return set(discover(self.plugins_dir)) & self.names
            if path.is_relative_to(plugins_root):
                parts = path.relative_to(plugins_root).parts
                if len(parts) > 1 and parts[0] in self.names:
                    names.add(parts[0])
        return names

    async def rebuild(self, names: Iterable[str]) -> None:
        for name in sorted(names):
            log.info("[%s] source changed: rebuilding…", name)
            try:
                result = await asyncio.to_thread(
                    build_one, name, self.plugins_dir, self.wit_dir, self.out_dir, self.engine
                )
            except BuildError as exc:
                self.failures += 1
                log.error("[%s] build failed; the running version stays:\n%s", name, exc)
                continue
            if result.built:
                log.info("[%s] rebuilt in %.1f s; reloading", name, result.seconds)

    async def run(self, stop: asyncio.Event) -> None:
        folders = [p for p in (self.plugins_dir, self.wit_dir) if p.is_dir()]
        log.info("dev mode: watching %s", ", ".join(map(str, folders)))
        async for changes in awatch(
            *folders,
            stop_event=stop,
            watch_filter=_relevant,
            step=100,
            rust_timeout=READY_PROBE_MS,
            yield_on_timeout=True,
        ):
            self.ready.set()  # the first (empty) yield: the OS watches are in place
            if changes:
                await self.rebuild(self.affected(Path(raw) for _, raw in changes))
