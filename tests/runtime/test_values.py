"""The typed call path converts every kind of value exactly as the generic one does.

Each case builds a small component, from WAT, whose export ``g(x: T) -> T``
lowers ``x`` into linear memory, calls the host import ``f(x: T) -> T`` and
lifts what it returns: a real canonical-ABI round trip through wasmtime.
Every value travels the nine combinations of host import (generic
wasmtime-py callback, our Python ``CapabilityCall``, or the compiled plan of
``_compiled.c``) and export call (generic ``ExportFunction``, ``TypedExport``,
or the compiled plan), and all nine must give back the value that went in. A
wasmtime upgrade that moves a field of the C representation fails here, not
on a device.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import wasmtime
from wasmtime import component

from wasihost.errors import CapabilityError, GuestError, PluginError, PluginTrap
from wasihost.runtime import compiled
from wasihost.runtime.calls import (
    MAX_ERROR_CHARS,
    MAX_STRING_CHARS,
    ExportFunction,
    bounded,
    forget_host_failures,
    host_failures,
)
from wasihost.runtime.instance import define_capability, plan_export
from wasihost.runtime.plans import CapabilityCall, TypedExport

PATHS = ["generic", "typed", "compiled"]


# --- a tiny model of WIT types: their WAT text and canonical-ABI flattening ----------
@dataclasses.dataclass
class T:
    wat: str
    flat: list[str]


class Types:
    """Type constructors; named types (record, variant, enum) are defined and imported."""

    def __init__(self) -> None:
        self.defs: list[str] = []

    def _named(self, definition: str, flat: list[str]) -> T:
        n = len(self.defs)
        self.defs.append(f'(type $d{n} {definition}) (import "t{n}" (type $t{n} (eq $d{n})))')
        return T(f"$t{n}", flat)

    @staticmethod
    def prim(name: str) -> T:
        flat = {"s64": "i64", "u64": "i64", "f32": "f32", "f64": "f64"}.get(name, "i32")
        return T(name, ["i32", "i32"] if name == "string" else [flat])

    @staticmethod
    def list(item: T) -> T:
        return T(f"(list {item.wat})", ["i32", "i32"])

    @staticmethod
    def tuple(*items: T) -> T:
        return T(f"(tuple {' '.join(i.wat for i in items)})", [f for i in items for f in i.flat])

    @staticmethod
    def option(item: T) -> T:
        return T(f"(option {item.wat})", ["i32", *item.flat])

    @staticmethod
    def result(ok: T | None, err: T | None) -> T:
        parts = [ok.wat if ok else "", f"(error {err.wat})" if err else ""]
        return T(f"(result {' '.join(parts)})", ["i32", *_join([ok, err])])

    def record(self, **fields: T) -> T:
        text = " ".join(f'(field "{k.replace("_", "-")}" {v.wat})' for k, v in fields.items())
        return self._named(f"(record {text})", [f for v in fields.values() for f in v.flat])

    def variant(self, **cases: T | None) -> T:
        text = " ".join(f'(case "{k}"{" " + v.wat if v else ""})' for k, v in cases.items())
        return self._named(f"(variant {text})", ["i32", *_join(list(cases.values()))])

    def flags(self, *names: str) -> T:
        return self._named(f"(flags {_quoted(names)})", ["i32"])

    def enum(self, *names: str) -> T:
        return self._named(f"(enum {_quoted(names)})", ["i32"])


def _quoted(names: tuple[str, ...]) -> str:
    return " ".join(f'"{name}"' for name in names)


def _join(cases: list[T | None]) -> list[str]:
    joined: list[str] = []
    for case in cases:
        for i, flat in enumerate(case.flat if case else []):
            if i == len(joined):
                joined.append(flat)
            elif joined[i] != flat:
                joined[i] = "i32" if {joined[i], flat} <= {"i32", "f32"} else "i64"
    return joined


def identity_component(types: Types, ty: T) -> str:
    """WAT of a component whose export ``g`` hands its argument to import ``f`` and back."""
    params = ty.flat if len(ty.flat) <= 16 else ["i32"]
    indirect = len(ty.flat) > 1
    lowered = f"(param {' '.join(params)})" + (
        " (param i32)" if indirect else f" (result {ty.flat[0]})"
    )
    lifted = f"(param {' '.join(params)}) (result {'i32' if indirect else ty.flat[0]})"
    forward = " ".join(f"(local.get {i})" for i in range(len(params)))
    body = (
        f"{forward} (call $f (i32.const 16)) (i32.const 16)" if indirect else f"{forward} (call $f)"
    )
    body = body.replace("(call $f (i32.const 16))", "(i32.const 16) (call $f)")
    return f"""
