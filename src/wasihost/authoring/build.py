"""Building plugins from ``plugins/<name>/`` into ``build/<name>.wasm``.

componentize-py takes several seconds a plugin, so builds are incremental:
a plugin is rebuilt only when the hash of its inputs (see ``input_files``:
its modules, plugin.toml and assets, the shared guest library if it imports
it, the WIT; and the componentize-py version) differs from the one recorded
next to the last good build. Test modules (``test_*.py``) are not inputs:
they run under pytest, never in the guest. Outputs are written to a
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

Two things beside the plugin's folder go into its component:

- The shared guest library, ``<plugins>/_shared/`` (``wasihost_guest``): a
  plugin that imports from it gets the folder on its import path, so the
  component carries its own copy, and its files in its input hash, so a
  change to the library rebuilds exactly the plugins that use it.
- The plugin's ``assets/`` folder (the dashboard's script and style sheet,
  kept as real files for their linters): the guest has no files at run
  time, so the build generates the module ``_embedded_assets`` with their
  text in a scratch folder on the import path, never in the plugin.
  ``wasihost_guest.assets.read`` reads it there, or the folder natively.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from wasihost.atomic import write_atomically
from wasihost.authoring.leak_mend import mend_build, toolchain
from wasihost.authoring.runtime_build import RUNTIME_FOLDER, build_runtime
from wasihost.errors import BuildError
from wasihost.runtime.artifacts import precompile
from wasihost.runtime.contract import parse_contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.manifest import Manifest, ManifestError
from wasihost.runtime.manifest import read_manifest as manifest_of
from wasihost.runtime.shared import RUNTIME_WORLD
from wasihost.runtime.source import (
    ASSETS,
    EMBEDDED_ASSETS,
    GUEST_LIBRARY,
    LIBRARY,
    SourceError,
    asset_files,
    assets_module,
    library_for,
    module_files,
)

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


def read_manifest(plugin_dir: Path) -> Manifest:
    """``plugin.toml`` (see ``runtime.manifest``), its problems as build errors."""
    try:
        return manifest_of(plugin_dir)
    except ManifestError as exc:
        raise BuildError(str(exc)) from None


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


# Bumped when the way a build lays out a plugin changes, so every plugin rebuilds.
_LAYOUT = 2


def input_files(plugin_dir: Path, wit_dir: Path) -> list[tuple[str, Path, Path]]:
    """(kind, folder, file) of everything a build of the plugin reads."""
    plugin = [*module_files(plugin_dir), plugin_dir / "plugin.toml"]
    inputs = [("plugin", plugin_dir, p) for p in plugin if p.is_file()]
    inputs += [("assets", plugin_dir / ASSETS, p) for p in asset_files(plugin_dir)]
    library = library_for(plugin_dir)
    if library is not None:
        inputs += [("library", library, p) for p in module_files(library)]
    inputs += [("wit", wit_dir, p) for p in sorted(wit_dir.rglob("*.wit"))]
    return inputs


def inputs_hash(plugin_dir: Path, wit_dir: Path, manifest: Manifest) -> str:
    digest = hashlib.sha256()
    digest.update(f"{toolchain()}\0{_LAYOUT}\0{manifest.world}\0{manifest.state}\0".encode())
    for kind, base, path in input_files(plugin_dir, wit_dir):
        # Relative names: the same checkout hashes the same from any cwd.
        digest.update(f"{kind}:{path.relative_to(base).as_posix()}\0".encode())
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def embedded_assets(plugin_dir: Path) -> str | None:
    """The generated ``_embedded_assets`` module (``runtime.source``), as a build error."""
    try:
        return assets_module(plugin_dir)
    except SourceError as exc:
        raise BuildError(str(exc)) from None


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
        python_path = [plugin_dir.resolve()]
        library = library_for(plugin_dir)
        if library is not None:
            python_path.append(library)
        embedded = embedded_assets(plugin_dir)
        if embedded is not None:
            generated = Path(scratch) / "generated"
            generated.mkdir()
            (generated / f"{EMBEDDED_ASSETS}.py").write_text(embedded, encoding="utf-8")
            python_path.append(generated)
        command = [
            componentize_py(), "-d", str(target_wit.resolve()), "-w", world, "componentize",
            *(arg for folder in python_path for arg in ("-p", str(folder))),
            "app", "-o", str(partial.resolve()),
        ]  # fmt: skip
        proc = subprocess.run(command, cwd=plugin_dir, capture_output=True, text=True)
        if proc.returncode == 0:
            # Built in the scratch folder, landed atomically (maybe across filesystems).
            built = mend_build(partial.read_bytes(), name)
            write_atomically(output, built)
    if proc.returncode != 0:
        output_text = (proc.stderr or proc.stdout).strip()
        if library is None and f"No module named '{GUEST_LIBRARY}'" in output_text:
            output_text += (
                f"\n(the shared guest library is {plugins_dir / LIBRARY / GUEST_LIBRARY}/: "
                "a plugin copied on its own needs that folder beside it)"
            )
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
    sources: bool = True,
) -> list[BuildResult]:
    """Build ``names`` (default: every plugin, and the shared runtime when the
    plugins folder has its source), ``jobs`` at a time, showing progress.

    ``sources=False`` leaves out, unless named, plugins with ``kind = "source"``:
    the host runs them in the shared runtime, so they need no build of their
    own (``wasihost build``); the tests and benchmarks still build them, since
    components built per plugin stay first-class.

    Every plugin is attempted; if any failed, one BuildError lists them all
    after the others are built.
    """
    todo = list(names) if names else discover(plugins_dir)
    if not names and not sources:
        todo = [n for n in todo if read_manifest(plugins_dir / n).kind == "component"]
    runtime_dir = plugins_dir / RUNTIME_FOLDER
    if not names and runtime_dir.is_dir():
        todo.insert(0, RUNTIME_WORLD)  # the longest build: started first
    total = len(todo)
    jobs = max(1, min(jobs or os.cpu_count() or 1, total or 1))
    results: list[BuildResult] = []
    failures: list[str] = []
    done = 0

    engine = Engine()

    def run(name: str) -> None:
        nonlocal done
        try:
            if name == RUNTIME_WORLD:
                output, built, seconds = build_runtime(
                    componentize_py(), engine, wit_dir, out_dir, runtime_dir
                )
                result = BuildResult(name, output, built, seconds)
            else:
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
        count = total - (RUNTIME_WORLD in todo)
        parts = ["the shared Python runtime"] if RUNTIME_WORLD in todo else []
        parts += [f"{count} plugin(s)"] if count else []
        echo(f"building {' and '.join(parts)} into {out_dir}/ ({jobs} at a time)…")
    try:
        with ThreadPoolExecutor(jobs) as pool:
            list(pool.map(run, todo))
    finally:
        engine.close()
    if failures:
        raise BuildError("\n\n".join(failures))
    return results
