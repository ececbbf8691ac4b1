"""Loading a ``.wasm`` and checking it completely before anything runs it.

A component is accepted only if it compiles, imports nothing beyond its
world (plus the locked-down WASI the host provides itself), declares for
every contract function and type it imports or exports exactly the
contract's type, and exports the world's logic function. Checking it here,
before linking, gives errors that name the offending import instead of a
linker failure. The types matter because wasmtime-py links a Python host
function to whatever type the component declares for it, and the call
plans are built from those declared types: without the comparison a
component built against an edited WIT hands capabilities floats for u8,
and the host extra record fields of any length.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component

from wasihost.errors import PluginLoadError
from wasihost.runtime import contract as wit
from wasihost.runtime.artifacts import deserialize, load_precompiled, vouched_sha256
from wasihost.runtime.calls import trap_reason
from wasihost.runtime.contract import Contract
from wasihost.runtime.engine import Engine
from wasihost.runtime.source import Sources

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
    # A source plugin: the shared runtime, and the modules its loader is given
    # for every new instance (those of this version, not what is on disk now).
    sources: Sources | None = None

    @property
    def version(self) -> str:
        """The sha256 naming this version of the plugin: its component's, or for
        a source plugin its modules' (the runtime is the same for every one)."""
        return self.sources.sha256 if self.sources is not None else self.sha256


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


# -- the contract's types against the ones a component declares ------------------------
_PRIMITIVE_TYPES: dict[type, str] = {
    component.Bool: "bool",
    component.S8: "s8",
    component.S16: "s16",
    component.S32: "s32",
    component.S64: "s64",
    component.U8: "u8",
    component.U16: "u16",
    component.U32: "u32",
    component.U64: "u64",
    component.F32: "f32",
    component.F64: "f64",
    component.Char: "char",
    component.String: "string",
}
MAX_SHOWN = 120  # a forged type can be arbitrarily large; its description is not
MAX_DIFFERENCES = 5


def show_type(ty: Any) -> str:
    """A declared component type in WIT syntax (records, which carry no name
    here, with their fields), cut to ``MAX_SHOWN`` characters."""
    return _brief(_show(ty))


def _brief(text: str) -> str:
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"


def _show(ty: Any, depth: int = 0) -> str:
    """WIT syntax for ``ty``, cut short in depth and breadth: a forged type may
    nest or repeat far more than any message needs (or Python's stack allows)."""
    if ty is None:
        return "nothing"
    name = _PRIMITIVE_TYPES.get(type(ty))
    if name is not None:
        return name
    if depth > 8:
        return "…"

    def inner(t: Any) -> str:
        return _show(t, depth + 1)

    def listed(items: list[str]) -> str:
        return ", ".join(items[:12]) + (", …" if len(items) > 12 else "")

    if isinstance(ty, component.ListType):
        return f"list<{inner(ty.element)}>"
    if isinstance(ty, component.OptionType):
        return f"option<{inner(ty.payload)}>"
    if isinstance(ty, component.ResultType):
        if ty.ok is None and ty.err is None:
            return "result"
        ok = "_" if ty.ok is None else inner(ty.ok)
        return f"result<{ok}>" if ty.err is None else f"result<{ok}, {inner(ty.err)}>"
    if isinstance(ty, component.TupleType):
        return f"tuple<{listed([inner(e) for e in ty.elements[:13]])}>"
    if isinstance(ty, component.RecordType):
        return "record {" + listed([f"{n}: {inner(t)}" for n, t in ty.fields[:13]]) + "}"
    if isinstance(ty, component.VariantType):
        cases = [n if t is None else f"{n}({inner(t)})" for n, t in ty.cases[:13]]
        return "variant {" + listed(cases) + "}"
    if isinstance(ty, component.EnumType | component.FlagsType):
        kind = "enum" if isinstance(ty, component.EnumType) else "flags"
        return kind + " {" + listed(ty.names[:13]) + "}"
    return type(ty).__name__.removesuffix("Type").lower()  # own, borrow, future, stream, ...


def _fields(items: list[tuple[str, Any]]) -> str:
    return _brief(", ".join(f"{n}: {show_type(t)}" for n, t in items[:MAX_SHOWN]))


def _names(names: list[str]) -> str:
    return _brief(", ".join(names[:MAX_SHOWN]))


