"""A live instance of a plugin: its store, its WASI sandbox and its exports.

The store lives as long as the instance, so guest module globals persist
between calls. After a trap wasmtime refuses to enter the instance again;
its owner must ``close`` it and create a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import wasmtime
from wasmtime import component

from wasihost.capabilities import PROVIDERS, CapabilityContext
from wasihost.errors import PluginLoadError, PluginTrap
from wasihost.runtime import compiled
from wasihost.runtime.calls import ExportFunction, host_function, trap_reason
from wasihost.runtime.component import CheckedComponent, export_key
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import CallPath, Engine
from wasihost.runtime.guest_log import GuestOutput
from wasihost.runtime.guest_memory import closing, new_memories, size_of
from wasihost.runtime.plans import CapabilityCall, TypedExport, add_capability
from wasihost.runtime.values import UnsupportedType

log = logging.getLogger("wasihost.calls")

T = TypeVar("T")


def build_linker(
    engine: Engine, contract: Contract, ctx: CapabilityContext, checked: CheckedComponent
) -> component.Linker:
    """A linker offering exactly the capabilities of the plugin's world, bound to
    one plugin.

    A component built for the world imports nothing else (the check saw to
    that). The shared Python runtime imports every capability: those outside
    the plugin's world are linked to a refusal, so the linker, not the
    guest, is what keeps a plugin to its world. On the typed and compiled
    paths each capability gets its call plan here, from the type the
    component imports it with.
    """
    granted = contract.worlds[checked.world].imports
    imported = [contract.interface_of(qualified) for qualified, _ in checked.imports]
    withheld = {i.name for i in imported if i is not None and i.functions} - granted
    linker = component.Linker(engine.wasmtime)
    linker.add_wasip2()
    with linker.root() as root:
        for interface in sorted(granted | withheld):
            qualified = contract.qualified(interface)
            functions = PROVIDERS[interface](ctx)
            if interface in withheld:
                functions = _refusals(ctx, interface, checked.world, functions)
            with root.add_instance(qualified) as instance:
                for name, impl in functions.items():
                    ty = checked.imports.get((qualified, name))
                    _define(engine, instance, ctx.plugin, name, impl, ty)
    return linker


def _refusals(
    ctx: CapabilityContext, interface: str, world: str, functions: dict[str, Callable[..., Any]]
) -> dict[str, Callable[..., Any]]:
    """Every function of ``interface`` refused: its ``result`` error, or a trap
    for a function without one."""

    def refuse(*_args: Any) -> Any:
        raise ctx.refuse("world", f"{interface} is not a capability of world {world}")

    return dict.fromkeys(functions, refuse)


def _define(
    engine: Engine,
    instance: component.LinkerInstance,
    plugin: str,
    name: str,
    impl: Callable[..., Any],
    ty: component.FuncType | None,
) -> None:
    if ty is None:  # not imported by this component: never called, any path will do
        instance.add_func(name, host_function(plugin, name, impl))
        return
    define_capability(engine.call_path, instance, plugin, name, impl, ty)


# Fastest first; each later path converts every type the earlier ones refuse,
# and the generic one converts everything.
PATHS: tuple[CallPath, ...] = ("compiled", "typed", "generic")


def first_path(
    path: CallPath, plugin: str, what: str, ways: dict[CallPath, Callable[[], T]]
) -> tuple[CallPath, T]:
    """``ways[path]()``, or the next path's way where a type needs it: the one
    place the fallback (compiled, else typed, else generic) is written."""
    for candidate in PATHS[PATHS.index(path) :]:
        try:
            return candidate, ways[candidate]()
        except UnsupportedType as exc:
            if candidate == "generic":
                raise
            log.info("[%s] %s falls back from the %s call path (%s)", plugin, what, candidate, exc)
    raise AssertionError("unreachable: the generic path converts every type")


def define_capability(
    path: CallPath,
    instance: component.LinkerInstance,
    plugin: str,
    name: str,
    impl: Callable[..., Any],
    ty: component.FuncType,
) -> CallPath:
    """Define a capability on ``path``, or on the next one where a type needs it;
    returns the path it got."""
    got, _ = first_path(
        path,
        plugin,
        name,
        {
            "compiled": lambda: compiled.add_capability(instance, plugin, name, impl, ty),
            "typed": lambda: add_capability(instance, CapabilityCall(plugin, name, impl, ty)),
            "generic": lambda: instance.add_func(name, host_function(plugin, name, impl)),
        },
    )
    return got


# Every kind of export plan is called as ``export(store, *args)`` and sets the
# store's epoch deadline itself.
Export = Callable[..., Any]


def plan_export(
    path: CallPath,
    plugin: str,
    key: str,
    func: component.Func,
    store: wasmtime.Store,
    returns_result: bool,
    deadline: int,
) -> Export:
    """The plan for one export on ``path``, or on the next one where a type needs it."""
    ways: dict[CallPath, Callable[[], Export]] = {
        "compiled": lambda: compiled.export(plugin, key, func, store, deadline),
        "typed": lambda: TypedExport(plugin, key, func, store, deadline),
        "generic": lambda: ExportFunction(plugin, key, func, returns_result, deadline),
    }
    _, export = first_path(path, plugin, key, ways)
    return export


class Instance:
    def __init__(
        self,
        plugin: str,
        engine: Engine,
        checked: CheckedComponent,
        linker: component.Linker,
        timeout_ms: int,
        max_memory_mb: int,
        output: tuple[GuestOutput, GuestOutput],
    ) -> None:
        self.plugin = plugin
        self._deadline = engine.ticks_for(timeout_ms)
        self.store = wasmtime.Store(engine.wasmtime)
        wasi = wasmtime.WasiConfig()  # empty: no preopens, no env, no args, no network
        wasi.stdout_custom = output[0].write
        wasi.stderr_custom = output[1].write
        self.store.set_wasi(wasi)
        self.store.set_limits(memory_size=max_memory_mb * 1024 * 1024)
        self.store.set_epoch_deadline(self._deadline)
        try:
            with new_memories() as self.memories:
                instance = linker.instantiate(self.store, checked.component)
        except wasmtime.WasmtimeError as exc:
            self.store.close()
            raise PluginLoadError(plugin, f"cannot instantiate: {trap_reason(exc)}") from None
        self._functions: dict[str, Export] = {}
        for (iface, name), returns_result in checked.returns_result.items():
            iface_index = instance.get_export_index(self.store, iface)
            func_index = instance.get_export_index(self.store, name, iface_index)
            func = instance.get_func(self.store, func_index) if func_index else None
            if func is not None:
                key = export_key(iface, name)
                self._functions[key] = plan_export(
                    engine.call_path, plugin, key, func, self.store, returns_result, self._deadline
                )

    def call(self, function: str, *args: Any) -> Any:
        """Call ``interface.function`` with a fresh deadline; traps raise PluginTrap."""
        export = self._functions.get(function)
        if export is None:
            raise PluginTrap(self.plugin, f"no export {function}")
        return export(self.store, *args)

    def exports(self, function: str) -> bool:
        return function in self._functions

    # Its memory once ready (set by its owner after load and configure): how
    # much it grew since is what a recycle can win back.
    start_bytes: int | None = None

    def memory_bytes(self, maps: str | None = None) -> int | None:
        """The guest's linear memory now (None where it cannot be measured)."""
        return size_of(self.memories, maps)

    def close(self) -> None:
        # Closing the store explicitly matters: a store left to the garbage
        # collector at interpreter exit can make wasmtime's WASI thread panic.
        self._functions.clear()
        with closing():
            self.store.close()
