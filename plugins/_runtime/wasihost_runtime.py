"""The shared Python runtime: one component that runs any source plugin.

componentize-py builds this module once and snapshots it after import, so
everything imported here (the curated standard library, every binding
module) is ready in every instance without a file system. The host makes
one instance per plugin and calls ``loader.load`` once with the plugin's
files; from then on the instance is that plugin.

componentize-py makes one object per exported function at start-up, from
the classes below, and calls the method by name on every call. ``load``
sets the plugin's bound methods as attributes of those objects, so a call
reaches plugin code with no frame of ours in between.
"""

# ruff: noqa: F401  (the binding imports below load them into the snapshot)

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import linecache
import sys
import traceback
import typing

import componentize_py_types
import wit_world
import wit_world.exports
import wit_world.exports.bme680_logic
import wit_world.exports.dashboard_logic
import wit_world.exports.loader
import wit_world.exports.pi_monitor_logic
import wit_world.exports.sensor
import wit_world.exports.sensor_logic
import wit_world.exports.settings
import wit_world.exports.state
import wit_world.imports
import wit_world.imports.alarm_types
import wit_world.imports.buzzer_controller
import wit_world.imports.fan_controller
import wit_world.imports.gpio_provider
import wit_world.imports.i2c
import wit_world.imports.led_controller
import wit_world.imports.system_info
from componentize_py_types import Err

# The curated standard library: what a plugin may import beyond its own files
# and CPython's built-in C modules, imported here so the build snapshots them
# (docs/PLUGINS.md lists them; a test holds the two together). Lazy imports
# inside the standard library count too: ``_strptime`` for ``datetime.strptime``.
STDLIB = (
    "abc", "array", "base64", "binascii", "bisect", "collections", "collections.abc",
    "colorsys", "contextlib", "copy", "dataclasses", "datetime", "_strptime", "enum",
    "fractions", "functools", "heapq", "html", "itertools", "json", "math", "operator",
    "random", "re", "statistics", "string", "struct", "textwrap", "time", "typing", "zlib",
)  # fmt: skip
for _name in STDLIB:
    importlib.import_module(_name)

# Modules a plugin may never replace with a file of its own: everything the
# runtime imported, the built-in C modules and the binding packages.
_RESERVED = frozenset(name.partition(".")[0] for name in sys.modules) | frozenset(
    sys.builtin_module_names
)
_SELF = __name__

# interface name -> (the export class componentize-py instantiates, its methods)
_EXPORTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "settings": ("Settings", ("configure",)),
    "sensor-logic": ("SensorLogic", ("poll",)),
    "pi-monitor-logic": ("PiMonitorLogic", ("poll",)),
    "bme680-logic": ("Bme680Logic", ("poll",)),
    "sensor": ("Sensor", ("describe", "poll")),
    "dashboard-logic": ("DashboardLogic", ("render",)),
    "state": ("State", ("snapshot", "restore")),
}
# Capability interfaces (their binding modules can be withheld); type-only
# interfaces such as ``alarm-types`` are always importable.
_CAPABILITIES = frozenset(
    {"gpio-provider", "i2c", "led-controller", "buzzer-controller", "fan-controller", "system-info"}
)

# class name -> the objects componentize-py made from it (one per function)
_SLOTS: dict[str, list[object]] = {}
_LOADED: list[str] = []


class _Unloaded:
    """Until ``load`` binds a plugin, every export says so instead of crashing oddly."""

    def __init__(self) -> None:
        _SLOTS.setdefault(type(self).__name__, []).append(self)

    def __getattr__(self, name: str) -> typing.Any:
        raise RuntimeError(f"no plugin is loaded in this runtime ({type(self).__name__}.{name})")


class Settings(_Unloaded):
    pass


class SensorLogic(_Unloaded):
    pass


class PiMonitorLogic(_Unloaded):
    pass


class Bme680Logic(_Unloaded):
    pass


class Sensor(_Unloaded):
    pass


class DashboardLogic(_Unloaded):
    pass


class State(_Unloaded):
    pass


def _module_name(path: str) -> tuple[str, bool]:
    """``pkg/mod.py`` -> (``pkg.mod``, False); ``pkg/__init__.py`` -> (``pkg``, True)."""
    parts = path.split("/")
    if not path.endswith(".py") or any(not p for p in parts):
        raise ValueError(f"{path!r}: not a relative path to a .py file")
    parts[-1] = parts[-1][:-3]
    package = parts[-1] == "__init__"
    if package:
        parts.pop()
    if not parts or not all(p.isidentifier() for p in parts):
        raise ValueError(f"{path!r}: not an importable module path")
    return ".".join(parts), package


