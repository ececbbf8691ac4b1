"""Hot reload: put a plugin's new ``.wasm`` live without disturbing the others.

Two detectors feed one path. ``watch`` gets inotify events through
watchfiles (which waits until a file has been quiet for ``STEP_MS``, so a
file still being written is not picked up half-way); ``check_files``,
called before every cycle, compares each plugin's file signature with the
live one as a fallback (e.g. on filesystems without inotify) and only acts
once the signature has been stable for a whole cycle.

A reload compiles, checks, instantiates and configures the new version on
a worker thread while every plugin, the old version included, keeps
polling; then ``Plugin.swap`` makes it live between two polls, carrying
state over. Any failure keeps the old version, is logged and shown as
``reload_error``, and is retried when the file changes again.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from watchfiles import awatch

from wasihost.errors import PluginError
from wasihost.runtime.plugin import Plugin, Signature
from wasihost.runtime.source import LIBRARY
from wasihost.snapshots import SnapshotStore

log = logging.getLogger("wasihost.runtime.reload")

# Quiet time before a batch of file events is acted on. A rename lands at once;
# an in-place write still in progress may be caught half-way, fail to load,
# and is then retried on its next event, so a short step costs nothing.
STEP_MS = 20
# watchfiles gives no "watching now" signal; with this timeout its loop
# yields an empty batch once the OS watches are in place (and twice a second
# after that, which costs next to nothing), and ``ready`` is set then.
READY_PROBE_MS = 500


class Reloader:
    def __init__(self, plugins: dict[str, Plugin], snapshots: SnapshotStore | None = None) -> None:
        self.plugins = plugins
        self.snapshots = snapshots
        self._by_path = {
            p.spec.wasm.resolve(): name for name, p in plugins.items() if p.spec.source is None
        }
        # A source plugin is every file below its folder, and the shared guest
        # library beside it (its reload is a no-op if its own files are unchanged).
        self._by_folder: list[tuple[Path, str]] = []
        for name, plugin in plugins.items():
            if plugin.spec.source is not None:
                folder = plugin.spec.source.resolve()
                self._by_folder += [(folder, name), (folder.parent / LIBRARY, name)]
        self._tasks: dict[str, asyncio.Task[None]] = {}
        # One reload of a plugin at a time, whoever asks (detectors, operator).
        self._locks: dict[str, asyncio.Lock] = {}
        self.ready = asyncio.Event()  # set once the file watcher is watching
        self._again: set[str] = set()
        self._failed_signature: dict[str, Signature | None] = {}
        self._seen_signature: dict[str, Signature | None] = {}

    # -- detection ------------------------------------------------------------
    async def watch(self, stop: asyncio.Event) -> None:
        """React to file events in the folders holding plugin files until ``stop``."""
        candidates = {path.parent for path in self._by_path}
        candidates |= {folder for folder, _ in self._by_folder}
        present = {folder for folder in candidates if folder.is_dir()}
        # Nested folders would report one event twice: watch the outermost only.
        folders = sorted(f for f in present if not any(f.is_relative_to(o) for o in present - {f}))
        if not folders:
            return
        log.info("watching %s for new plugin versions", ", ".join(map(str, folders)))
        async for changes in awatch(
            *folders,
            stop_event=stop,
            step=STEP_MS,
            recursive=bool(self._by_folder),
            watch_filter=None,
            rust_timeout=READY_PROBE_MS,
            yield_on_timeout=True,
        ):
            self.ready.set()  # the first (empty) yield: the OS watches are in place
            for name in sorted({n for _change, raw in changes for n in self._named(raw)}):
                self.request(name)

    def _named(self, raw: str) -> list[str]:
        """The plugins a changed path may be a new version of."""
        path = Path(raw).resolve()
        if "__pycache__" in path.parts:
            return []
        named = self._by_path.get(path)
        found = [named] if named is not None else []
        return found + [name for folder, name in self._by_folder if path.is_relative_to(folder)]

    def check_files(self) -> None:
        """The per-cycle fallback: reload a plugin whose file changed and has
        been stable since the previous check (and did not fail as it is)."""
        for name, plugin in self.plugins.items():
            signature = plugin.spec.signature()
            previous = self._seen_signature.get(name)
            self._seen_signature[name] = signature
            if (
                signature is not None
                and signature != plugin.signature
                and signature == previous
                and signature != self._failed_signature.get(name)
            ):
                self.request(name)

    # -- reloading -----------------------------------------------------------
    def request(self, name: str) -> None:
        """Reload ``name`` soon; a request during a reload runs it again after."""
        task = self._tasks.get(name)
        if task is not None and not task.done():
            self._again.add(name)
            return
        self._tasks[name] = asyncio.create_task(self._run(name), name=f"reload-{name}")

    async def _run(self, name: str) -> None:
        while True:
            self._again.discard(name)
            await self.reload(name)
            if name not in self._again:
                return

    async def reload(self, name: str) -> bool:
        """Prepare the new version off the loop, then swap it in; True when live.

        Reloads of one plugin run one after the other, whether requested by the
        detectors or called directly (the operator endpoint); a call waiting for
        another finds the file already live and returns False.
        """
        plugin = self.plugins[name]
        async with self._locks.setdefault(name, asyncio.Lock()):
            return await self._reload(name, plugin)

    async def _reload(self, name: str, plugin: Plugin) -> bool:
        signature = plugin.spec.signature()
        if signature is not None and signature == plugin.signature:
            return False  # already live (e.g. both detectors saw one change)
        try:
            candidate = await asyncio.to_thread(plugin.prepare)
            if candidate.checked.version == plugin.loaded_sha256:
                candidate.instance.close()
                plugin.signature = candidate.signature
                log.info("[%s] file touched but unchanged; nothing to reload", name)
                return False
            report = await asyncio.to_thread(plugin.swap, candidate)
        except PluginError as exc:
            self._failed_signature[name] = signature
            plugin.record_reload_failure(exc.reason)
            if plugin.loaded_sha256 is None:
                log.error("[%s] still not loaded (no earlier version): %s", name, exc.reason)
            else:
                log.error(
                    "[%s] reload rejected, the old version keeps running: %s", name, exc.reason
                )
            return False
        self._failed_signature.pop(name, None)
        log.info(
            "[%s] reloaded %s -> %s (%s %.0f ms, ready in %.0f ms, swap %.1f ms, state %s)",
            name,
            report["old_hash"],
            report["new_hash"],
            "precompiled" if report["precompiled"] else "compiled",
            report["compile_ms"],
            report["prepare_ms"],
            report["swap_ms"],
            report["state"],
        )
        if self.snapshots is not None and plugin.last_snapshot is not None:
            await asyncio.to_thread(self.snapshots.save, name, plugin.last_snapshot, True)
        return True

    async def wait_idle(self) -> None:
        """Wait for reloads in flight (tests and shutdown)."""
        while pending := [t for t in self._tasks.values() if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
