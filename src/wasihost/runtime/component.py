"""Loading a ``.wasm`` and checking it completely before anything runs it.

A component is accepted only if it compiles, imports nothing beyond its
world (plus the locked-down WASI the host provides itself) and exports the
world's logic function. Checking it here, before linking, gives errors
that name the offending import instead of a linker failure.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component

from wasihost.errors import PluginLoadError
from wasihost.runtime.artifacts import load_precompiled
from wasihost.runtime.calls import trap_reason
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import Engine

# WASI packages the host provides, locked down (no preopens, env, args or
# network): componentize-py components import all of them.
WASI_PACKAGES = (
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:cli/",
    "wasi:filesystem/",
    "wasi:sockets/",
)


def export_key(qualified_interface: str, function: str) -> str:
    """How the runtime names an export: ``wasihost:plugin/sensor-logic@0.1.0`` and
    ``poll`` become ``sensor-logic.poll``."""
    interface = qualified_interface.split("/", 1)[1].split("@", 1)[0]
    return f"{interface}.{function}"


@dataclass(frozen=True)
class CheckedComponent:
    """A compiled component that passed every check for its world."""

    component: component.Component
    path: Path
    sha256: str
    world: str
    logic_key: str  # the export the host calls, e.g. "sensor-logic.poll"
    returns_result: dict[tuple[str, str], bool]
    # The capability functions it imports, with their types: the typed call
    # path builds its plans from them when linking.
    imports: dict[tuple[str, str], wasmtime.component.FuncType]
    has_settings: bool
    has_state: bool
    precompiled: bool  # not compiled now: a matching .cwasm, or shared with another plugin
    load_ms: float  # reading + compiling or deserialising


def _contract_functions(
    contract: Contract, items: dict[str, Any], engine: Engine
) -> dict[tuple[str, str], component.FuncType]:
    """Functions of the contract's interfaces among a component's imports or exports.

    Other items (WASI, componentize-py's own ``exports`` instance) are not
    part of the contract and are ignored.
    """
    found: dict[tuple[str, str], component.FuncType] = {}
    for iface, item in items.items():
        ty = item.ty
        if not iface.startswith(contract.package + "/") or not isinstance(
            ty, component.ComponentInstanceType
        ):
            continue
        for name, member in ty.exports(engine.wasmtime).items():
            if isinstance(member.ty, component.FuncType):
                found[(iface, name)] = member.ty
    return found


@dataclass(frozen=True)
class Compiled:
    """A component compiled (or loaded precompiled) from a file, not yet checked."""

    component: component.Component
    path: Path
    sha256: str
    precompiled: bool
    load_ms: float


def compile_file(plugin: str, engine: Engine, path: Path) -> Compiled:
    """Read and compile ``path`` (a matching precompiled artifact is used as is)."""
    started = time.perf_counter()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PluginLoadError(
            plugin, f"{path}: file not found (build it with `wasihost build {plugin}`)"
        ) from None
    except OSError as exc:
        raise PluginLoadError(plugin, f"{path}: cannot read: {exc.strerror}") from None
    sha256 = hashlib.sha256(data).hexdigest()
    with engine.compile_lock(sha256):  # one compile per distinct component, however many plugins
        comp = engine.components.get(sha256)
        shared = comp is not None
        precompiled = False
        if comp is None:
            comp = load_precompiled(engine, path, sha256)
            precompiled = comp is not None
        if comp is None:
            try:
                comp = component.Component(engine.wasmtime, data)
            except wasmtime.WasmtimeError as exc:
                raise PluginLoadError(
                    plugin, f"{path}: not a valid WebAssembly component: {trap_reason(exc)}"
                ) from None
        if not shared:
            engine.components[sha256] = comp
    elapsed = (time.perf_counter() - started) * 1000
    return Compiled(comp, path, sha256, precompiled or shared, elapsed)


def check_component(
    plugin: str, engine: Engine, contract: Contract, world: str, path: Path
) -> CheckedComponent:
    """Read, compile and check ``path`` for ``world``; raises ``PluginLoadError``."""
    require_world(plugin, contract, world)
    return check(plugin, engine, contract, world, compile_file(plugin, engine, path))


def require_world(plugin: str, contract: Contract, world: str) -> None:
    """Raise ``PluginLoadError`` unless the contract knows ``world``."""
    if world not in contract.worlds:
        known = ", ".join(sorted(contract.worlds))
        raise PluginLoadError(plugin, f"unknown world {world!r} (expected one of: {known})")


def check(
    plugin: str, engine: Engine, contract: Contract, world: str, compiled: Compiled
) -> CheckedComponent:
    """Check a compiled component against ``world``; raises ``PluginLoadError``."""
    require_world(plugin, contract, world)
    comp, path = compiled.component, compiled.path
    allowed = contract.allowed_imports(world)
    imports = comp.type.imports(engine.wasmtime)
    for name in imports:
        if name not in allowed and not name.startswith(WASI_PACKAGES):
            granted = ", ".join(sorted(contract.worlds[world].imports)) or "no host interfaces"
            raise PluginLoadError(
                plugin,
                f"{path}: imports {name}, which world {world} does not allow (it allows {granted})",
            )

    functions = _contract_functions(contract, comp.type.exports(engine.wasmtime), engine)
    logic_iface, logic_func = contract.logic_of(world)
    logic = (contract.qualified(logic_iface), logic_func)
    if logic not in functions:
        raise PluginLoadError(
            plugin, f"{path}: does not export {logic[0]}#{logic_func} required by world {world}"
        )
    settings = (contract.qualified("settings"), "configure")
    if "settings" in contract.worlds[world].exports and settings not in functions:
        raise PluginLoadError(plugin, f"{path}: does not export {settings[0]}#configure")
    state = contract.qualified("state")
    has_state = (state, "snapshot") in functions and (state, "restore") in functions
    return CheckedComponent(
        component=comp,
        path=path,
        sha256=compiled.sha256,
        world=world,
        logic_key=export_key(*logic),
        returns_result={
            key: isinstance(ty.result, component.ResultType) for key, ty in functions.items()
        },
        imports=_contract_functions(contract, imports, engine),
        has_settings=settings in functions,
        has_state=has_state,
        precompiled=compiled.precompiled,
        load_ms=compiled.load_ms,
    )