(component
  {" ".join(types.defs)}
  (import "f" (func $f (param "x" {ty.wat}) (result {ty.wat})))
  (core module $Mem
    (memory (export "mem") 16)
    (global $bump (mut i32) (i32.const 1024))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $bump) (i32.sub (local.get 2) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get 2))))
      (if (i32.gt_u (i32.add (local.get $p) (local.get 3)) (i32.const 1048576))
        (then (local.set $p (i32.const 1024))))
      (global.set $bump (i32.add (local.get $p) (local.get 3)))
      (local.get $p)))
  (core instance $mem (instantiate $Mem))
  (alias core export $mem "mem" (core memory $m))
  (alias core export $mem "realloc" (core func $realloc))
  (core func $f_low (canon lower (func $f) (memory $m) (realloc $realloc) string-encoding=utf8))
  (core module $Shim
    (import "host" "f" (func $f {lowered}))
    (func (export "g") {lifted} {body}))
  (core instance $shim (instantiate $Shim (with "host" (instance (export "f" (func $f_low))))))
  (func $g (param "x" {ty.wat}) (result {ty.wat})
    (canon lift (core func $shim "g") (memory $m) (realloc $realloc) string-encoding=utf8))
  (export "g" (func $g))
)"""


# --- the cases: every kind of type the contract uses, and the rest -------------------
def cases() -> Iterator[tuple[str, Types, T, list[Any]]]:
    def case(
        name: str, build: Callable[[Types], T], values: list[Any]
    ) -> tuple[str, Types, T, list[Any]]:
        types = Types()
        return name, types, build(types), values

    p = Types.prim
    yield case("bool", lambda t: p("bool"), [True, False])
    yield case("s8", lambda t: p("s8"), [-128, 0, 127])
    yield case("u8", lambda t: p("u8"), [0, 255])
    yield case("s16", lambda t: p("s16"), [-32768, 32767])
    yield case("u16", lambda t: p("u16"), [0, 65535])
    yield case("s32", lambda t: p("s32"), [-(2**31), 2**31 - 1])
    yield case("u32", lambda t: p("u32"), [0, 2**32 - 1])
    yield case("s64", lambda t: p("s64"), [-(2**63), 2**63 - 1])
    yield case("u64", lambda t: p("u64"), [0, 2**64 - 1])
    yield case(
        "f32", lambda t: p("f32"), [0.0, -1.5, 3.4028234663852886e38, math.inf, -math.inf, math.nan]
    )
    yield case("f64", lambda t: p("f64"), [0.1, -2.5e-308, 1.7976931348623157e308, math.nan])
    yield case("char", lambda t: p("char"), ["a", "\x00", "é", "\U0010ffff"])
    yield case("string", lambda t: p("string"), ["", "héllo ☃", "a\x00b", "x" * 5000])
    yield case("list<u8>", lambda t: t.list(p("u8")), [b"", b"\x00\xff", bytes(range(256))])
    yield case("list<u32>", lambda t: t.list(p("u32")), [[], [1, 2**32 - 1]])
    yield case("list<string>", lambda t: t.list(p("string")), [[], ["a", "", "ü"]])
    yield case("enum", lambda t: t.enum("none", "high", "low"), ["none", "low"])
    yield case("option<string>", lambda t: t.option(p("string")), [None, "", "x"])
    yield case("option<option<u8>>", lambda t: t.option(t.option(p("u8"))),
               [{"tag": "none", "payload": None}, {"tag": "some", "payload": None},
                {"tag": "some", "payload": 7}])  # fmt: skip
    yield case("tuple<u8, string, f64>", lambda t: t.tuple(p("u8"), p("string"), p("f64")),
               [(1, "a", 2.5)])  # fmt: skip
    yield case("variant (untagged)",
               lambda t: t.variant(a=None, b=p("u32"), c=p("string"), d=p("f64")),
               [None, 5, "five", 5.5])  # fmt: skip
    yield case("variant (tagged)", lambda t: t.variant(x=p("u32"), y=p("u32"), z=None),
               [{"tag": "x", "payload": 1}, {"tag": "y", "payload": 2},
                {"tag": "z", "payload": None}])  # fmt: skip
    yield case("record (dht22-data)", lambda t: t.record(
        temperature_c=p("f32"), humidity_percent=p("f32"), stale=p("bool"), age_ms=p("u64"),
        alarm=t.enum("none", "high", "low"), poll_count=p("u32"), iaq_accuracy=p("u8")),
        [{"temperature_c": 21.5, "humidity_percent": 45.25, "stale": False, "age_ms": 2**64 - 1,
          "alarm": "high", "poll_count": 7, "iaq_accuracy": 3}])  # fmt: skip
    yield case("list<record (measurement)>", lambda t: t.list(t.record(
        name=p("string"), value=p("f64"), unit=p("string"), device_class=p("string"),
        status=t.option(p("string")))),
        [[], [{"name": "t", "value": 1.5, "unit": "°C", "device_class": "temperature",
               "status": None},
              {"name": "h", "value": -0.0, "unit": "%", "device_class": "humidity",
               "status": "stale"}]])  # fmt: skip
    yield case("record in record", lambda t: t.record(
        inner=t.record(a=p("u8"), b=t.list(p("u8"))), tail=p("s64")),
        [{"inner": {"a": 1, "b": b"\x01\x02"}, "tail": -1}])  # fmt: skip
    yield case("list<result<u32, string>>", lambda t: t.list(t.result(p("u32"), p("string"))),
               [[5, "bad", 0]])  # fmt: skip
    yield case("result<_, string>", lambda t: t.result(None, p("string")), [None, "refused"])
    yield case(
        "result<f32, string>", lambda t: t.result(p("f32"), p("string")), [1.25, "no sensor"]
    )
    yield case("result<record, string>", lambda t: t.result(
        t.record(temperature_c=p("f32"), humidity_percent=p("f32")), p("string")),
        [{"temperature_c": 20.5, "humidity_percent": 40.0}, "checksum"])  # fmt: skip
    yield case("result<list<u8>, string>", lambda t: t.result(t.list(p("u8")), p("string")),
               [b"\x10\x20", b"", "nack"])  # fmt: skip
    yield case("result<string, string>", lambda t: t.result(p("string"), p("string")),
               [{"tag": "ok", "payload": "yes"}, {"tag": "err", "payload": "no"}])  # fmt: skip


CASES = list(cases())


# --- plain values as the generic path wants them, and comparison ---------------------
def to_generic(value: Any) -> Any:
    """A plain value (dicts for records) as wasmtime-py's generic API takes it."""
    if is_tagged(value):
        return component.Variant(value["tag"], to_generic(value["payload"]))
    if isinstance(value, dict):
        record = component.Record()
        for key, item in value.items():
            setattr(record, key.replace("_", "-"), to_generic(item))
        return record
    if isinstance(value, list):
        return [to_generic(item) for item in value]
    if isinstance(value, tuple):
        return tuple(to_generic(item) for item in value)
    return value


