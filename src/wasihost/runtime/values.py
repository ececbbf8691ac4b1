"""Component values in wasmtime's C representation, converted by plans built once per type.

wasmtime-py converts every value by walking its type objects on every call
(each ``.fields``/``.params`` is a fresh C query). Here a WIT type is turned,
once, into a pair of plain closures: a *lifter* that reads a
``wasmtime_component_val_t`` straight out of memory with precompiled
``struct`` formats, and a *lowerer* that writes one. The call plans in
``plans.py`` use them for every export call and capability callback.

Memory is read and written through ``MEMORY``, one memoryview of the whole
address space (index = address): a ``struct.unpack_from`` on it costs a
fifth of a ``ctypes.string_at``. It is exactly as dangerous as ctypes'
own ``string_at``/``memmove`` and only ever used with addresses wasmtime
handed us or buffers we own.

The Python forms are exactly those of the generic path after
``calls.to_python``: records are dicts with snake_case keys, ``list<u8>`` is
``bytes``, enums are case names, and options, results and variants are
untagged (the value itself) unless their cases share a Python type, in which
case they are ``{"tag": case, "payload": value}``. tests/runtime/test_values.py checks
both paths agree for every kind of type, so a wasmtime upgrade that changes
the memory layout fails a test rather than corrupting a value on a device.

Ownership: values wasmtime gives us (export results) are freed with
``clear``; values we give wasmtime are composed in an ``Arena`` of our own
and only lent (export arguments) or deep-copied by wasmtime (callback
results), so a lowerer failing halfway leaves nothing to free.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any, cast

from wasmtime import _ffi as ffi
from wasmtime import component

# A lifter reads the value stored at an address.
Lift = Callable[[int], Any]
LiftMany = Callable[[int], list[Any]]


class UnsupportedType(Exception):
    """A type the typed path does not convert (flags, resources, streams…)."""


class LayoutError(Exception):
    """C memory did not hold the kind of value the type says: never expected."""


class StringOverCap(Exception):
    """A string the guest sent is longer than its cap: refused from its length
    before it is decoded, so a huge one never becomes a Python ``str``."""

    def __init__(self, size: int, cap: int) -> None:
        super().__init__(f"a string of {size} bytes is over {cap} characters")
        self.size = size  # bytes of UTF-8
        self.cap = cap  # characters


def shortened(head: str, total: int, cap: int) -> str:
    """A text of ``total`` characters starting with ``head``, cut to at most ``cap``
    characters with a note of how many were cut (the note counts toward ``cap``)."""
    keep = cap - len(f"… [{total} chars cut]")
    return f"{head[:keep]}… [{total - keep} chars cut]"


_CONTINUATION = bytes(range(0x80, 0xC0))
_CHUNK = 1 << 20


def _chars(data: int, size: int) -> int:
    """Characters in ``size`` bytes of valid UTF-8 at ``data``, counted a megabyte
    at a time (the bytes that start a character are the non-continuation ones)."""
    chars = 0
    for start in range(data, data + size, _CHUNK):
        chunk = bytes(MEMORY[start : min(start + _CHUNK, data + size)])
        chars += len(chunk.translate(None, _CONTINUATION))
    return chars


def _head(data: int, size: int, cap: int) -> str:
    """The first characters of a long text: at most ``4 * cap`` bytes decoded,
    ending at a character boundary."""
    end = data + min(size, 4 * cap)
    while end < data + size and MEMORY[end] & 0xC0 == 0x80:
        end -= 1
    return str(MEMORY[data:end], "utf-8")


def capped_text(data: int, size: int, cap: int | None, cut: bool) -> str:
    """``size`` bytes of UTF-8 at ``data`` as a str, if at most ``cap`` characters;
    longer: cut (``cut``) or refused with StringOverCap, costing at most ``4 * cap``
    bytes of decoding whatever ``size`` is."""
    if cap is None or size <= cap:
        return _text(data, size)
    if size > 4 * cap and not cut:
        raise StringOverCap(size, cap)
    total = _chars(data, size) if size > 4 * cap else None
    if total is None:
        text = _text(data, size)
        if len(text) <= cap:
            return text
        if not cut:
            raise StringOverCap(size, cap)
        return shortened(text, len(text), cap)
    return shortened(_head(data, size, cap), total, cap)


# --- the C layout, taken from wasmtime-py's own ctypes declarations -----------------


def _offset(structure: Any, field: str) -> int:
    return int(getattr(structure, field).offset)


VAL = ctypes.sizeof(ffi.wasmtime_component_val_t)
OF = _offset(ffi.wasmtime_component_val_t, "of")
ENTRY = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)
ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry, "val")


def _layout_problem() -> str | None:
    """Where wasmtime-py's declared layout differs from the offsets written into
    the struct formats here (and into _compiled.c), or None.

    A real check, not an ``assert`` (``python -O`` strips those): on a wasmtime
    release with another layout the engine falls back to the generic call path
    with a warning instead of reading memory at the wrong offsets.
    """
    expected = {
        "wasm_byte_vec_t.size": (_offset(ffi.wasm_byte_vec_t, "size"), 0),
        "wasm_byte_vec_t.data": (_offset(ffi.wasm_byte_vec_t, "data"), 8),
        "wasmtime_component_vallist.data": (_offset(ffi.wasmtime_component_vallist, "data"), 8),
        "wasmtime_component_valresult.val": (_offset(ffi.wasmtime_component_valresult, "val"), 8),
        "wasmtime_component_valvariant.val": (
            _offset(ffi.wasmtime_component_valvariant, "val"),
            16,
        ),
    }
    wrong = [
        f"{name} at {got}, not {want}" for name, (got, want) in expected.items() if got != want
    ]
    return "wasmtime's value layout differs: " + "; ".join(wrong) if wrong else None


LAYOUT_PROBLEM = _layout_problem()
# Where a result's and a variant's payload pointer sit in a value (_compiled.c checks).
RESULT_VAL = OF + _offset(ffi.wasmtime_component_valresult, "val")
VARIANT_VAL = OF + _offset(ffi.wasmtime_component_valvariant, "val")


def _kind(name: str) -> int:
    value: int = getattr(ffi, f"WASMTIME_COMPONENT_{name}").value
    return value


K_CHAR, K_STRING = _kind("CHAR"), _kind("STRING")
K_LIST, K_RECORD, K_TUPLE = _kind("LIST"), _kind("RECORD"), _kind("TUPLE")
K_VARIANT, K_ENUM, K_OPTION, K_RESULT = (
    _kind("VARIANT"),
    _kind("ENUM"),
    _kind("OPTION"),
    _kind("RESULT"),
)

# Our own prototypes over wasmtime's library, taking addresses as plain ints:
# building ctypes pointer objects per call would cost more than the conversion.
_dll = ffi.dll
_void_p = ctypes.c_void_p


def proto(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private handle on a C function (``dll[name]`` is a new object each time,
    so the argtypes wasmtime-py set on its own handle stay untouched)."""
    fn = _dll[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


val_delete = proto("wasmtime_component_val_delete", None, _void_p)

_memory_view = ctypes.pythonapi.PyMemoryView_FromMemory
_memory_view.restype = ctypes.py_object
_memory_view.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PYBUF_WRITE = 0x200
MEMORY: memoryview = _memory_view(None, sys.maxsize, _PYBUF_WRITE)

_ZERO_VAL = bytes(VAL)

_HEADER = struct.Struct(f"<B{OF - 1}xQQ")  # kind, then (size, data) or (is_ok/ptr, …)
_POINTER = struct.Struct(f"<B{OF - 1}xQ")  # kind, then a pointer (option payload box)
_RESULT = struct.Struct(f"<B{OF - 1}x?7xQ")  # kind, is_ok, payload box
_VARIANT = struct.Struct(f"<B{OF - 1}xQQQ")  # kind, name size, name data, payload box


def clear(addr: int) -> None:
    """Free what the slot at ``addr`` owns and leave it holding ``bool false``."""
    val_delete(addr)
    MEMORY[addr : addr + VAL] = _ZERO_VAL


def _text(data: int, size: int) -> str:
    return str(MEMORY[data : data + size], "utf-8") if size else ""


# --- scalars ---------------------------------------------------------------------

# kind, struct code, Python type accepted when lowering
_SCALARS: dict[type, tuple[int, str, type]] = {
    component.Bool: (_kind("BOOL"), "?", bool),
    component.S8: (_kind("S8"), "b", int),
    component.U8: (_kind("U8"), "B", int),
    component.S16: (_kind("S16"), "h", int),
    component.U16: (_kind("U16"), "H", int),
    component.S32: (_kind("S32"), "i", int),
    component.U32: (_kind("U32"), "I", int),
    component.S64: (_kind("S64"), "q", int),
    component.U64: (_kind("U64"), "Q", int),
    component.F32: (_kind("F32"), "f", float),
    component.F64: (_kind("F64"), "d", float),
}


def _scalar(ty: component.ValType) -> tuple[int, str, type] | None:
    return _SCALARS.get(type(ty))


def scalar_kind(ty: component.ValType) -> int | None:
    """The value kind of a number or bool type, None for any other type."""
    scalar = _SCALARS.get(type(ty))
    return None if scalar is None else scalar[0]


def _check(kind: int, expected: int) -> None:
    if kind != expected:
        raise LayoutError(f"expected value kind {expected}, found {kind}")


# --- how the generic path tags variant-like values --------------------------------

_ANY = object


def _py_classes(ty: component.ValType | None) -> set[type]:
    """The Python classes wasmtime-py uses for ``ty`` (its ``add_classes``)."""
    if ty is None:
        return {_ANY}
    scalar = _SCALARS.get(type(ty))
    if scalar is not None:
        return {scalar[2]}
    if isinstance(ty, component.Char | component.String | component.EnumType):
        return {str}
    if isinstance(ty, component.ListType):
        return {bytes} if isinstance(ty.element, component.U8) else {list}
    if isinstance(ty, component.RecordType):
        return {component.Record}
    if isinstance(ty, component.TupleType):
        return {tuple}
    cases = _cases(ty)
    if cases is not None:
        if _tagged(cases):
            return {component.Variant}
        return set().union(*(_py_classes(case) for _, case in cases))
    raise UnsupportedType(type(ty).__name__)


def _cases(ty: component.ValType) -> list[tuple[str, component.ValType | None]] | None:
    if isinstance(ty, component.OptionType):
        return [("none", None), ("some", ty.payload)]
    if isinstance(ty, component.ResultType):
        return [("ok", ty.ok), ("err", ty.err)]
    if isinstance(ty, component.VariantType):
        return list(ty.cases)
    return None


def is_tagged(ty: component.ValType) -> bool:
    """Whether values of option, result or variant ``ty`` carry their case name."""
    cases = _cases(ty)
    return cases is not None and _tagged(cases)


def _tagged(cases: list[tuple[str, component.ValType | None]]) -> bool:
    """True when two cases share a Python class, so values need their tag."""
    seen: set[type] = set()
    for _, ty in cases:
        classes = _py_classes(ty)
        if classes & seen:
            return True
        seen |= classes
    return False


def accepts(ty: component.ValType | None) -> Callable[[Any], bool]:
    """Whether a plain Python value belongs to an untagged case of type ``ty``."""
    if ty is None:
        return lambda value: value is None
    classes = _py_classes(ty)
    if component.Record in classes:
        classes |= {dict}
        plain = tuple(classes)
        return lambda value: isinstance(value, plain) or dataclasses.is_dataclass(value)
    if component.Variant in classes:
        classes |= {dict}
    if bytes in classes:
        classes |= {bytearray, memoryview}
    plain = tuple(classes)
    return lambda value: isinstance(value, plain)


# --- lifters ---------------------------------------------------------------------


def lifter(ty: component.ValType, cap: int | None = None) -> Lift:
    """A function reading a value of type ``ty`` out of C memory; a string in it
    longer than ``cap`` characters raises StringOverCap (None: no cap)."""
    scalar = _scalar(ty)
    if scalar is not None:
        return _lift_scalar(*scalar[:2])
    if isinstance(ty, component.Char):
        return _lift_char()
    if isinstance(ty, component.String):
        return _lift_text(K_STRING, cap)
    if isinstance(ty, component.EnumType):
        return _lift_text(K_ENUM)
    if isinstance(ty, component.ListType):
        return _lift_list(ty.element, cap)
    if isinstance(ty, component.RecordType):
        return _lift_record(ty.fields, cap)
    if isinstance(ty, component.TupleType):
        return _lift_tuple(ty.elements, cap)
    cases = _cases(ty)
    if cases is not None:
        return _lift_cases(ty, cases, cap)
    raise UnsupportedType(type(ty).__name__)


def _lift_scalar(kind: int, code: str) -> Lift:
    unpack = struct.Struct(f"<B{OF - 1}x{code}").unpack_from

    def lift(addr: int) -> Any:
        found, value = unpack(MEMORY, addr)
        if found != kind:
            _check(found, kind)
        return value

    return lift


def _lift_char() -> Lift:
    unpack = struct.Struct(f"<B{OF - 1}xI").unpack_from

    def lift(addr: int) -> str:
        found, value = unpack(MEMORY, addr)
        _check(found, K_CHAR)
        return chr(value)

    return lift


def _lift_text(kind: int, cap: int | None = None, cut: bool = False) -> Lift:
    unpack = _HEADER.unpack_from

    def lift(addr: int) -> str:
        found, size, data = unpack(MEMORY, addr)
        if found != kind:
            _check(found, kind)
        if cap is not None and size > cap:
            return capped_text(data, size, cap, cut)
        return _text(data, size)

    return lift


def _lift_list(element: component.ValType, cap: int | None) -> Lift:
    unpack = _HEADER.unpack_from
    if isinstance(element, component.U8):
        u8 = bytes([_kind("U8")])

        def lift_bytes(addr: int) -> bytes:
            found, size, data = unpack(MEMORY, addr)
            _check(found, K_LIST)
            if not size:
                return b""
            end = data + size * VAL
            if MEMORY[data:end:VAL] != u8 * size:
                raise LayoutError("list<u8> element of another kind")
            return bytes(MEMORY[data + OF : end : VAL])

        return lift_bytes
    item = lifter(element, cap)

    def lift(addr: int) -> list[Any]:
        found, size, data = unpack(MEMORY, addr)
        _check(found, K_LIST)
        return [item(at) for at in range(data, data + size * VAL, VAL)]

    return lift


def lift_sequence(
    types: list[component.ValType], stride: int, at: int = 0, cap: int | None = None
) -> LiftMany:
    """Read ``len(types)`` values laid out ``stride`` bytes apart (record entries,
    tuple elements, callback arguments): one ``struct`` unpack reads every kind
    and every scalar value; only strings, lists and the like take another step."""
    layout = ["<"]
    kinds: list[int] = []
    others: list[tuple[int, int, Lift]] = []  # (index, offset, lifter) of non-scalars
    for i, ty in enumerate(types):
        scalar = _scalar(ty)
        if scalar is not None:
            kind, code, _ = scalar
            size = struct.calcsize(code)
            layout.append(f"{at}xB{OF - 1}x{code}{VAL - OF - size}x")
        else:
            kind = _KIND_OF.get(type(ty), -1)
            layout.append(f"{at}xB{OF - 1}xQ{VAL - OF - 8}x")
            others.append((i, i * stride + at, lifter(ty, cap)))
        layout.append(f"{stride - at - VAL}x")
        kinds.append(kind)
    unpack = struct.Struct("".join(layout)).unpack_from
    expected = tuple(kinds)

    def lift(addr: int) -> list[Any]:
        raw = unpack(MEMORY, addr)
        if raw[0::2] != expected:
            raise LayoutError(f"value kinds {raw[0::2]}, expected {expected}")
        values = list(raw[1::2])
        for index, offset, item in others:
            values[index] = item(addr + offset)
        return values

    return lift


def _lift_record(fields: list[tuple[str, component.ValType]], cap: int | None) -> Lift:
    keys = tuple(name.replace("-", "_") for name, _ in fields)
    count = len(fields)
    read = lift_sequence([ty for _, ty in fields], ENTRY, ENTRY_VAL, cap)
    header = _HEADER.unpack_from

    def lift(addr: int) -> dict[str, Any]:
        found, size, data = header(MEMORY, addr)
        _check(found, K_RECORD)
        if size != count:
            raise LayoutError(f"record with {size} fields, expected {count}")
        return dict(zip(keys, read(data), strict=True))

    return lift


def _lift_tuple(elements: list[component.ValType], cap: int | None) -> Lift:
    count = len(elements)
    read = lift_sequence(elements, VAL, cap=cap)
    header = _HEADER.unpack_from

    def lift(addr: int) -> tuple[Any, ...]:
        found, size, data = header(MEMORY, addr)
        _check(found, K_TUPLE)
        if size != count:
            raise LayoutError(f"tuple of {size}, expected {count}")
        return tuple(read(data))

    return lift


def _lift_cases(
    ty: component.ValType, cases: list[tuple[str, component.ValType | None]], cap: int | None
) -> Lift:
    tagged = _tagged(cases)
    payloads = {name: (lifter(case, cap) if case is not None else None) for name, case in cases}

    def payload(name: str, box: int) -> Any:
        item = payloads[name]
        value = item(box) if item is not None else None
        return {"tag": name, "payload": value} if tagged else value

    if isinstance(ty, component.OptionType):
        unpack_option = _POINTER.unpack_from

        def lift_option(addr: int) -> Any:
            found, box = unpack_option(MEMORY, addr)
            _check(found, K_OPTION)
            return payload("some", box) if box else payload("none", 0)

        return lift_option
    if isinstance(ty, component.ResultType):
        split = lift_result(ty, cap)

        def lift_tagged_result(addr: int) -> Any:
            ok, value = split(addr)
            return {"tag": "ok" if ok else "err", "payload": value} if tagged else value

        return lift_tagged_result
    unpack_variant = _VARIANT.unpack_from

    def lift_variant(addr: int) -> Any:
        found, size, data, box = unpack_variant(MEMORY, addr)
        _check(found, K_VARIANT)
        name = _text(data, size)
        if name not in payloads:
            raise LayoutError(f"unknown variant case {name!r}")
        return payload(name, box)

    return lift_variant


def lift_result(
    ty: component.ResultType, cap: int | None = None, error_cap: int | None = None
) -> Callable[[int], tuple[bool, Any]]:
    """For a top-level ``result``: (is_ok, payload) instead of the tagging rules.
    ``error_cap``: an error that is a string is cut to that many characters."""
    ok = lifter(ty.ok, cap) if ty.ok is not None else None
    err = lifter(ty.err, cap) if ty.err is not None else None
    if error_cap is not None and isinstance(ty.err, component.String):
        err = _lift_text(K_STRING, error_cap, cut=True)
    unpack = _RESULT.unpack_from

    def lift(addr: int) -> tuple[bool, Any]:
        found, is_ok, box = unpack(MEMORY, addr)
        _check(found, K_RESULT)
        item = ok if is_ok else err
        return is_ok, (item(box) if item is not None else None)

    return lift


def check_strings(addr: int, cap: int) -> None:
    """Raise StringOverCap if the value at ``addr`` holds a string over ``cap``
    characters, reading only kinds and sizes: for the generic path, which lets
    wasmtime-py convert the value afterwards, whatever its type."""
    found, size, data = _HEADER.unpack_from(MEMORY, addr)
    if found == K_STRING:
        if size > cap:
            capped_text(data, size, cap, cut=False)
    elif found in (K_LIST, K_TUPLE):
        for at in range(data, data + size * VAL, VAL):
            if MEMORY[at] < K_CHAR and found == K_LIST:
                return  # a list of numbers holds no string
            check_strings(at, cap)
    elif found == K_RECORD:
        for entry in range(data, data + size * ENTRY, ENTRY):
            check_strings(entry + ENTRY_VAL, cap)
    elif found in (K_OPTION, K_RESULT, K_VARIANT):
        box = _POINTER.unpack_from(MEMORY, addr)[1] if found == K_OPTION else 0
        if found != K_OPTION:
            offset = RESULT_VAL if found == K_RESULT else VARIANT_VAL
            box = struct.unpack_from("<Q", MEMORY, addr + offset)[0]
        if box:
            check_strings(box, cap)


def error_string(addr: int) -> tuple[int, int] | None:
    """(data, size) of the string at ``addr`` when it is the error case of a
    top-level ``result``, else None."""
    found, is_ok, box = _RESULT.unpack_from(MEMORY, addr)
    if found != K_RESULT or is_ok or not box:
        return None
    kind, size, data = _HEADER.unpack_from(MEMORY, box)
    return (data, size) if kind == K_STRING else None


_KIND_OF: dict[type, int] = {
    component.Char: K_CHAR,
    component.String: K_STRING,
    component.EnumType: K_ENUM,
    component.ListType: K_LIST,
    component.RecordType: K_RECORD,
    component.TupleType: K_TUPLE,
    component.VariantType: K_VARIANT,
    component.OptionType: K_OPTION,
    component.ResultType: K_RESULT,
}


# --- lowerers --------------------------------------------------------------------
#
# A value is composed in an ``Arena`` (memory we own, never freed by wasmtime)
# and then either lent to wasmtime as it is (export arguments are borrowed) or
# deep-copied into a wasmtime slot with one ``val_clone`` (callback results).
# Rust then does the allocations, instead of one ctypes call per string,
# record and box.


class ArenaFull(Exception):
    """The value does not fit; the arena grows and the value is composed again."""


class Arena:
    """Scratch memory for composing one value at a time (one thread at a time)."""

    MAX = 64 * 1024 * 1024

    def __init__(self, size: int = 1024) -> None:
        self._allocate(size)

    def _allocate(self, size: int) -> None:
        self._buffer = ctypes.create_string_buffer(size)
        self.base = ctypes.addressof(self._buffer)
        self.end = self.base + size
        self.top = self.base

    def reset(self, slots: int) -> int:
        """Start a new value with ``slots`` top-level slots; return their address."""
        self.top = self.base
        return self.take(slots * VAL)

    def take(self, size: int) -> int:
        addr = self.top
        top = addr + ((size + 7) & ~7)
        if top > self.end:
            raise ArenaFull
        self.top = top
        return addr

    def grow(self) -> None:
        size = (self.end - self.base) * 4
        if size > self.MAX:
            raise ValueError(f"value larger than {self.MAX // (1024 * 1024)} MB")
        self._allocate(size)


class _Direct(Arena):
    """No memory at all, for values a plan knows fit in their slot (a number, a
    result case without payload), written straight into wasmtime's slot; a
    value needing memory would raise ``ArenaFull`` before touching the slot."""

    def __init__(self) -> None:
        pass

    def take(self, size: int) -> int:
        raise ArenaFull


DIRECT: Arena = _Direct()

# A lowerer writes a Python value into the slot at an address inside ``arena``.
# It writes the slot itself last, after everything it needs from the arena.
Compose = Callable[[Any, int, Arena], None]

val_clone = proto("wasmtime_component_val_clone", None, _void_p, _void_p)


def compose(arena: Arena, write: Callable[..., None], *args: Any, slots: int = 1) -> int:
    """``write(*args, addr, arena)`` a value into fresh arena slots, growing the
    arena until it fits; returns the slots' address."""
    while True:
        addr = arena.reset(slots)
        try:
            write(*args, addr, arena)
        except ArenaFull:
            arena.grow()
            continue
        return addr


class _Names:
    """Field and case names for the life of the process: values lent or cloned
    from an arena point at them, and nothing ever frees them."""

    def __init__(self, names: list[str]) -> None:
        encoded = [name.encode() for name in names]
        self._buffer = ctypes.create_string_buffer(b"".join(encoded) or b"\0")
        base = ctypes.addressof(self._buffer)
        self.addr: dict[str, tuple[int, int]] = {}
        for name, data in zip(names, encoded, strict=True):
            self.addr[name] = (len(data), base)
            base += len(data)


def fits_in_slot(ty: component.ValType) -> bool:
    """Whether every value of ``ty`` lives entirely in its slot (no pointers)."""
    return _scalar(ty) is not None or isinstance(ty, component.Char)


def lowerer(ty: component.ValType) -> Compose:
    """A function composing a Python value of type ``ty`` in an arena."""
    scalar = _scalar(ty)
    if scalar is not None:
        return _lower_scalar(*scalar)
    if isinstance(ty, component.Char):
        return _lower_char()
    if isinstance(ty, component.String):
        return _lower_text(K_STRING, None)
    if isinstance(ty, component.EnumType):
        return _lower_text(K_ENUM, frozenset(ty.names))
    if isinstance(ty, component.ListType):
        return _lower_list(ty.element)
    if isinstance(ty, component.RecordType):
        return _lower_record(ty.fields)
    if isinstance(ty, component.TupleType):
        return _lower_tuple(ty.elements)
    cases = _cases(ty)
    if cases is not None:
        return _lower_cases(ty, cases)
    raise UnsupportedType(type(ty).__name__)


def _lower_scalar(kind: int, code: str, pytype: type) -> Compose:
    pack = struct.Struct(f"<B{OF - 1}x{code}").pack_into
    name = pytype.__name__

    def lower(value: Any, addr: int, _arena: Arena) -> None:
        if not isinstance(value, pytype):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        try:
            pack(MEMORY, addr, kind, value)
        except OverflowError:  # a double beyond f32's range: C's conversion gives ±inf
            pack(MEMORY, addr, kind, math.copysign(math.inf, cast(float, value)))
        except struct.error as exc:
            raise ValueError(f"{value} out of range: {exc}") from None

    return lower


def _lower_char() -> Compose:
    pack = struct.Struct(f"<B{OF - 1}xI").pack_into

    def lower(value: Any, addr: int, _arena: Arena) -> None:
        if not isinstance(value, str) or len(value) != 1:
            raise TypeError("expected a one-character string")
        code = ord(value)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError("a surrogate is not a Unicode scalar value")
        pack(MEMORY, addr, K_CHAR, code)

    return lower


def _lower_text(kind: int, names: frozenset[str] | None) -> Compose:
    pack = _HEADER.pack_into

    def lower(value: Any, addr: int, arena: Arena) -> None:
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        if names is not None and value not in names:
            raise ValueError(f"{value!r} is not one of {sorted(names)}")
        data = value.encode()
        size = len(data)
        text = arena.take(size)
        MEMORY[text : text + size] = data
        pack(MEMORY, addr, kind, size, text)

    return lower


def _lower_list(element: component.ValType) -> Compose:
    pack = _HEADER.pack_into
    if isinstance(element, component.U8):
        u8 = bytes([_kind("U8")])

        def lower_bytes(value: Any, addr: int, arena: Arena) -> None:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"expected bytes, got {type(value).__name__}")
            size = len(value)
            items = arena.take(size * VAL)
            end = items + size * VAL
            MEMORY[items:end:VAL] = u8 * size
            MEMORY[items + OF : end : VAL] = value
            pack(MEMORY, addr, K_LIST, size, items)

        return lower_bytes
    item = lowerer(element)

    def lower(value: Any, addr: int, arena: Arena) -> None:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected list, got {type(value).__name__}")
        size = len(value)
        items = arena.take(size * VAL)
        for i, element_value in enumerate(value):
            item(element_value, items + i * VAL, arena)
        pack(MEMORY, addr, K_LIST, size, items)

    return lower


