"""Test plugins natively in milliseconds, and prove the component behaves the same.

``NativePlugin`` imports a plugin's ``app.py`` in this CPython process, on
top of the bindings componentize-py generates for its world, with every
import function wired to the host's real capability implementations (the
same grant checks, the same board). ``ComponentPlugin`` runs the built
``.wasm`` in the real sandbox. Both answer ``poll()`` with plain Python
values (records as dicts, enums as their lower-case names), so one test
can run against either: ``plugin_under_test(..., mode="native")``.

    from wasihost.testing import plugin_under_test

    def test_reports_temperature():
        plugin = plugin_under_test("plugins/sht31", grants=Grants(i2c_addresses={0x44}))
        assert plugin.poll()[0]["name"] == "temperature"

f32 fields come back rounded to single precision from a component; compare
floats with ``pytest.approx`` when a test runs in both modes. In both modes
an ``Err`` from ``poll`` raises ``GuestError`` and settings refused by
``configure`` raise ``PluginLoadError`` from the constructor. The component
mode refuses a build older than the plugin's sources.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import importlib.util
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from wasihost.authoring.bindings import bindings_for
from wasihost.authoring.build import inputs_hash, read_manifest
from wasihost.boards.base import Board
from wasihost.boards.sim import SimBoard
from wasihost.capabilities import PROVIDERS, CapabilityContext, Grants
from wasihost.clock import wall_clock_ms
from wasihost.errors import BuildError, GuestError, PluginError, PluginLoadError, WasihostError
from wasihost.leds import LedBuffer
from wasihost.runtime.contract import load_contract, packaged_wit
from wasihost.runtime.manifest import Manifest
from wasihost.runtime.source import library_for

if TYPE_CHECKING:
    from wasihost.runtime.engine import CallPath

__all__ = [
    "ComponentPlugin",
    "GuestError",
    "Mode",
    "NativePlugin",
    "PluginError",
    "PluginLoadError",
    "RuntimePlugin",
    "load_module",
    "plain",
    "plugin_under_test",
]

_GENERATED = ("wit_world", "componentize_py_types", "componentize_py_async_support", "poll_loop")


def plain(value: Any) -> Any:
    """A guest value as plain Python, the shape the component path returns."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _module_name(interface: str) -> str:
    return interface.replace("-", "_")


class _Harness:
    """What both ways of running a plugin share: where it is, its manifest, the
    project's own WIT (None without one), its board, its LEDs."""

    def __init__(self, plugin_dir: Path | str, board: Board | None) -> None:
        self.dir = Path(plugin_dir).resolve()
        self.project = self.dir.parent.parent  # plugins/<name> sits in the project's root
        self.name = self.dir.name
        self.manifest = read_manifest(self.dir)
        self.world = self.manifest.world
        project_wit = self.project / "wit"
        self.project_wit = project_wit if project_wit.is_dir() else None
        self.board = board if board is not None else SimBoard(seed=1)
        self.leds = LedBuffer(self.board.led_count)


class NativePlugin(_Harness):
    """A plugin's Python running in-process against the host's capabilities."""

    mode = "native"

    def __init__(
        self,
        plugin_dir: Path | str,
        *,
        board: Board | None = None,
        grants: Grants | None = None,
        settings: dict[str, Any] | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        wit_dir: Path | None = None,
        bindings_root: Path | None = None,
    ) -> None:
        super().__init__(plugin_dir, board)
        wit_dir = wit_dir or self.project_wit or packaged_wit()
        bindings_root = bindings_root or self.project / "build" / "bindings"
        self.ctx = CapabilityContext(self.name, self.board, self.leds, grants or Grants(),
                                     clock_ms)  # fmt: skip
        contract = load_contract()
        bindings = bindings_for(self.manifest, wit_dir, bindings_root)
        self._errors = self._import(bindings, contract.worlds[self.world].imports)
        interface, self._logic = contract.logic_of(self.world)
        self._logic_object = self._export(interface)
        self._settings = self._export("settings") if hasattr(self.app, "Settings") else None
        self._state = self._export("state") if hasattr(self.app, "State") else None
        if self._settings is not None:
            try:
                self._guest(self._settings.configure, json.dumps(settings or {}))
            except GuestError as exc:  # as the host reports it, in both modes
                raise PluginLoadError(self.name, f"refused its settings: {exc.reason}") from None

    def _export(self, interface: str) -> Any:
        class_name = "".join(part.capitalize() for part in interface.split("-"))
        return getattr(self.app, class_name)()

    def _import(self, bindings: Path, interfaces: frozenset[str]) -> type[Exception]:
        """Import app.py fresh over ``bindings``, capabilities patched in first."""
        owned = {p.stem for p in self.dir.glob("*.py")}
        for name in list(sys.modules):
            if name.split(".")[0] in (*_GENERATED, *owned):
                del sys.modules[name]
        library = library_for(self.dir)
        paths = [str(self.dir), str(bindings), *([str(library)] if library else [])]
        sys.path[:0] = paths
        try:
            err = importlib.import_module("componentize_py_types").Err
            for interface in interfaces:
                module = importlib.import_module(f"wit_world.imports.{_module_name(interface)}")
                for wit_name, impl in PROVIDERS[interface](self.ctx).items():
                    setattr(module, _module_name(wit_name), self._wire(module, impl, err))
            self.app: ModuleType = importlib.import_module("app")
        finally:
            del sys.path[: len(paths)]
        return err  # type: ignore[no-any-return]

    @staticmethod
    def _wire(module: ModuleType, impl: Callable[..., Any], err: type[Exception]) -> Any:
        """A host capability as the guest sees it: records as binding classes,
        refusals as ``Err`` raised in the guest."""

        def call(*args: Any) -> Any:
            try:
                result = impl(*args)
            except WasihostError as exc:
                raise err(str(exc)) from None
            if dataclasses.is_dataclass(result) and not isinstance(result, type):
                record = getattr(module, type(result).__name__)
                return record(**{f.name: getattr(result, f.name)
                                 for f in dataclasses.fields(result)})  # fmt: skip
            return result

        return call

    def _guest(self, function: Callable[..., Any], *args: Any) -> Any:
        try:
            return function(*args)
        except self._errors as exc:
            raise GuestError(self.name, str(getattr(exc, "value", exc))) from None

    def poll(self) -> Any:
        """The world's logic call (``poll``), as plain values; Err becomes GuestError."""
        return plain(self._guest(getattr(self._logic_object, self._logic)))

    def render(self, state_json: str) -> Any:
        return self._guest(self._logic_object.render, state_json)

    def describe(self) -> Any:
        return plain(self._guest(self._logic_object.describe))

    def snapshot(self) -> bytes | None:
        return None if self._state is None else bytes(self._guest(self._state.snapshot))

    def restore(self, data: bytes) -> None:
        if self._state is not None:
            self._guest(self._state.restore, data)

    def close(self) -> None:
        """Nothing to release; here so both kinds can be used the same way."""


