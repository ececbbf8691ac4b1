"""Hot reload figures (issue 4): landing-to-live, other plugins' cadence, --dev edit-to-live.

A host with the four seed plugins polls every ``INTERVAL`` seconds while a
new build of its dht22 plugin lands (copy-then-rename). Measured: from the
rename to the swap, and to the first poll served by the new code; the
lateness of cycle starts during the reload (the other plugins poll in
every cycle, so a late cycle is a late poll); cycles that did not poll
every plugin (missed polls).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, Figure, figure, progress
from wasihost.authoring.build import build
from wasihost.authoring.devloop import DevRebuilder
from wasihost.boards.sim import SimBoard
from wasihost.config import parse_config
from wasihost.host import Host
from wasihost.runtime.artifacts import precompile

INTERVAL = 0.1
SEED = ("pi-monitor", "dht22", "bme680", "dashboard")


def new_build(wasm: bytes, tag: str) -> bytes:
    """A new build with the same logic: the component plus a custom section."""
    name = b"wasihost-bench"
    payload = bytes([len(name)]) + name + tag.encode()
    return wasm + b"\x00" + bytes([len(payload)]) + payload


def land(path: Path, data: bytes) -> float:
    """Copy-then-rename; returns the moment the file landed (the rename)."""
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    landed = time.perf_counter()
    os.replace(partial, path)
    return landed


class Recorder:
    """Runs the host's cycles on its cadence and records when each one started."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.starts: list[float] = []
        self.complete_polls: list[bool] = []
        self.ends: list[float] = []
        real_run_once = host.cycle.run_once

        async def run_once() -> Any:
            self.starts.append(time.perf_counter())
            before = {n: p.stats.polls for n, p in host.plugins.items() if p.role == "sensor"}
            readings = await real_run_once()
            after = {n: p.stats.polls for n, p in host.plugins.items() if p.role == "sensor"}
            self.complete_polls.append(all(after[n] == before[n] + 1 for n in before))
            self.ends.append(time.perf_counter())
            return readings

        host.cycle.run_once = run_once  # type: ignore[method-assign]

    def lateness_ms(self, since: float, until: float) -> list[float]:
        """How late each cycle start in the window was against the fixed cadence."""
        first = self.starts[0]
        late = []
        for start in self.starts:
            if since <= start <= until:
                scheduled = first + round((start - first) / INTERVAL) * INTERVAL
                late.append(max(0.0, (start - scheduled) * 1000))
        return late


async def _reload_once(host: Host, rec: Recorder, target: Path, data: bytes) -> dict[str, float]:
    plugin = host.plugins["dht22"]
    old_hash = plugin.loaded_sha256
    landed = land(target, data)
    while plugin.loaded_sha256 == old_hash:
        if time.perf_counter() - landed > 60:
            raise RuntimeError(f"reload did not happen: {plugin.status()}")
        await asyncio.sleep(0.001)
    live = time.perf_counter()
    while not rec.ends or rec.ends[-1] < live or rec.starts[-1] < live:
        await asyncio.sleep(0.001)
    first_poll = rec.ends[-1]
    await asyncio.sleep(3 * INTERVAL)  # cycles after the swap count too
    window = rec.lateness_ms(landed, time.perf_counter())
    return {
        "live_ms": (live - landed) * 1000,
        "first_poll_ms": (first_poll - landed) * 1000,
        "max_late_ms": max(window, default=0.0),
    }


async def _reload_figures(workdir: Path, runs_fast: int, runs_raw: int) -> list[Figure]:
    plugins = workdir / "plugins"
    plugins.mkdir()
    source = ROOT / "build"
    for name in SEED:
        for suffix in (".wasm", ".cwasm", ".cwasm.tag"):
            shutil.copy(source / f"{name}{suffix}", plugins / f"{name}{suffix}")
    config = parse_config({
        "polling": {"interval_seconds": INTERVAL},
        "logging": {"show_sensor_data": False},
        "web": {"enabled": False},
        "history": {"path": str(workdir / "h.sqlite3")},
        "state": {"dir": str(workdir / "state")},
        "plugins": {
            n: {"wasm": str(plugins / f"{n}.wasm"), **({"led": led} if led is not None else {})}
            for n, led in zip(SEED, (0, 1, 2, None), strict=True)
        },
    })  # fmt: skip
    host = Host(config, board=SimBoard(seed=1))
    host.load_plugins()
    rec = Recorder(host)
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(host.cycle.run_forever(INTERVAL, stop, after=host.after_cycle)),
        asyncio.create_task(host.reloader.watch(stop)),
    ]
    await asyncio.sleep(0.5)
    original = (source / "dht22.wasm").read_bytes()
    staging = workdir / "staging"
    staging.mkdir()
    fast: list[dict[str, float]] = []
    raw: list[dict[str, float]] = []
    target = plugins / "dht22.wasm"
    try:
        for run in range(runs_fast):
            progress(f"reload with a precompiled artifact, run {run + 1}/{runs_fast}")
            data = new_build(original, f"fast-{run}-{time.time_ns()}")
            (staging / "dht22.wasm").write_bytes(data)
            # What `wasihost build` ships; off the loop, as a build runs in another process.
            await asyncio.to_thread(precompile, host.engine, staging / "dht22.wasm")
            for suffix in (".cwasm", ".cwasm.tag"):  # artifact first, then the .wasm
                land(target.with_suffix(suffix), (staging / f"dht22{suffix}").read_bytes())
            fast.append(await _reload_once(host, rec, target, data))
        for run in range(runs_raw):
            progress(f"reload of a raw .wasm (cold compile), run {run + 1}/{runs_raw}")
            data = new_build(original, f"raw-{run}-{time.time_ns()}")  # unseen: no cache hit
            raw.append(await _reload_once(host, rec, target, data))
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await host.reloader.wait_idle()
        host.close()
    missed = sum(1 for complete in rec.complete_polls if not complete)
    group = "reload"

    def pick(rows: list[dict[str, float]], key: str) -> list[float]:
        return [row[key] for row in rows]

    return [
        figure(group, "precompiled: landing to live", "ms", pick(fast, "live_ms"), "target < 100"),
        figure(group, "precompiled: landing to first new poll", "ms", pick(fast, "first_poll_ms"),
               f"poll interval {INTERVAL * 1000:.0f} ms"),
        figure(group, "raw .wasm: landing to live", "ms", pick(raw, "live_ms"), "cold compile"),
        figure(group, "raw .wasm: landing to first new poll", "ms", pick(raw, "first_poll_ms")),
        figure(group, "others' max cycle lateness during reload", "ms",
               pick(fast, "max_late_ms") + pick(raw, "max_late_ms")),
        figure(group, "missed polls of other plugins", "count", [float(missed)],
               f"over {len(rec.complete_polls)} cycles"),
    ]  # fmt: skip