def type_difference(declared: Any, expected: wit.WitType | None) -> str | None:
    """How a component's ``declared`` type differs from the contract's
    ``expected`` one, or None when they are the same.

    Structural, like the canonical ABI: records compare field by field in
    order, so a reordered or renamed field is a difference even where names
    would still match. A named type says what differs inside it; any other
    difference shows both types whole.
    """
    mismatch = f"{show_type(declared)}, the contract says {_expected(expected)}"
    if expected is None or declared is None:
        return None if expected is None and declared is None else mismatch
    if isinstance(expected, wit.Primitive):
        return None if _PRIMITIVE_TYPES.get(type(declared)) == expected.name else mismatch
    if isinstance(expected, wit.Record):
        return _record_difference(declared, expected, mismatch)
    if isinstance(expected, wit.Variant):
        if not isinstance(declared, component.VariantType):
            return mismatch
        cases = [n for n, _ in declared.cases]
        if cases != [n for n, _ in expected.cases]:
            return (f"variant {expected.name} with cases {_names(cases)}; "
                    f"the contract says {', '.join(n for n, _ in expected.cases)}")  # fmt: skip
        for (case, payload), (_, wanted) in zip(declared.cases, expected.cases, strict=True):
            inner = type_difference(payload, wanted)
            if inner is not None:
                return f"variant {expected.name} with case {case}: {inner}"
        return None
    if isinstance(expected, wit.Enum | wit.Flags):
        kind = "enum" if isinstance(expected, wit.Enum) else "flags"
        wanted_type = component.EnumType if kind == "enum" else component.FlagsType
        if not isinstance(declared, wanted_type):
            return mismatch
        names = list(declared.names)
        labels = list(expected.cases if isinstance(expected, wit.Enum) else expected.flags)
        if names != labels:
            return (f"{kind} {expected.name} with {_names(names)}; "
                    f"the contract says {', '.join(labels)}")  # fmt: skip
        return None
    inner_pairs: list[tuple[Any, wit.WitType | None]]
    if isinstance(expected, wit.ListOf) and isinstance(declared, component.ListType):
        inner_pairs = [(declared.element, expected.element)]
    elif isinstance(expected, wit.OptionOf) and isinstance(declared, component.OptionType):
        inner_pairs = [(declared.payload, expected.payload)]
    elif isinstance(expected, wit.ResultOf) and isinstance(declared, component.ResultType):
        inner_pairs = [(declared.ok, expected.ok), (declared.err, expected.err)]
    elif (
        isinstance(expected, wit.TupleOf)
        and isinstance(declared, component.TupleType)
        and len(declared.elements) == len(expected.elements)
    ):
        inner_pairs = list(zip(declared.elements, expected.elements, strict=True))
    else:
        return mismatch
    for inner_declared, inner_expected in inner_pairs:
        inner = type_difference(inner_declared, inner_expected)
        if inner is not None:
            # A named type explains itself; otherwise show the whole container.
            return inner if isinstance(inner_expected, wit.NAMED) else mismatch
    return None


def _expected(expected: wit.WitType | None) -> str:
    return "nothing" if expected is None else expected.show()


def _record_difference(declared: Any, expected: wit.Record, mismatch: str) -> str | None:
    if not isinstance(declared, component.RecordType):
        return mismatch
    fields = list(declared.fields)
    names = [n for n, _ in fields]
    wanted = dict(expected.fields)
    where = f"record {expected.name}"
    extra = [(n, t) for n, t in fields if n not in wanted]
    if extra:
        s = "s" if len(extra) > 1 else ""
        return f"{where} with an extra field{s} `{_fields(extra)}`"
    missing = [n for n, _ in expected.fields if n not in names]
    if missing:
        return f"{where} without field{'s' if len(missing) > 1 else ''} `{_names(missing)}`"
    if names != [n for n, _ in expected.fields]:
        return (f"{where} with its fields in another order ({_names(names)}); "
                f"the contract says {', '.join(n for n, _ in expected.fields)}")  # fmt: skip
    for name, ty in fields:
        inner = type_difference(ty, wanted[name])
        if inner is not None:
            return f"{where} with field `{name}`: {inner}"
    return None


def function_difference(declared: component.FuncType, expected: wit.Function) -> str | None:
    """How a declared function type differs from the contract's, phrased to
    follow "imports IFACE#FUNC" or "exports IFACE#FUNC"."""
    params = list(declared.params)
    if [n for n, _ in params] != [n for n, _ in expected.params]:
        wanted = ", ".join(f"{n}: {t.show()}" for n, t in expected.params)
        return f"with params ({_fields(params)}), the contract says ({wanted})"
    for (name, ty), (_, wanted_ty) in zip(params, expected.params, strict=True):
        inner = type_difference(ty, wanted_ty)
        if inner is not None:
            return f"with param {name}: {inner}"
    inner = type_difference(declared.result, expected.result)
    return None if inner is None else f"returning {inner}"