class ComponentPlugin(_Harness):
    """The built component of a plugin, in the real sandbox, with the same API."""

    mode = "component"

    def __init__(
        self,
        plugin_dir: Path | str,
        *,
        board: Board | None = None,
        grants: Grants | None = None,
        settings: dict[str, Any] | None = None,
        clock_ms: Callable[[], int] = wall_clock_ms,
        wasm: Path | None = None,
        call_path: CallPath = "compiled",
    ) -> None:
        from wasihost.runtime.engine import Engine
        from wasihost.runtime.plugin import Plugin, PluginSpec
        from wasihost.runtime.shared import runtime_wasm

        super().__init__(plugin_dir, board)
        source = self.dir if self.mode == "runtime" else None
        if source is not None:
            wasm = wasm or runtime_wasm(self.project / "build")
            if not wasm.exists():
                raise BuildError(f"{wasm} not found: run `wasihost build` first")
        else:
            wasm = wasm or self.project / "build" / f"{self.name}.wasm"
            _refuse_stale(self.dir, wasm, self.manifest, self.project_wit)
        self._engine = Engine(call_path=call_path)
        spec = PluginSpec(
            self.name,
            self.world,
            wasm,
            settings or {},
            grants or Grants(),
            source=source,
            state=self.manifest.state and source is not None,
        )
        self.plugin = Plugin(spec, self._engine, load_contract(), self.board, self.leds, clock_ms)
        self.ctx = self.plugin.ctx
        try:
            self.plugin.load()
        except PluginError:
            self.plugin.close()
            self._engine.close()
            raise

    def poll(self) -> Any:
        return self.plugin.call()

    def render(self, state_json: str) -> Any:
        return self.plugin.call(state_json)

    def describe(self) -> Any:
        return self.plugin.info

    def snapshot(self) -> bytes | None:
        return self.plugin.snapshot()

    def restore(self, data: bytes) -> None:
        raise NotImplementedError("restore a component through a reload or a restart")

    def close(self) -> None:
        self.plugin.close()
        self._engine.close()


class RuntimePlugin(ComponentPlugin):
    """The plugin's folder in the shared Python runtime (a source plugin, as
    the host runs it by default), with the same API."""

    mode = "runtime"


def _refuse_stale(
    plugin_dir: Path, wasm: Path, manifest: Manifest, project_wit: Path | None
) -> None:
    """Testing an old build against new sources gives baffling failures: refuse it.

    The build records the hash of its inputs beside the ``.wasm``; when it is
    there and the project has its own WIT, and the hash differs from the
    sources now, the component is out of date.
    """
    if not wasm.exists():
        raise BuildError(f"{wasm} not found: run `wasihost build {plugin_dir.name}` first")
    stamp = wasm.with_suffix(".inputs")
    if stamp.exists() and project_wit is not None:
        current = inputs_hash(plugin_dir, project_wit, manifest)
        if stamp.read_text().strip() != current:
            raise BuildError(
                f"{wasm} is older than the sources in {plugin_dir}: "
                f"run `wasihost build {plugin_dir.name}` first"
            )


def load_module(plugin_dir: Path | str, name: str) -> ModuleType:
    """Import a plugin's helper module (e.g. its driver) for a native unit test.

    pytest's importlib mode keeps plugin folders off ``sys.path``; this loads
    ``plugin_dir/name.py`` under a name of its own, so two plugins' ``driver``
    modules never clash.
    """
    path = Path(plugin_dir).resolve() / f"{name}.py"
    unique = f"wasihost_plugin_{path.parent.name.replace('-', '_')}_{name}"
    spec = importlib.util.spec_from_file_location(unique, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[unique] = module  # dataclasses look their module up while it runs
    spec.loader.exec_module(module)
    return module


Mode = Literal["native", "component", "runtime"]


def plugin_under_test(
    plugin_dir: Path | str, mode: Mode = "native", **options: Any
) -> NativePlugin | ComponentPlugin:
    """The plugin in ``mode``; parametrise a test over the modes to prove the
    native run, its own component and the shared runtime agree."""
    if mode == "native":
        return NativePlugin(plugin_dir, **options)
    if mode == "runtime":
        return RuntimePlugin(plugin_dir, **options)
    return ComponentPlugin(plugin_dir, **options)
