"""Start-up to the first completed cycle, and memory (issue 9, items 4 and 5).

Each figure is a real `wasihost run` process: timed from spawn until
/healthz reports cycle 1. "Cold" gives the process an empty wasmtime
compile cache (its own XDG_CACHE_HOME) and no precompiled artifacts;
"warm" reuses a cache a previous start filled; "precompiled" uses the
`.cwasm` files `wasihost build` writes. Memory is read from /proc after the
first cycle: RssAnon (heap: private) and RssFile (compiled code and memory
images mapped from files).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench.common import ROOT, Figure, figure, free_port, progress

SEED = {"pi_monitor": 0, "dht22": 1, "bme680": 2, "dashboard": None}


def _config(folder: Path, wasm_dir: Path | None, port: int, extra: int) -> Path:
    """``wasm_dir``: the seeds' components; None: the seeds' folders in the shared
    runtime (and the extra instances are the sht31 folder, not a component)."""
    runtime = ROOT / "build" / "python-runtime.wasm"
    lines = [
        "[polling]\ninterval_seconds = 1",
        '[logging]\nshow_sensor_data = false\nlevel = "warn"',
        f"[web]\nport = {port}",
        f'[history]\npath = "{folder / "h.sqlite3"}"',
        f'[state]\ndir = "{folder / "state"}"',
        f'[runtime]\npython_runtime = "{runtime}"',
    ]
    for name, led in SEED.items():
        plugin = name.replace("_", "-")
        where = (f'source = "{ROOT / "plugins" / plugin}"' if wasm_dir is None
                 else f'wasm = "{wasm_dir / f"{plugin}.wasm"}"')  # fmt: skip
        led_line = f"\nled = {led}" if led is not None else ""
        lines.append(f"[plugins.{name}]\n{where}{led_line}")
    extra_where = (f'source = "{ROOT / "plugins" / "sht31"}"' if wasm_dir is None
                   else f'wasm = "{ROOT / "build" / "test-plugins" / "generic.wasm"}"')  # fmt: skip
    for index in range(extra):
        lines.append(f'[plugins.extra{index}]\nworld = "sensor-plugin"\n{extra_where}')
    path = folder / "host.toml"
    path.write_text("\n\n".join(lines) + "\n")
    return path


def _memory(pid: int) -> dict[str, float]:
    """RSS as ``top`` shows it, and PSS: RSS counts a page once per mapping, so
    the compiled code and initial memory image that instances of one component
    share are counted again for every instance; PSS divides each page between
    its mappings, which is what an extra instance really costs."""
    values = {}
    for name in ("status", "smaps_rollup"):
        for line in Path(f"/proc/{pid}/{name}").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "Pss", "Private_Clean", "Private_Dirty"):
                values[key] = int(rest.split()[0]) / 1024
    return values


def _start(
    folder: Path, wasm_dir: Path | None, cache: Path, extra: int = 0
) -> tuple[float, dict[str, float]]:
    """Seconds from spawn to the first completed cycle, and memory then."""
    port = free_port()
    config = _config(folder, wasm_dir, port, extra)
    env = {**os.environ, "XDG_CACHE_HOME": str(cache)}
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "wasihost.cli", "run", "--config", str(config)],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"host exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    if json.load(r)["cycle"] >= 1:
                        break
            except OSError:
                pass
            if time.perf_counter() - started > 300:
                raise RuntimeError("host did not complete a cycle in 300 s")
            time.sleep(0.01)
        return time.perf_counter() - started, _memory(process.pid)
    finally:
        process.terminate()
        process.wait(30)


def run(quick: bool = False) -> list[Figure]:
    runs = 1 if quick else 3
    figures: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="wasihost-bench-") as tmp:
        root = Path(tmp)
        raw = root / "raw"  # the .wasm files only: no precompiled artifacts beside them
        raw.mkdir()
        for name in SEED:
            wasm = f"{name.replace('_', '-')}.wasm"
            shutil.copy(ROOT / "build" / wasm, raw / wasm)
        samples: dict[str, list[float]] = {"cold": [], "warm": [], "precompiled": []}
        memory: list[dict[str, float]] = []
        for run_index in range(runs):
            cache = root / f"cache-{run_index}"
            progress(f"start-up, run {run_index + 1}/{runs}: cold compile cache")
            samples["cold"].append(_start(root, raw, cache)[0])
            progress(f"start-up, run {run_index + 1}/{runs}: warm cache")
            samples["warm"].append(_start(root, raw, cache)[0])
            progress(f"start-up, run {run_index + 1}/{runs}: precompiled artifacts")
            seconds, mem = _start(root, ROOT / "build", cache)
            samples["precompiled"].append(seconds)
            memory.append(mem)
        for kind, values in samples.items():
            note = "4 seed plugins" + (", target < 1 s" if kind == "precompiled" else "")
            figures.append(figure("start", f"to the first cycle, {kind}", "s", values, note))
        figures += [
            figure("memory", "RSS, 4 seed plugins", "MB", [m["VmRSS"] for m in memory]),
            figure("memory", "  of which heap (RssAnon)", "MB", [m["RssAnon"] for m in memory]),
            figure(
                "memory", "  of which file-mapped (RssFile)", "MB", [m["RssFile"] for m in memory]
            ),
        ]
        progress("memory with 50 extra instances of one plugin")
        extra: list[dict[str, float]] = []
        for _ in range(runs):
            extra.append(_start(root, ROOT / "build", root / "cache-0", extra=50)[1])

        def per_instance(key: str) -> list[float]:
            return [(e[key] - m[key]) / 50 for e, m in zip(extra, memory, strict=True)]

        figures += [
            figure("memory", "PSS, 4 seed plugins", "MB", [m["Pss"] for m in memory]),
            figure("memory", "RSS per extra plugin instance", "MB", per_instance("VmRSS")),
            figure("memory", "  of which heap", "MB", per_instance("RssAnon")),
            figure("memory", "PSS per extra plugin instance", "MB", per_instance("Pss"),
                   "target < 5"),
            figure("memory", "private per extra plugin instance", "MB",
                   [a + b for a, b in zip(per_instance("Private_Clean"),
                                          per_instance("Private_Dirty"), strict=True)]),
        ]  # fmt: skip
        figures += _source_figures(root, runs, samples["precompiled"], memory)
    return figures


def _source_figures(
    root: Path, runs: int, components_s: list[float], components_mem: list[dict[str, float]]
) -> list[Figure]:
    """The same starts with the seeds as source plugins in the shared runtime
    (precompiled, as `wasihost build` leaves it), side by side with the
    precompiled components measured just before."""
    seconds: list[float] = []
    memory: list[dict[str, float]] = []
    extra: list[dict[str, float]] = []
    for run_index in range(runs):
        progress(f"start-up, run {run_index + 1}/{runs}: source plugins in the shared runtime")
        took, mem = _start(root, None, root / "cache-0")
        seconds.append(took)
        memory.append(mem)
        extra.append(_start(root, None, root / "cache-0", extra=50)[1])

    def per_instance(key: str) -> list[float]:
        return [(e[key] - m[key]) / 50 for e, m in zip(extra, memory, strict=True)]

    return [
        figure("start", "to the first cycle, source plugins", "s", seconds,
               "4 seed folders, shared runtime precompiled"),
        figure("start", "source plugins / precompiled components", "x",
               [a / b for a, b in zip(seconds, components_s, strict=True)], "same run"),
        figure("memory", "RSS, 4 seed plugins as source plugins", "MB",
               [m["VmRSS"] for m in memory], f"components: {components_mem[0]['VmRSS']:.0f}"),
        figure("memory", "PSS, 4 seed plugins as source plugins", "MB",
               [m["Pss"] for m in memory]),
        figure("memory", "PSS per extra source plugin instance", "MB", per_instance("Pss"),
               "sht31 folder"),
        figure("memory", "RSS per extra source plugin instance", "MB", per_instance("VmRSS")),
    ]  # fmt: skip