def contract_differences(
    contract: Contract, items: dict[str, Any], engine: Engine, verb: str
) -> list[str]:
    """Every way the contract interfaces among a component's imports or exports
    (``verb``: "imports" or "exports") differ from the contract: functions it
    does not have, function types, and the types the interfaces export."""
    found: list[str] = []
    for qualified, item in sorted(items.items()):
        interface = contract.interface_of(qualified)
        if interface is None or not isinstance(item.ty, component.ComponentInstanceType):
            continue
        functions: list[str] = []
        types: list[str] = []
        for name, member in sorted(item.ty.exports(engine.wasmtime).items()):
            ty = member.ty
            if isinstance(ty, component.FuncType):
                expected: Any = interface.signatures.get(name)
                compare: Callable[[Any, Any], str | None] = function_difference
                found_in, what = functions, f"{verb} {qualified}#{name} "
            else:
                expected, compare = interface.types.get(name), type_difference
                found_in, what = types, f"{verb} {qualified} type {name}: "
            if expected is None:
                found_in.append(what + "which the contract does not have")
            elif (difference := compare(ty, expected)) is not None:
                found_in.append(what + difference)
        # A forged type shows in the functions that use it; say it once.
        found += functions or types
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
    """Read and compile ``path`` (a matching precompiled artifact is used as is).

    A file this engine compiled before, unchanged since (same inode, mtime,
    ctime and size), is not read again.
    """
    started = time.perf_counter()
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
        known = engine.file_hashes.get(key)
        comp = engine.components.get(known) if known is not None else None
        if known is not None and comp is not None:
            elapsed = (time.perf_counter() - started) * 1000
            return Compiled(comp, path, known, True, elapsed)
        # The file its artifact's tag hashed, untouched since: load the artifact
        # without reading and hashing the file (18 MB for the shared runtime).
        vouched = vouched_sha256(engine, path, list(key[1:]))
        refused = False  # the vouched artifact was tried and refused (logged once)
        if vouched is not None:
            with engine.compile_lock(vouched):
                comp = engine.components.get(vouched) or deserialize(engine, path)  # tag matched
                if comp is not None:
                    engine.components[vouched] = comp
                    engine.file_hashes[key] = vouched
                    elapsed = (time.perf_counter() - started) * 1000
                    return Compiled(comp, path, vouched, True, elapsed)
                refused = True
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
        if comp is None and not (refused and sha256 == vouched):
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
        engine.file_hashes[key] = sha256
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
    imports, exports = verified_functions(plugin, engine, contract, world, compiled)
    return checked_for(plugin, contract, world, compiled, imports, exports)


def verified_functions(
    plugin: str, engine: Engine, contract: Contract, world: str, compiled: Compiled
) -> tuple[dict[tuple[str, str], component.FuncType], dict[tuple[str, str], component.FuncType]]:
    """The contract functions a component imports and exports, once it is shown
    to import only what ``world`` allows and to declare the contract's types."""
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

    exports = comp.type.exports(engine.wasmtime)
    differences = contract_differences(contract, imports, engine, "imports")
    differences += contract_differences(contract, exports, engine, "exports")
    if differences:
        shown = "; ".join(differences[:MAX_DIFFERENCES])
        more = len(differences) - MAX_DIFFERENCES
        raise PluginLoadError(
            plugin,
            f"{path}: built against another contract: {shown}"
            + (f" (and {more} more differences)" if more > 0 else ""),
        )
    return (
        _contract_functions(contract, imports, engine),
        _contract_functions(contract, exports, engine),
    )


def checked_for(
    plugin: str,
    contract: Contract,
    world: str,
    compiled: Compiled,
    imports: dict[tuple[str, str], component.FuncType],
    functions: dict[tuple[str, str], component.FuncType],
) -> CheckedComponent:
    """A verified component as a plugin of ``world`` uses it: the exports that
    world requires must be among ``functions``."""
    path = compiled.path
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
        component=compiled.component,
        path=path,
        sha256=compiled.sha256,
        world=world,
        logic_key=export_key(*logic),
        returns_result={
            key: isinstance(ty.result, component.ResultType) for key, ty in functions.items()
        },
        imports=imports,
        has_settings=settings in functions,
        has_state=has_state,
        precompiled=compiled.precompiled,
        load_ms=compiled.load_ms,
    )


def instance_functions(engine: Engine, item: Any) -> list[str]:
    """Function names of an imported or exported instance (``item`` is wasmtime's
    ComponentExtern, which the package does not export by name); for
    ``wasihost check``'s listing, so only ``runtime/`` reads wasmtime types."""
    ty = item.ty
    if isinstance(ty, component.ComponentInstanceType):
        return sorted(n for n, m in ty.exports(engine.wasmtime).items()
                      if isinstance(m.ty, component.FuncType))  # fmt: skip
    return []
