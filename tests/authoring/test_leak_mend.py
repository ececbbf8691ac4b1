"""The build's mend of componentize-py's runtime (authoring/leak_mend.py): each
wrapper's behaviour on a small stand-in for the runtime module, the hash gate,
bad input, and the mend in what the build lands. That the mended runtime leaks
nothing is shown in tests/runtime/test_guest_memory.py (the `given_back` tests)."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest
import wasmtime

from wasihost.authoring import leak_mend
from wasihost.authoring.leak_mend import MendError, mend, mend_build, mend_runtime_module
from wasihost.errors import BuildError

# The runtime's four functions, reduced to what the wrappers rely on: cabi_realloc
# hands out 16-byte blocks; pop_list of type 1 returns a fresh copy (a byte list),
# of type 0 null (element by element); push_list takes a list of type 1 as raw;
# every call is recorded in globals. An imported function shifts the indices.
STAND_IN = """
(module
  (import "env" "tick" (func $tick))
  (import "env" "memory" (memory 1))
  (global $next (mut i32) (i32.const 1024))
  (global $allocs (export "allocs") (mut i32) (i32.const 0))
  (global $pushed (export "pushed") (mut i32) (i32.const -1))
  (global $freed (export "freed") (mut i32) (i32.const -1))
  (global $freed_size (export "freed_size") (mut i32) (i32.const -1))
  (global $freed_align (export "freed_align") (mut i32) (i32.const -1))
  (global $deferred (export "deferred") (mut i32) (i32.const -1))
  (func (export "PyInit_componentize_py_runtime") call $tick)
  (func $realloc (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (global.set $allocs (i32.add (global.get $allocs) (i32.const 1)))
    (global.get $next)
    (global.set $next (i32.add (global.get $next) (i32.const 16))))
  (func (export "wit_dylib_push_list") (param $cx i32) (param $ty i32) (param $ptr i32)
        (param $len i32) (result i32)
    (global.set $pushed (local.get $ptr))
    (local.get $ty))
  (func (export "wit_dylib_pop_list") (param $cx i32) (param $ty i32) (param $ret i32)
        (result i32)
    (i32.store (local.get $ret)
      (if (result i32) (local.get $ty)
        (then (call $realloc (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 5)))
        (else (i32.const 0))))
    (i32.const 5))
  (func (export "wit_dylib_dealloc_bytes") (param $cx i32) (param $ptr i32) (param $size i32)
        (param $align i32) (param $defer i32)
    (global.set $freed (local.get $ptr))
    (global.set $freed_size (local.get $size))
    (global.set $freed_align (local.get $align))
    (global.set $deferred (local.get $defer)))
)
"""
RETPTR = 64  # where pop_list writes the list's pointer


class StandIn:
    def __init__(self, module: bytes) -> None:
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        memory = wasmtime.Memory(self.store, wasmtime.MemoryType(wasmtime.Limits(1, None)))
        tick = wasmtime.Func(self.store, wasmtime.FuncType([], []), lambda: None)
        instance = wasmtime.Instance(self.store, wasmtime.Module(engine, module), [tick, memory])
        self.exports = instance.exports(self.store)

    def call(self, name: str, *args: int) -> int:
        function = self.exports[name]
        assert isinstance(function, wasmtime.Func)
        result = function(self.store, *args)
        return int(result) if result is not None else -1

    def get(self, name: str) -> int:
        value = self.exports[name]
        assert isinstance(value, wasmtime.Global)
        return int(value.value(self.store))


@pytest.fixture
def stand_in() -> StandIn:
    return StandIn(mend_runtime_module(wasmtime.wat2wasm(STAND_IN)))


def test_a_zero_size_realloc_allocates_nothing(stand_in: StandIn) -> None:
    assert stand_in.call("cabi_realloc", 0, 0, 8, 0) == 8  # the alignment: dangling
    assert stand_in.get("allocs") == 0
    assert stand_in.call("cabi_realloc", 0, 0, 8, 24) == 1024  # the original
    assert stand_in.get("allocs") == 1


def test_a_byte_list_the_guest_sends_is_freed_when_the_call_ends(stand_in: StandIn) -> None:
    assert stand_in.call("wit_dylib_pop_list", 7, 1, RETPTR) == 5
    # The copy the runtime made (1024) is handed to the call to free when it ends.
    assert (stand_in.get("freed"), stand_in.get("freed_size")) == (1024, 5)
    assert (stand_in.get("freed_align"), stand_in.get("deferred")) == (1, 1)


def test_a_list_lowered_element_by_element_is_left_to_wit_dylib(stand_in: StandIn) -> None:
    assert stand_in.call("wit_dylib_pop_list", 7, 0, RETPTR) == 5
    assert stand_in.get("freed") == -1


def test_a_list_the_host_sends_goes_through_unchanged(stand_in: StandIn) -> None:
    assert stand_in.call("wit_dylib_push_list", 7, 1, 2048, 3) == 1
    assert stand_in.get("pushed") == 2048
    assert stand_in.get("allocs") == 0 and stand_in.get("freed") == -1


def test_an_empty_byte_list_from_the_host_gets_a_real_block_to_free(stand_in: StandIn) -> None:
    """The runtime frees a byte list's buffer even when empty: never the dangling pointer."""
    assert stand_in.call("wit_dylib_push_list", 7, 1, 8, 0) == 1  # taken as raw
    assert stand_in.get("pushed") == 1024 and stand_in.get("allocs") == 1
    assert stand_in.get("freed") == -1  # the runtime frees it


def test_an_empty_list_the_runtime_does_not_take_is_freed_at_once(stand_in: StandIn) -> None:
    assert stand_in.call("wit_dylib_push_list", 7, 0, 8, 0) == 0
    assert (stand_in.get("freed"), stand_in.get("deferred")) == (1024, 0)


def component_with(module: bytes) -> bytes:
    return b"\0asm\x0d\x00\x01\x00" + b"\x01" + leak_mend._uleb(len(module)) + module


def test_only_the_known_runtime_is_mended(monkeypatch: pytest.MonkeyPatch) -> None:
    module = wasmtime.wat2wasm(STAND_IN)
    other = mend(component_with(module))
    assert (other.mended, other.already, other.unknown) == (0, 0, 1)
    assert other.component == component_with(module)  # left as it was
    monkeypatch.setattr(leak_mend, "KNOWN_RUNTIME", hashlib.sha256(module).hexdigest())
    mended_module = mend_runtime_module(module)
    monkeypatch.setattr(leak_mend, "KNOWN_MENDED", hashlib.sha256(mended_module).hexdigest())
    first = mend(component_with(module))
    assert (first.mended, first.unknown) == (1, 0)
    assert first.component == component_with(mended_module)
    again = mend(first.component)
    assert (again.mended, again.already) == (0, 1)
    assert again.component == first.component


def test_an_unknown_runtime_is_built_as_is_and_said(caplog: pytest.LogCaptureFixture) -> None:
    component = component_with(wasmtime.wat2wasm(STAND_IN))
    with caplog.at_level(logging.WARNING, "wasihost.build"):
        assert mend_build(component, "p") == component
    assert "p: componentize-py's runtime is not the one" in caplog.text


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x7fELF\x02\x01\x01\x00", "not WebAssembly"),
        (b"\0asm\x0d\x00\x01\x00\x01\x80", "truncated number"),
        (b"\0asm\x0d\x00\x01\x00\x01\x10abc", "section 1 runs past the end"),
    ],
)
def test_bad_input_is_named(data: bytes, error: str) -> None:
    with pytest.raises(MendError, match=error):
        mend(data)
    with pytest.raises(BuildError, match=f"plug: componentize-py's output did not parse: {error}"):
        mend_build(data, "plug")


def test_an_encoding_the_mend_does_not_know_is_built_as_is() -> None:
    """A core module, or a component of another layer or version: left alone, and said."""
    for data in (wasmtime.wat2wasm("(module)"), b"\0asm\x0e\x00\x01\x00"):
        result = mend(data)
        assert (result.component, result.mended, result.unknown) == (data, 0, 1)


def test_a_stand_in_missing_an_export_is_refused() -> None:
    module = wasmtime.wat2wasm(STAND_IN.replace('(export "wit_dylib_push_list")', ""))
    with pytest.raises(MendError, match="exports no 'wit_dylib_push_list'"):
        mend_runtime_module(module)


@pytest.mark.parametrize("name", ["python-runtime", "sht31"])
def test_the_build_lands_components_with_the_runtime_mended(
    built: dict[str, Path], name: str
) -> None:
    """The shared runtime and a plugin built as its own component."""
    result = mend(built[name].read_bytes())
    assert (result.mended, result.already, result.unknown) == (0, 1, 0)