def field_getter(keys: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    def values(value: Any) -> list[Any]:
        if type(value) is dict:
            return [value[key] for key in keys]
        if dataclasses.is_dataclass(value):
            return [getattr(value, key) for key in keys]
        if isinstance(value, Mapping):
            return [value[key] for key in keys]
        if isinstance(value, component.Record):
            return [getattr(value, key.replace("_", "-")) for key in keys]
        raise TypeError(f"expected a record (dict or dataclass), got {type(value).__name__}")

    return values


def _lower_record(fields: list[tuple[str, component.ValType]]) -> Compose:
    names = _Names([name for name, _ in fields])
    items = [lowerer(ty) for _, ty in fields]
    values_of = field_getter(tuple(name.replace("-", "_") for name, _ in fields))
    count = len(fields)
    # Each entry starts with its name, (size, data): packed once, copied per value.
    headers = [_NAME.pack(*names.addr[name]) for name, _ in fields]
    pack = _HEADER.pack_into

    def lower(value: Any, addr: int, arena: Arena, names: _Names = names) -> None:
        values = values_of(value)
        entries = arena.take(count * ENTRY)
        for i in range(count):
            entry = entries + i * ENTRY
            MEMORY[entry : entry + 16] = headers[i]
            items[i](values[i], entry + ENTRY_VAL, arena)
        pack(MEMORY, addr, K_RECORD, count, entries)

    return lower


_NAME = struct.Struct("<QQ")


def _lower_tuple(elements: list[component.ValType]) -> Compose:
    items = [lowerer(ty) for ty in elements]
    count = len(items)
    pack = _HEADER.pack_into

    def lower(value: Any, addr: int, arena: Arena) -> None:
        if not isinstance(value, tuple | list) or len(value) != count:
            raise TypeError(f"expected a tuple of {count}")
        slots = arena.take(count * VAL)
        for i, item in enumerate(items):
            item(value[i], slots + i * VAL, arena)
        pack(MEMORY, addr, K_TUPLE, count, slots)

    return lower


def _lower_cases(
    ty: component.ValType, cases: list[tuple[str, component.ValType | None]]
) -> Compose:
    tagged = _tagged(cases)
    lowers = {name: (lowerer(case) if case is not None else None) for name, case in cases}
    untagged = [(name, accepts(case)) for name, case in cases]

    def choose(value: Any) -> tuple[str, Any]:
        if tagged:
            if isinstance(value, component.Variant):
                tag, payload = value.tag, value.payload
            elif isinstance(value, Mapping) and "tag" in value:
                tag, payload = value["tag"], value.get("payload")
            else:
                raise TypeError(f"expected {{'tag': case, 'payload': …}}, got {value!r:.80}")
            if tag not in lowers:
                raise ValueError(f"{tag!r} is not a case of this type")
            return tag, payload
        for name, accepts in untagged:
            if accepts(value):
                return name, value
        raise TypeError(f"{type(value).__name__} value fits no case of this type")

    def box(name: str, payload: Any, arena: Arena) -> int:
        """The payload in its own slot (0 for a case without one)."""
        item = lowers[name]
        if item is None:
            return 0
        slot = arena.take(VAL)
        item(payload, slot, arena)
        return slot

    if isinstance(ty, component.OptionType):
        pack_option = _POINTER.pack_into

        def lower_option(value: Any, addr: int, arena: Arena) -> None:
            name, payload = choose(value)
            pack_option(MEMORY, addr, K_OPTION, box(name, payload, arena))

        return lower_option
    if isinstance(ty, component.ResultType):
        split = lower_result(ty)

        def lower_chosen_result(value: Any, addr: int, arena: Arena) -> None:
            name, payload = choose(value)
            split(name == "ok", payload, addr, arena)

        return lower_chosen_result
    names = _Names([name for name, _ in cases])
    pack_variant = _VARIANT.pack_into

    def lower_variant(value: Any, addr: int, arena: Arena) -> None:
        name, payload = choose(value)
        size, data = names.addr[name]
        pack_variant(MEMORY, addr, K_VARIANT, size, data, box(name, payload, arena))

    return lower_variant


def lower_result(ty: component.ResultType) -> Callable[[bool, Any, int, Arena], None]:
    """For a top-level ``result``: compose ok(value) or err(value), no guessing by type."""
    ok = lowerer(ty.ok) if ty.ok is not None else None
    err = lowerer(ty.err) if ty.err is not None else None
    pack = _RESULT.pack_into

    def lower(is_ok: bool, value: Any, addr: int, arena: Arena) -> None:
        item = ok if is_ok else err
        slot = 0
        if item is not None:
            slot = arena.take(VAL)
            item(value, slot, arena)
        pack(MEMORY, addr, K_RESULT, is_ok, slot)

    return lower
