"""Building plugins from ``plugins/<name>/`` into ``build/<name>.wasm``.

componentize-py takes several seconds a plugin, so builds are incremental:
a plugin is rebuilt only when the hash of its inputs (its Python sources
and plugin.toml, the WIT, and the componentize-py version) differs from
the one recorded next to the last good build. Outputs are written to a
temporary file and renamed into place, so a running host never sees a
half-written ``.wasm``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from wasihost.errors import BuildError

Echo = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    name: str
    output: Path
    built: bool  # False when skipped because up to date
    seconds: float


def discover(plugins_dir: Path) -> list[str]:
    """Plugin folders: every directory holding an ``app.py``."""
    if not plugins_dir.is_dir():
        raise BuildError(f"{plugins_dir}: plugins folder not found")
    return sorted(p.parent.name for p in plugins_dir.glob("*/app.py"))


def world_of(plugin_dir: Path) -> str:
    """The world from ``plugin.toml`` (``world = "..."``), else ``<name>-plugin``."""
    manifest = plugin_dir / "plugin.toml"
    if not manifest.exists():
        return f"{plugin_dir.name}-plugin"
    try:
        world = tomllib.loads(manifest.read_text(encoding="utf-8")).get("world")
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{manifest}: not valid TOML: {exc}") from None
    if not isinstance(world, str):
        raise BuildError(f'{manifest}: expected world = "<world name>"')
    return world


def inputs_hash(plugin_dir: Path, wit_dir: Path, world: str) -> str:
    digest = hashlib.sha256()
    digest.update(f"componentize-py {metadata.version('componentize-py')}\0{world}\0".encode())
    sources = [(plugin_dir, p) for p in sorted(plugin_dir.rglob("*.py"))]
    sources += [(plugin_dir, plugin_dir / "plugin.toml")]
    sources += [(wit_dir, p) for p in sorted(wit_dir.rglob("*.wit"))]
    for base, path in sources:
        if path.is_file() and "__pycache__" not in path.parts:
            # Relative names: the same checkout hashes the same from any cwd.
            digest.update(path.relative_to(base).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _componentize_py() -> str:
    beside = Path(sys.executable).with_name("componentize-py")
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if found is None:
        raise BuildError(
            "componentize-py not found: install the build extra (pip install 'wasihost[build]')"
        )
    return found


def build_one(name: str, plugins_dir: Path, wit_dir: Path, out_dir: Path) -> BuildResult:
    """Build one plugin unless it is up to date; raises BuildError with the compiler output."""
    plugin_dir = plugins_dir / name
    if not (plugin_dir / "app.py").is_file():
        raise BuildError(
            f"{plugin_dir}: no app.py (known plugins: {', '.join(discover(plugins_dir))})"
        )
    world = world_of(plugin_dir)
    output = out_dir / f"{name}.wasm"
    stamp = out_dir / f"{name}.inputs"
    wanted = inputs_hash(plugin_dir, wit_dir, world)
    if output.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        return BuildResult(name, output, built=False, seconds=0.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / f".{name}.wasm.partial"
    started = time.perf_counter()
    command = [
        _componentize_py(),
        "-d",
        str(wit_dir.resolve()),
        "-w",
        world,
        "componentize",
        "app",
        "-o",
        str(partial.resolve()),
    ]
    proc = subprocess.run(command, cwd=plugin_dir, capture_output=True, text=True)
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        output_text = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"{name} (world {world}) did not build:\n{output_text}")
    os.replace(partial, output)
    stamp.write_text(wanted + "\n")
    return BuildResult(name, output, built=True, seconds=time.perf_counter() - started)


def build(
    names: Iterable[str] | None = None,
    plugins_dir: Path = Path("plugins"),
    wit_dir: Path = Path("wit"),
    out_dir: Path = Path("build"),
    jobs: int | None = None,
    echo: Echo = print,
) -> list[BuildResult]:
    """Build ``names`` (default: every plugin), ``jobs`` at a time, showing progress.

    Every plugin is attempted; if any failed, one BuildError lists them all
    after the others are built.
    """
    todo = list(names) if names else discover(plugins_dir)
    total = len(todo)
    jobs = max(1, min(jobs or os.cpu_count() or 1, total or 1))
    results: list[BuildResult] = []
    failures: list[str] = []
    done = 0

    def run(name: str) -> None:
        nonlocal done
        try:
            result = build_one(name, plugins_dir, wit_dir, out_dir)
        except BuildError as exc:
            done += 1
            echo(f"[{done}/{total}] {name}: FAILED")
            failures.append(str(exc))
            return
        done += 1
        results.append(result)
        if result.built:
            size = result.output.stat().st_size / 1e6
            echo(f"[{done}/{total}] {name}: built in {result.seconds:.1f} s ({size:.1f} MB)")
        else:
            echo(f"[{done}/{total}] {name}: up to date")

    if total:
        echo(f"building {total} plugin(s) into {out_dir}/ ({jobs} at a time)…")
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(run, todo))
    if failures:
        raise BuildError("\n\n".join(failures))
    return results