class _Sources(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports the plugin's modules from the source text it was handed."""

    def __init__(self, sources: dict[str, tuple[str, str, bool]], withheld: dict[str, str]):
        self.sources = sources  # module -> (file name, text, is package)
        self.withheld = withheld  # binding module -> why it cannot be imported

    def find_spec(
        self, fullname: str, path: typing.Any = None, target: typing.Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname in self.withheld:
            raise ImportError(self.withheld[fullname], name=fullname)
        found = self.sources.get(fullname)
        if found is None:
            return None
        filename, _, package = found
        spec = importlib.machinery.ModuleSpec(fullname, self, origin=filename, is_package=package)
        spec.has_location = True
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: typing.Any) -> None:
        filename, text, _ = self.sources[module.__name__]
        exec(compile(text, filename, "exec", dont_inherit=True), module.__dict__)


def _withhold(granted: frozenset[str], world_imports: str) -> dict[str, str]:
    """Hide the binding modules of capabilities the plugin's world does not import."""
    withheld = {}
    for interface in sorted(_CAPABILITIES - granted):
        attribute = interface.replace("-", "_")
        module = f"wit_world.imports.{attribute}"
        sys.modules.pop(module, None)
        if hasattr(wit_world.imports, attribute):
            delattr(wit_world.imports, attribute)
        withheld[module] = (
            f"{interface} is not a capability of this plugin's world "
            f"(it imports: {world_imports or 'none'})"
        )
    return withheld


def _plugin_traceback(error: BaseException) -> str:
    """The error with only the plugin's frames: the runtime's are noise to its author."""
    frames = [
        frame for frame in traceback.extract_tb(error.__traceback__) if frame.filename in _FILES
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(error)
    return ("Traceback (most recent call last):\n" if frames else "") + "".join(lines)


_FILES: set[str] = set()


class Loader:
    def load(
        self,
        files: list[wit_world.exports.loader.SourceFile],
        entry: str,
        imports: list[str],
        exports: list[str],
    ) -> list[str]:
        if _LOADED:
            raise Err("this instance has loaded a plugin already: make a new instance")
        _LOADED.append(entry)  # even a failed load leaves modules behind: one try only
        sources: dict[str, tuple[str, str, bool]] = {}
        for file in files:
            try:
                module, package = _module_name(file.path)
            except ValueError as exc:
                raise Err(str(exc)) from None
            top = module.partition(".")[0]
            if top in _RESERVED or top == _SELF:
                raise Err(
                    f"{file.path}: the module name {top!r} is taken by the runtime "
                    "(a standard library or binding module): rename the file"
                )
            sources[module] = (file.path, file.text, package)
            linecache.cache[file.path] = (
                len(file.text),
                None,
                file.text.splitlines(True),
                file.path,
            )
            _FILES.add(file.path)
        if entry not in sources:
            raise Err(f"no {entry.replace('.', '/')}.py among the plugin's files")
        offered = set(_EXPORTS) | _CAPABILITIES
        unknown = sorted(set(exports) - set(_EXPORTS)) + sorted(set(imports) - offered)
        if unknown:
            raise Err(f"the runtime does not offer: {', '.join(unknown)}")
        withheld = _withhold(frozenset(imports), ", ".join(sorted(imports)))
        sys.meta_path.insert(0, _Sources(sources, withheld))
        try:
            app = importlib.import_module(entry)
        except BaseException as exc:  # the plugin's module code: report, don't trap
            raise Err(_plugin_traceback(exc)) from None
        bound = []
        for interface in exports:
            class_name, methods = _EXPORTS[interface]
            cls = getattr(app, class_name, None)
            if not isinstance(cls, type):
                raise Err(
                    f"{entry}.py defines no class {class_name} (its world exports {interface})"
                )
            try:
                obj = cls()
            except BaseException as exc:
                raise Err(_plugin_traceback(exc)) from None
            for method in methods:
                function = getattr(obj, method, None)
                if not callable(function):
                    raise Err(f"{entry}.py: {class_name} has no method {method}()")
                for slot in _SLOTS.get(class_name, []):
                    object.__setattr__(slot, method, function)
            bound.append(class_name)
        return bound
