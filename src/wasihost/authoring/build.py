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

import ast
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


# Bumped when the way a build lays out a plugin changes, so every plugin rebuilds.
_LAYOUT = 2
LIBRARY = "_shared"  # <plugins>/_shared/: the shared guest library's import path
GUEST_LIBRARY = "wasihost_guest"  # the package in it
ASSETS = "assets"  # <plugin>/assets/: files embedded as the module below
EMBEDDED_ASSETS = "_embedded_assets"


def _is_test(path: Path) -> bool:
    """Test modules run under pytest on the author's machine, never in the guest."""
    name = path.name
    return name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py"


def _files(folder: Path, pattern: str) -> list[Path]:
    """Files matching ``pattern`` below ``folder``, sorted; none hidden, none cached."""
    found = []
    for path in sorted(folder.rglob(pattern)):
        parts = path.relative_to(folder).parts
        if path.is_file() and not any(p.startswith(".") or p == "__pycache__" for p in parts):
            found.append(path)
    return found


def module_files(folder: Path) -> list[Path]:
    """The modules a build takes from ``folder``: its ``*.py`` but the tests."""
    return [path for path in _files(folder, "*.py") if not _is_test(path)]


def asset_files(plugin_dir: Path) -> list[Path]:
    """The files of the plugin's ``assets/`` folder (none without one)."""
    folder = plugin_dir / ASSETS
    return _files(folder, "*") if folder.is_dir() else []


def _imported(source: bytes) -> set[str]:
    """The top-level names a module imports (absolute imports only)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def library_for(plugin_dir: Path) -> Path | None:
    """The shared guest library's folder (``<plugins>/_shared``), if the plugin
    imports from it: the folder to put on its import path, at build and natively."""
    library = plugin_dir.resolve().parent / LIBRARY
    if not library.is_dir():
        return None
    packages = {p.name for p in library.iterdir() if (p / "__init__.py").is_file()}
    provided = packages | {p.stem for p in library.glob("*.py")}
    for path in module_files(plugin_dir):
        try:
            imported = _imported(path.read_bytes())
        except (SyntaxError, ValueError):
            return library  # the build reports the error; meanwhile count it as a user
        if imported & provided:
            return library
    return None


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
    tool = f"componentize-py {metadata.version('componentize-py')}"
    digest.update(f"{tool}\0{_LAYOUT}\0{manifest.world}\0{manifest.state}\0".encode())
    for kind, base, path in input_files(plugin_dir, wit_dir):
        # Relative names: the same checkout hashes the same from any cwd.
        digest.update(f"{kind}:{path.relative_to(base).as_posix()}\0".encode())
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def embedded_assets(plugin_dir: Path) -> str | None:
    """The source of the module ``_embedded_assets`` for the plugin's
    ``assets/`` files (None without any): ``FILES``, each file's path in the
    folder to its text, read as UTF-8 with no newline translation."""
    folder = plugin_dir / ASSETS
    entries = []
    for path in asset_files(plugin_dir):
        try:
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BuildError(
                f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); "
                "assets are embedded as text"
            ) from None
        entries.append(f"    {path.relative_to(folder).as_posix()!r}: {text!r},\n")
    if not entries:
        return None
    docstring = f"{plugin_dir.name}/{ASSETS}/, embedded by wasihost build (generated)."
    return f'"""{docstring}"""\n\nFILES = {{\n{"".join(entries)}}}\n'


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
            built = partial.read_bytes()
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