def same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN and an f32 rounding is the value itself."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
    return type(a) is type(b) and a == b


def is_top_result(name: str) -> bool:
    return name.startswith("result<")


def error_of(name: str, value: Any) -> str | None:
    """For a top-level result case, the error string ``value`` stands for (else None)."""
    if not is_top_result(name):
        return None
    if is_tagged(value):
        return str(value["payload"]) if value["tag"] == "err" else None
    return value if isinstance(value, str) else None


def is_tagged(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"tag", "payload"}


def ok_of(value: Any) -> Any:
    return value["payload"] if is_tagged(value) else value


class Harness:
    """One identity component instantiated with a chosen host side and export side."""

    def __init__(self, engine: wasmtime.Engine, name: str, wat: str, host: str, export: str):
        self.name = name
        self.received: list[Any] = []
        built = component.Component(engine, wat)
        imported = built.type.imports(engine)["f"].ty  # as build_linker gets it
        assert isinstance(imported, component.FuncType)
        linker = component.Linker(engine)
        with linker.root() as root:
            if host == "generic":
                root.add_func("f", self._generic_host)
                self.host_path = "generic"
            else:  # as the host defines capabilities, falling back where a type needs it
                self.host_path = define_capability(
                    host,  # type: ignore[arg-type]
                    root,
                    "test",
                    "f",
                    self._typed_host,
                    imported,
                )
        self.store = wasmtime.Store(engine)
        instance = linker.instantiate(self.store, built)
        func = instance.get_func(self.store, instance.get_export_index(self.store, "g"))
        assert func is not None
        self.export = plan_export(
            export,  # type: ignore[arg-type]
            "test",
            "g",
            func,
            self.store,
            is_top_result(name),
            deadline=0,
        )

    def _generic_host(self, _store: Any, x: Any) -> Any:
        self.received.append(x)
        return x  # in wasmtime-py's own representation: handed back untouched

    def _typed_host(self, x: Any) -> Any:
        self.received.append(x)
        if is_top_result(self.name):  # our callbacks return ok(value) or raise for err
            if isinstance(x, str) and self.name != "result<string, string>":
                raise CapabilityError(x)
            if is_tagged(x) and x["tag"] == "err":
                raise CapabilityError(x["payload"])
            return ok_of(x)
        return x

    def call(self, value: Any, export: str) -> tuple[str, Any]:
        argument = to_generic(value) if export == "generic" else value
        try:
            return "ok", self.export(self.store, argument)
        except GuestError as exc:
            return "err", exc.reason

    def close(self) -> None:
        self.store.close()


