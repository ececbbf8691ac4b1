"""The shared Python runtime: how a source plugin becomes a running instance.

One component (``build/python-runtime.wasm``, built from ``plugins/_runtime/``)
imports every capability and exports every logic interface. A source plugin
gets an instance of it of its own, linked with only its world's
capabilities (the others refuse every call: ``instance.build_linker``), and
``loader.load`` hands it the plugin's modules. The component is compiled
once and shared by every source plugin; checking it against the contract
is done as for any component, for the runtime's world, and the plugin then
sees only its own world's exports.
"""

from __future__ import annotations

import dataclasses
import threading
import weakref
from pathlib import Path
from typing import Any

from wasihost.errors import PluginLoadError
from wasihost.runtime.component import (
    CheckedComponent,
    checked_for,
    compile_file,
    verified_functions,
)
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.source import ENTRY, SourceError, Sources, read_sources

# The runtime's contract functions, verified once per engine and runtime build:
# every source plugin and every new version of one uses the same component.
Functions = dict[tuple[str, str], Any]
_verified: weakref.WeakKeyDictionary[Engine, dict[str, tuple[Functions, Functions]]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()

RUNTIME_WORLD = "python-runtime"
# Not ``app``: importing a plugin's entry module would return the runtime.
RUNTIME_MODULE = "wasihost_runtime"
LOADER_KEY = "loader.load"


def runtime_wasm(out_dir: Path) -> Path:
    return out_dir / f"{RUNTIME_WORLD}.wasm"


def check_source(
    plugin: str,
    engine: Engine,
    contract: Contract,
    world: str,
    state: bool,
    runtime: Path,
    folder: Path,
) -> CheckedComponent:
    """The shared runtime, verified for its own world, as a plugin of ``world``
    uses it, with the plugin's modules read from ``folder``."""
    try:
        sources = read_sources(folder)
    except (SourceError, OSError) as exc:
        raise PluginLoadError(plugin, str(exc)) from None
    compiled = compile_file(plugin, engine, runtime)
    with _lock:
        known = _verified.setdefault(engine, {}).get(compiled.sha256)
    if known is None:
        known = verified_functions(plugin, engine, contract, RUNTIME_WORLD, compiled)
        with _lock:
            _verified[engine][compiled.sha256] = known
    imports, exports = known
    wanted = contract.worlds[world].exports | ({"state"} if state else set())
    mine = {contract.qualified(interface) for interface in wanted}
    loader = contract.qualified("loader")
    functions = {key: ty for key, ty in exports.items() if key[0] in mine or key[0] == loader}
    checked = checked_for(plugin, contract, world, compiled, imports, functions)
    return dataclasses.replace(checked, sources=sources)


def load_args(contract: Contract, world: str, state: bool, sources: Sources) -> tuple[Any, ...]:
    """The arguments of ``loader.load`` for one plugin of ``world``."""
    exports = sorted(contract.worlds[world].exports | ({"state"} if state else set()))
    files = [{"path": path, "text": text} for path, text in sources.files]
    return files, ENTRY, sorted(contract.worlds[world].imports), exports
