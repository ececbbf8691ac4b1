"""``wasihost check FILE.wasm|FOLDER``: what a component imports and exports,
or whether a source plugin's folder loads in the shared runtime, and whether
the config would accept it for a plugin, and why not.

It runs the same checks the host runs at load (``runtime.component``, and
for a folder the host's own load on a simulated board), so its verdict is
the host's verdict.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wasihost.config import HostConfig
from wasihost.errors import BuildError, PluginError, PluginLoadError
from wasihost.grants import describe, grants_for
from wasihost.runtime.component import (
    WASI_PACKAGES,
    check,
    compile_file,
    instance_functions,
    verified_functions,
)
from wasihost.runtime.contract import load_contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.manifest import ManifestError, read_manifest
from wasihost.runtime.shared import RUNTIME_WORLD
from wasihost.runtime.source import SourceError, read_sources
from wasihost.specs import grants_of

Echo = Callable[[str], None]


def _describe_grants(config: HostConfig, name: str, imports: frozenset[str]) -> str:
    """Plugin ``name``'s grants (its world imports ``imports``); no other plugin
    is looked at, so one with an unknown world elsewhere does not matter."""
    return describe(grants_of(config, name, imports))


def run_check(
    path: Path, config: HostConfig | None, plugin: str | None, echo: Echo = print
) -> bool:
    """Print the report; True when the component would be accepted (or, without
    a plugin to check against, fits at least one world)."""
    if path.is_dir():
        return run_source_check(path, config, plugin, echo)
    contract = load_contract()
    engine = Engine()
    try:
        try:
            compiled = compile_file(plugin or path.stem, engine, path)
        except PluginLoadError as exc:
            echo(f"✗ {exc.reason}")
            return False
        comp = compiled.component
        size = path.stat().st_size / 1e6
        echo(f"{path} ({size:.1f} MB, sha256 {compiled.sha256[:12]}, "
             f"{'precompiled artifact used' if compiled.precompiled else 'compiled'})")  # fmt: skip
        imports = comp.type.imports(engine.wasmtime)
        exports = comp.type.exports(engine.wasmtime)
        echo("imports:")
        wasi = sorted({n.split("/")[0].removeprefix("wasi:") for n in imports
                       if n.startswith(WASI_PACKAGES)})  # fmt: skip
        for name, item in sorted(imports.items()):
            if not name.startswith("wasi:"):
                echo(f"  {name}  {', '.join(instance_functions(engine, item)) or '(types only)'}")
        if wasi:
            echo(f"  wasi: {', '.join(wasi)}  (provided by the host, locked down)")
        echo("exports:")
        for name, item in sorted(exports.items()):
            if name.startswith(contract.package + "/"):
                echo(f"  {name}  {', '.join(instance_functions(engine, item))}")

        fits = []
        refused: dict[str, str] = {}
        for world in sorted(contract.worlds):
            try:
                if world == RUNTIME_WORLD:  # not a plugin's world: no one logic export
                    verified_functions(plugin or path.stem, engine, contract, world, compiled)
                else:
                    check(plugin or path.stem, engine, contract, world, compiled)
                fits.append(world)
            except PluginLoadError as exc:
                if world != RUNTIME_WORLD:
                    refused[world] = exc.reason
        echo(f"fits worlds: {', '.join(fits) or 'none'}")
        if RUNTIME_WORLD in fits:
            echo("  (the shared Python runtime: source plugins run in it, see docs/PLUGINS.md)")
        if not fits:
            # Why not: for the worlds whose logic it exports (else every world).
            logic = {w: contract.qualified(contract.logic_of(w)[0]) for w in refused}
            near = [w for w in refused if logic[w] in exports] or list(refused)
            for world in near:
                echo(f"✗ {world}: {refused[world].removeprefix(f'{path}: ')}")

        if config is not None and plugin is None:
            plugin = next((n for n in config.plugins if config.wasm_of(n) == path), None)
        if config is None or plugin is None:
            return bool(fits)
        if plugin not in config.plugins:
            echo(f"✗ no plugin {plugin!r} in {config.path} (known: {', '.join(config.plugins)})")
            return False
        world = config.world_of(plugin)
        where = f"plugins.{config.plugin_keys[plugin]}"
        try:
            checked = check(plugin, engine, contract, world, compiled)
        except PluginLoadError as exc:
            echo(f"✗ {where} ({world}) in {config.path} would refuse it: {exc.reason}")
            return False
        echo(f"✓ {where} ({world}) in {config.path} accepts it"
             + (" (with state handover)" if checked.has_state else ""))  # fmt: skip
        if not config.plugins[plugin].enabled:
            echo(f"  note: {where}.enabled = false, so the host will not load it")
        echo(f"  grants: {_describe_grants(config, plugin, contract.worlds[world].imports)}")
        return True
    finally:
        engine.close()


def run_source_check(
    folder: Path,
    config: HostConfig | None,
    plugin: str | None,
    echo: Echo = print,
    runtime: Path = Path("build") / "python-runtime.wasm",
) -> bool:
    """Load a source plugin's folder as the host would, on a simulated board:
    True when it loads and accepts its settings."""
    from wasihost.authoring.testing import RuntimePlugin

    try:
        manifest = read_manifest(folder)
        sources = read_sources(folder)
    except (ManifestError, SourceError) as exc:
        echo(f"✗ {exc}")
        return False
    if manifest.kind == "component":
        echo(f'✗ {folder}/plugin.toml says kind = "component": build it and check the .wasm')
        return False
    contract = load_contract()
    if manifest.world not in contract.worlds or manifest.world == RUNTIME_WORLD:
        echo(f"✗ {folder}/plugin.toml: unknown world {manifest.world!r}")
        return False
    kib = sum(len(text.encode()) for _, text in sources.files) / 1024
    echo(f"{folder} (source plugin, world {manifest.world}, {len(sources.files)} modules, "
         f"{kib:.0f} KiB, sha256 {sources.sha256[:12]})")  # fmt: skip
    for name, _ in sources.files:
        echo(f"  {name}")
    imports = contract.worlds[manifest.world].imports
    if config is not None and plugin is None:
        plugin = next((n for n in config.plugins if config.source_of(n) == folder), None)
    if config is not None and plugin is not None and plugin not in config.plugins:
        echo(f"✗ no plugin {plugin!r} in {config.path} (known: {', '.join(config.plugins)})")
        return False
    settings: dict[str, object] = {}
    grants = grants_for({}, imports)  # the world's defaults: no hardware
    if config is not None and plugin is not None:
        settings = dict(config.plugins[plugin].settings)
        grants = grants_of(config, plugin, imports)
    try:  # the test harness's run in the runtime: the host's own load, on a simulated board
        RuntimePlugin(folder, settings=settings, grants=grants, wasm=runtime).close()
    except (PluginError, BuildError) as exc:
        reason = exc.reason if isinstance(exc, PluginError) else str(exc)
        # The host's log keeps a guest's text on one line; the author reads it here.
        shown = reason.removesuffix("\\n").replace("\\n", "\n    ")
        echo(f"✗ does not load in the shared runtime: {shown}")
        return False
    state = " (with state handover)" if manifest.state else ""
    echo(f"✓ loads in the shared runtime as a {manifest.world} plugin{state}")
    echo(f"  grants: {describe(grants)}" + ("" if plugin else " (no config: the world's defaults)"))
    return True