@pytest.fixture(scope="module")
def engine() -> Iterator[wasmtime.Engine]:
    yield wasmtime.Engine()


@pytest.mark.parametrize("host", PATHS, ids=lambda v: f"host={v}")
@pytest.mark.parametrize("export", PATHS, ids=lambda v: f"export={v}")
@pytest.mark.parametrize(("name", "types", "ty", "values"), CASES, ids=[c[0] for c in CASES])
def test_round_trip_matches(
    engine: wasmtime.Engine,
    name: str,
    types: Types,
    ty: T,
    values: list[Any],
    host: str,
    export: str,
) -> None:
    harness = Harness(engine, name, identity_component(types, ty), host, export)
    try:
        for value in values:
            outcome = harness.call(value, export)
            error = error_of(name, value)
            expected = (
                ("err", error)
                if error is not None
                else ("ok", ok_of(value) if is_top_result(name) else value)
            )
            assert outcome[0] == expected[0], (value, outcome)
            assert same(outcome[1], expected[1]), (
                f"{name} via host={host} export={export}: {value!r} came back as {outcome[1]!r}"
            )
    finally:
        harness.close()


def _case(name: str) -> tuple[str, str]:
    for case_name, types, ty, _ in CASES:
        if case_name == name:
            return name, identity_component(types, ty)
    raise KeyError(name)


class BadHost(Harness):
    """A typed host side (Python or compiled), with a capability implementation that
    misbehaves."""

    def __init__(
        self, engine: wasmtime.Engine, name: str, impl: Callable[..., Any], path: str
    ) -> None:
        self._impl = impl
        super().__init__(engine, *_case(name), host=path, export=path)
        assert self.host_path == path

    def _typed_host(self, x: Any) -> Any:
        return self._impl(x)


