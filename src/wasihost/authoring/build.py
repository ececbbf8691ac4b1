"""Building plugins from ``plugins/<name>/`` into ``build/<name>.wasm``.

componentize-py takes several seconds a plugin, so builds are incremental:
a plugin is rebuilt only when the hash of its inputs (its Python sources
and plugin.toml, the WIT, and the componentize-py version) differs from
the one recorded next to the last good build. Outputs are written to a
temporary file and renamed into place, so a running host never sees a
half-written ``.wasm``. Each build also writes the precompiled
``build/<name>.cwasm`` the host loads in milliseconds.

``plugin.toml`` holds ``world = "<world>"`` and, optionally, ``state = true``
to export the ``state`` interface: the build then targets the world
extended with ``export state`` (generated here, so the contract stays free
of one extra world per plugin kind). ``wit = "<folder>"`` builds against a
WIT folder inside the plugin instead of the host's contract: the hostile
suite uses it to forge a contract; the host refuses whatever does not match
its own.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from wasihost.atomic import write_atomically
from wasihost.errors import BuildError
from wasihost.runtime.artifacts import precompile
from wasihost.runtime.contract import parse_contract
from wasihost.runtime.engine import Engine

Echo = Callable[[str], None]


@dataclass(frozen=True)
class BuildResult:
    name: str
    output: Path
    built: bool  # componentize-py ran
    seconds: float
    precompiled: bool = False  # only the precompiled artifact was (re)made


def discover(plugins_dir: Path) -> list[str]:
    """Plugin folders: every directory holding an ``app.py``."""
    if not plugins_dir.is_dir():
        raise BuildError(f"{plugins_dir}: plugins folder not found")
    return sorted(p.parent.name for p in plugins_dir.glob("*/app.py"))


@dataclass(frozen=True)
class Manifest:
    world: str
    state: bool = False
    wit: str | None = None  # a WIT folder relative to the plugin, instead of the contract


def read_manifest(plugin_dir: Path) -> Manifest:
    """``plugin.toml``; without one the world is ``<name>-plugin``."""
    path = plugin_dir / "plugin.toml"
    if not path.exists():
        return Manifest(f"{plugin_dir.name}-plugin")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BuildError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"world", "state", "wit"}
    if unknown:
        keys = ", ".join(sorted(unknown))
        raise BuildError(f"{path}: unknown key(s) {keys} (known: world, state, wit)")
    world, state, wit = data.get("world"), data.get("state", False), data.get("wit")
    if not isinstance(world, str):
        raise BuildError(f'{path}: world: expected world = "<world name>"')
    if not isinstance(state, bool):
        raise BuildError(f"{path}: state: expected true or false, got {state!r}")
    if wit is not None:
        folder = plugin_dir / str(wit)
        inside = folder.resolve().is_relative_to(plugin_dir.resolve())
        if not isinstance(wit, str) or not inside or not folder.is_dir():
            raise BuildError(f'{path}: wit: expected wit = "<folder in {plugin_dir}>", got {wit!r}')
    return Manifest(world, state, wit)


def target_world(manifest: Manifest, wit_dir: Path, scratch: Path) -> tuple[Path, str]:
    """The WIT folder and world to build for; with ``state`` a scratch copy of
    the WIT gains ``<world>-with-state``."""
    contract = parse_contract("\n".join(p.read_text() for p in sorted(wit_dir.glob("*.wit"))))
    if manifest.world not in contract.worlds:
        known = ", ".join(sorted(contract.worlds))
        raise BuildError(f"unknown world {manifest.world!r} (expected one of: {known})")
    if not manifest.state:
        return wit_dir, manifest.world
    for source in wit_dir.glob("*.wit"):
        shutil.copy(source, scratch / source.name)
    world = f"{manifest.world}-with-state"
    (scratch / "zz-build-state.wit").write_text(
        f"package {contract.package}@{contract.version};\n\n"
        f"world {world} {{\n    include {manifest.world};\n    export state;\n}}\n"
    )
    return scratch, world


def inputs_hash(plugin_dir: Path, wit_dir: Path, manifest: Manifest) -> str:
    digest = hashlib.sha256()
    tool = f"componentize-py {metadata.version('componentize-py')}"
    digest.update(f"{tool}\0{manifest.world}\0{manifest.state}\0".encode())
    sources = [(plugin_dir, p) for p in sorted(plugin_dir.rglob("*.py"))]
    sources += [(plugin_dir, plugin_dir / "plugin.toml")]
    sources += [(wit_dir, p) for p in sorted(wit_dir.rglob("*.wit"))]
    for base, path in sources:
        if path.is_file() and "__pycache__" not in path.parts:
            # Relative names: the same checkout hashes the same from any cwd.
            digest.update(path.relative_to(base).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def componentize_py() -> str:
    beside = Path(sys.executable).with_name("componentize-py")
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if found is None:
        raise BuildError(
            "componentize-py not found: install the build extra (pip install 'wasihost[build]')"
        )
    return found


def build_one(
    name: str, plugins_dir: Path, wit_dir: Path, out_dir: Path, engine: Engine
) -> BuildResult:
    """Build one plugin unless it is up to date; raises BuildError with the compiler output."""
    plugin_dir = plugins_dir / name
    if not (plugin_dir / "app.py").is_file():
        known = ", ".join(discover(plugins_dir))
        raise BuildError(f"{plugin_dir}: no app.py (known plugins: {known})")
    manifest = read_manifest(plugin_dir)
    if manifest.wit is not None:
        wit_dir = plugin_dir / manifest.wit
    output = out_dir / f"{name}.wasm"
    stamp = out_dir / f"{name}.inputs"
    wanted = inputs_hash(plugin_dir, wit_dir, manifest)
    started = time.perf_counter()
    if output.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        compiled = precompile(engine, output)  # e.g. after a wasmtime upgrade
        seconds = time.perf_counter() - started
        return BuildResult(name, output, built=False, seconds=seconds, precompiled=compiled)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wasihost-wit-") as scratch:
        partial = Path(scratch) / f"{name}.wasm"
        try:
            target_wit, world = target_world(manifest, wit_dir, Path(scratch))
        except BuildError as exc:
            raise BuildError(f"{plugin_dir / 'plugin.toml'}: {exc}") from None
        command = [
            componentize_py(), "-d", str(target_wit.resolve()), "-w", world,
            "componentize", "app", "-o", str(partial.resolve()),
        ]  # fmt: skip
        proc = subprocess.run(command, cwd=plugin_dir, capture_output=True, text=True)
        if proc.returncode == 0:
            # Built in the scratch folder, landed atomically (maybe across filesystems).
            built = partial.read_bytes()
            write_atomically(output, built)
    if proc.returncode != 0:
        output_text = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"{name} (world {world}) did not build:\n{output_text}")
    precompile(engine, output, built)
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

    engine = Engine()

    def run(name: str) -> None:
        nonlocal done
        try:
            result = build_one(name, plugins_dir, wit_dir, out_dir, engine)
        except BuildError as exc:
            done += 1
            echo(f"[{done}/{total}] {name}: FAILED")
            failures.append(str(exc))
            return
        done += 1
        results.append(result)
        if result.precompiled:
            echo(f"[{done}/{total}] {name}: up to date; precompiled artifact refreshed")
        elif result.built:
            size = result.output.stat().st_size / 1e6
            echo(f"[{done}/{total}] {name}: built in {result.seconds:.1f} s ({size:.1f} MB)")
        else:
            echo(f"[{done}/{total}] {name}: up to date")

    if total:
        echo(f"building {total} plugin(s) into {out_dir}/ ({jobs} at a time)…")
    try:
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(run, todo))
    finally:
        engine.close()
    if failures:
        raise BuildError("\n\n".join(failures))
    return results