async def _dev_figures(workdir: Path, runs: int) -> list[Figure]:
    plugins = workdir / "dev-plugins"
    shutil.copytree(ROOT / "plugins" / "dht22", plugins / "dht22")
    shutil.copytree(ROOT / "plugins" / "_shared", plugins / "_shared")
    out = workdir / "dev-build"
    build(["dht22"], plugins_dir=plugins, wit_dir=ROOT / "wit", out_dir=out, echo=lambda _: None)
    config = parse_config({
        "logging": {"show_sensor_data": False},
        "web": {"enabled": False},
        "history": {"enabled": False},
        "state": {"dir": str(workdir / "dev-state")},
        "plugins": {"dht22": {"wasm": str(out / "dht22.wasm"), "led": 1}},
    })  # fmt: skip
    host = Host(config, board=SimBoard(seed=1))
    host.load_plugins()
    rebuilder = DevRebuilder(host.engine, plugins, ROOT / "wit", out, ["dht22"])
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(rebuilder.run(stop)),
        asyncio.create_task(host.reloader.watch(stop)),
    ]
    await asyncio.sleep(0.5)
    try:
        samples = await _saves_to_live(host, plugins / "dht22" / "app.py", runs, "--dev", 120)
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await host.reloader.wait_idle()
        host.close()
    return [figure("reload", "--dev: save to live", "ms", samples, "includes the build")]


async def _saves_to_live(
    host: Host, app: Path, runs: int, what: str, limit_s: float
) -> list[float]:
    """Milliseconds from saving an edit of dht22's ``app.py`` to its new version live."""
    samples = []
    for run in range(runs):
        progress(f"{what}: edit to live, run {run + 1}/{runs}")
        old = host.plugins["dht22"].loaded_sha256
        edited = time.perf_counter()
        app.write_text(app.read_text() + f"\n# edit {run} {time.time_ns()}\n")
        while host.plugins["dht22"].loaded_sha256 == old:
            if time.perf_counter() - edited > limit_s:
                raise RuntimeError(f"{what}: the edit did not go live in {limit_s:.0f} s")
            await asyncio.sleep(0.002)
        samples.append((time.perf_counter() - edited) * 1000)
    return samples


async def _source_figures(workdir: Path, runs: int) -> list[Figure]:
    """The same edit as ``_dev_figures``, to a source plugin in the shared runtime:
    no build, the folder is watched and the new modules are loaded."""
    plugins = workdir / "source-plugins"
    shutil.copytree(ROOT / "plugins" / "dht22", plugins / "dht22")
    shutil.copytree(ROOT / "plugins" / "_shared", plugins / "_shared")
    config = parse_config({
        "logging": {"show_sensor_data": False},
        "web": {"enabled": False},
        "history": {"enabled": False},
        "state": {"dir": str(workdir / "source-state")},
        "plugins": {"dht22": {"source": str(plugins / "dht22"), "led": 1}},
    })  # fmt: skip
    host = Host(config, board=SimBoard(seed=1))
    host.load_plugins()
    stop = asyncio.Event()
    task = asyncio.create_task(host.reloader.watch(stop))
    await host.reloader.ready.wait()
    try:
        app = plugins / "dht22" / "app.py"
        samples = await _saves_to_live(host, app, runs, "source plugin (no build)", 60)
    finally:
        stop.set()
        await task
        await host.reloader.wait_idle()
        host.close()
    return [
        figure("reload", "source plugin: save to live", "ms", samples,
               "shared runtime, no build; compare --dev: save to live")
    ]  # fmt: skip


def run(quick: bool = False) -> list[Figure]:
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        workdir = Path(tmp)
        figures = asyncio.run(_reload_figures(workdir, 3 if quick else 7, 1 if quick else 3))
        figures += asyncio.run(_dev_figures(workdir, 1 if quick else 3))
        figures += asyncio.run(_source_figures(workdir, 3 if quick else 7))
    return figures