@pytest.mark.parametrize(
    ("impl", "reason"),
    [
        (lambda x: "not a float", "internal host error in f"),
        (lambda x: 1 / 0, "internal host error in f"),
        (
            lambda x: (_ for _ in ()).throw(CapabilityError("refused: not granted")),
            "refused: not granted",
        ),
    ],
    ids=["wrong type", "host bug", "refusal"],
)
@pytest.mark.parametrize("path", ["typed", "compiled"])
def test_a_failing_capability_becomes_the_wit_error(
    engine: wasmtime.Engine,
    impl: Callable[..., Any],
    reason: str,
    path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    forget_host_failures("test")  # logged once per plugin, function and kind
    harness = BadHost(engine, "result<f32, string>", impl, path)
    try:
        assert harness.call(1.5, path) == ("err", reason)
        assert harness.call(2.5, path) == ("err", reason)  # and the instance still works
    finally:
        harness.close()
    if reason.startswith("internal"):  # a host bug is logged with its traceback, once
        logged = [r for r in caplog.records if "host function f" in r.message]
        assert len(logged) == 1 and logged[0].exc_info
        assert host_failures("test").total == 2


@pytest.mark.parametrize("path", ["typed", "compiled"])
def test_a_bad_value_without_an_error_case_traps_cleanly(
    engine: wasmtime.Engine, path: str
) -> None:
    harness = BadHost(engine, "u8", lambda x: 256, path)
    try:
        with pytest.raises(PluginTrap, match="host function f failed: ValueError"):
            harness.call(1, path)
    finally:
        harness.close()


@pytest.mark.parametrize("export", PATHS)
def test_a_bad_argument_is_refused_before_the_call(engine: wasmtime.Engine, export: str) -> None:
    harness = Harness(engine, *_case("record (dht22-data)"), host="typed", export=export)
    good = CASES[[c[0] for c in CASES].index("record (dht22-data)")][3][0]
    try:
        with pytest.raises(PluginError, match="cannot pass arguments to g"):
            harness.call({**good, "poll_count": "seven"}, export)
        with pytest.raises(PluginError, match="cannot pass arguments to g"):
            harness.call({"temperature_c": 1.0}, export)
        if export != "generic":  # wasmtime-py checks these itself, with its own errors
            for bad in ({**good, "alarm": "bogus"}, {**good, "age_ms": -1}):
                with pytest.raises(PluginError, match="cannot pass arguments to g"):
                    harness.call(bad, export)
            with pytest.raises(PluginError, match="g takes 1 arguments, not 0"):
                harness.export(harness.store)
        assert harness.received == []  # the guest never ran
        assert same(harness.call(good, export)[1], good)  # and nothing was left half-written
    finally:
        harness.close()


def test_the_arena_grows_for_big_values_and_refuses_absurd_ones() -> None:
    from wasihost.runtime.values import Arena, ArenaFull, compose

    arena = Arena(64)
    with pytest.raises(ArenaFull):
        arena.take(128)

    def write(size: int, addr: int, arena: Arena) -> None:
        arena.take(size)

    compose(arena, write, 10_000)
    assert arena.end - arena.base >= 10_000  # grown, and the value composed again
    arena.MAX = 1 << 20
    with pytest.raises(ValueError, match="larger than 1 MB"):
        compose(arena, write, 2 << 20)


def test_a_type_the_plans_do_not_convert_is_refused_when_planning(engine: wasmtime.Engine) -> None:
    """Flags are not in our contract: planning refuses them, so the caller falls back to
    the generic path for that function (instance.py) rather than failing at call time."""
    from wasihost.runtime.values import UnsupportedType

    types = Types()
    wat = identity_component(types, types.flags("a", "b"))
    built = component.Component(engine, wat)
    imported = built.type.imports(engine)["f"].ty
    assert isinstance(imported, component.FuncType)
    with pytest.raises(UnsupportedType):
        CapabilityCall("test", "f", lambda x: x, imported)
    harness = Harness(engine, "flags", wat, host="compiled", export="compiled")
    try:
        export = harness.export
        assert isinstance(export, ExportFunction)  # both sides fell back to the generic path
        assert harness.host_path == "generic"
        with pytest.raises(UnsupportedType):
            TypedExport("test", "g", export.func, harness.store)
        with pytest.raises(UnsupportedType):
            compiled.export("test", "g", export.func, harness.store, 0)
    finally:
        harness.close()


def test_the_compiled_plans_are_built_here() -> None:
    """They are optional on a device; here (and in CI) a build that silently lost them
    must fail, or the compiled rows of these tests would test the Python plans."""
    assert compiled.unavailable() is None, compiled.unavailable()


# Variants, and options or results whose values carry their case name: the compiled
# plans hand those functions to the Python plans (no type in our contract needs it).
NOT_COMPILED = {"option<option<u8>>", "variant (untagged)", "variant (tagged)",
                "result<string, string>"}  # fmt: skip


@pytest.mark.parametrize(("name", "types", "ty", "values"), CASES, ids=[c[0] for c in CASES])
def test_the_compiled_plans_convert_every_other_kind(
    engine: wasmtime.Engine, name: str, types: Types, ty: T, values: list[Any]
) -> None:
    harness = Harness(engine, name, identity_component(types, ty), "compiled", "compiled")
    try:
        expected = "typed" if name in NOT_COMPILED else "compiled"
        assert harness.host_path == expected
        assert isinstance(harness.export, TypedExport) == (name in NOT_COMPILED)
    finally:
        harness.close()


@pytest.mark.parametrize("path", ["typed", "compiled"])
def test_byte_views_pass_as_list_u8_like_bytes(engine: wasmtime.Engine, path: str) -> None:
    harness = Harness(engine, *_case("list<u8>"), host=path, export=path)
    try:
        assert harness.call(memoryview(b"abcdef")[::2], path) == ("ok", b"ace")  # strided
        assert harness.call(bytearray(b"\x01\x02"), path) == ("ok", b"\x01\x02")
        square = memoryview(bytes(4)).cast("B", (2, 2))
        with pytest.raises(PluginError, match="cannot pass arguments to g"):
            harness.call(square, path)  # two-dimensional: not a list of bytes
    finally:
        harness.close()


@pytest.mark.parametrize("path", ["typed", "compiled"])
def test_an_export_called_again_while_passing_its_arguments_is_refused(
    engine: wasmtime.Engine, path: str
) -> None:
    """Host code run while composing (here a Mapping's __getitem__) must not reuse the
    arena the outer call is writing into: the inner call is refused, the outer one works."""
    from collections.abc import Mapping

    harness = Harness(engine, *_case("record in record"), host=path, export=path)
    good = {"inner": {"a": 1, "b": b"\x01\x02"}, "tail": -1}
    refused: list[str] = []

    class Sneaky(Mapping[str, Any]):
        def __getitem__(self, key: str) -> Any:
            if key == "a":
                try:
                    harness.call({**good, "inner": {"a": 2, "b": bytes(50_000)}}, path)
                except PluginError as exc:
                    refused.append(exc.reason)
            return good["inner"][key]

        def __iter__(self) -> Iterator[str]:
            return iter(good["inner"])

        def __len__(self) -> int:
            return 2

    try:
        assert harness.call({"inner": Sneaky(), "tail": -1}, path) == ("ok", good)
        # (once per attempt: a value that outgrows the arena is composed again)
        assert refused and set(refused) == {"g called again while passing its arguments"}
    finally:
        harness.close()


def test_a_capability_name_defined_twice_is_refused_without_harm(engine: wasmtime.Engine) -> None:
    built = component.Component(engine, _case("u8")[1])
    imported = built.type.imports(engine)["f"].ty
    assert isinstance(imported, component.FuncType)
    linker = component.Linker(engine)
    with linker.root() as root:
        compiled.add_capability(root, "test", "f", lambda x: x, imported)
        for _ in range(3):  # each refusal releases only what it took
            with pytest.raises(wasmtime.WasmtimeError):
                compiled.add_capability(root, "test", "f", lambda x: x, imported)
    store = wasmtime.Store(engine)
    try:
        instance = linker.instantiate(store, built)
        func = instance.get_func(store, instance.get_export_index(store, "g"))
        assert func is not None
        assert compiled.export("test", "g", func, store, 0)(store, 7) == 7
    finally:
        store.close()


# --- strings the guest returns are capped as they are lifted -------------------------
CAP = MAX_STRING_CHARS


@pytest.mark.parametrize("export", PATHS)
def test_a_returned_string_over_its_cap_is_refused_on_every_path(
    engine: wasmtime.Engine, export: str
) -> None:
    """The cap counts characters: 2-byte characters up to the cap pass, one more is
    refused, and a string far over it is refused from its length alone."""
    harness = Harness(engine, *_case("string"), host="typed", export=export)
    try:
        for fits in ("x" * CAP, "é" * CAP, "€" * (CAP - 1) + "x"):
            assert harness.call(fits, export) == ("ok", fits)
        for size, over in ((CAP + 1, "x" * (CAP + 1)), (2 * CAP + 2, "é" * (CAP + 1)),
                           (3 * 100_000, "€" * 100_000)):  # fmt: skip
            assert harness.call(over, export) == (  # a GuestError: the instance lives on
                "err",
                f"g: the returned string is over {CAP} characters "
                f"({size} bytes of UTF-8, refused as lifted)",
            )
        assert harness.call("still alive", export) == ("ok", "still alive")
    finally:
        harness.close()


@pytest.mark.parametrize("export", PATHS)
@pytest.mark.parametrize("name", ["result<f32, string>", "result<string, string>"])
def test_a_long_error_string_is_cut_alike_on_every_path(
    engine: wasmtime.Engine, name: str, export: str
) -> None:
    harness = Harness(engine, *_case(name), host="typed", export=export)
    tagged = name == "result<string, string>"
    try:
        for error in ("ü" * 200_000, "e" * (MAX_ERROR_CHARS + 1), "ok" * 10):
            outcome = harness.call({"tag": "err", "payload": error} if tagged else error, export)
            assert outcome == ("err", bounded(error))
            assert len(outcome[1]) <= MAX_ERROR_CHARS
        assert bounded("ü" * 200_000).endswith("… [199520 chars cut]")  # 480 kept
    finally:
        harness.close()
