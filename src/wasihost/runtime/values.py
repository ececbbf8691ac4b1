"""Component values in wasmtime's C representation, converted by plans built once per type.

wasmtime-py converts every value by walking its type objects on every call
(each ``.fields``/``.params`` is a fresh C query). Here a WIT type is turned,
once, into a pair of plain closures: a *lifter* that reads a
``wasmtime_component_val_t`` straight out of memory with precompiled
``struct`` formats, and a *lowerer* that writes one. The call plans in
``plans.py`` use them for every export call and capability callback.

The Python forms are exactly those of the generic path after
``calls.to_python``: records are dicts with snake_case keys, ``list<u8>`` is
``bytes``, enums are case names, and options, results and variants are
untagged (the value itself) unless their cases share a Python type, in which
case they are ``{"tag": case, "payload": value}``. tests/test_values.py checks
both paths agree for every kind of type, so a wasmtime upgrade that changes
the memory layout fails a test rather than corrupting a value on a device.

Memory discipline: a lowerer writes into a value slot that holds something
droppable (wasmtime fills new slots with ``bool false``) and leaves it
droppable at every step, even when it raises halfway; whoever owns the slot
frees it with ``wasmtime_component_val_delete``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import math
import struct
from collections.abc import Callable, Mapping
from typing import Any, cast

from wasmtime import _ffi as ffi
from wasmtime import component

# A lifter reads the value stored at ``buf[offset:]`` (``buf`` is a copy of C memory).
Lift = Callable[[bytes, int], Any]
# A lowerer writes a Python value into the value slot at a C address.
Lower = Callable[[Any, int], None]


class UnsupportedType(Exception):
    """A type the typed path does not convert (flags, resources, streams…)."""


class LayoutError(Exception):
    """C memory did not hold the kind of value the type says: never expected."""


# --- the C layout, taken from wasmtime-py's own ctypes declarations -----------------


def _offset(structure: Any, field: str) -> int:
    return int(getattr(structure, field).offset)


VAL = ctypes.sizeof(ffi.wasmtime_component_val_t)
OF = _offset(ffi.wasmtime_component_val_t, "of")
ENTRY = ctypes.sizeof(ffi.wasmtime_component_valrecord_entry)
ENTRY_VAL = _offset(ffi.wasmtime_component_valrecord_entry, "val")
# The offsets below are written into struct formats; wasmtime-py must agree.
assert (_offset(ffi.wasm_byte_vec_t, "size"), _offset(ffi.wasm_byte_vec_t, "data")) == (0, 8)
assert _offset(ffi.wasmtime_component_vallist, "data") == 8
assert _offset(ffi.wasmtime_component_valresult, "val") == 8
assert _offset(ffi.wasmtime_component_valvariant, "val") == 16


def _kind(name: str) -> int:
    value: int = getattr(ffi, f"WASMTIME_COMPONENT_{name}").value
    return value


K_BOOL, K_CHAR, K_STRING = _kind("BOOL"), _kind("CHAR"), _kind("STRING")
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
_void_p, _size_t = ctypes.c_void_p, ctypes.c_size_t


def proto(name: str, restype: Any, *argtypes: Any) -> Any:
    """A private handle on a C function (``dll[name]`` is a new object each time,
    so the argtypes wasmtime-py set on its own handle stay untouched)."""
    fn = _dll[name]
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


byte_vec_new = proto("wasm_byte_vec_new", None, _void_p, _size_t, ctypes.c_char_p)
vallist_new_uninit = proto("wasmtime_component_vallist_new_uninit", None, _void_p, _size_t)
valrecord_new_uninit = proto("wasmtime_component_valrecord_new_uninit", None, _void_p, _size_t)
valtuple_new_uninit = proto("wasmtime_component_valtuple_new_uninit", None, _void_p, _size_t)
val_new = proto("wasmtime_component_val_new", _void_p, _void_p)
val_delete = proto("wasmtime_component_val_delete", None, _void_p)

_ZERO_VAL = bytes(VAL)
# val_new moves a value into a fresh box and leaves ``bool false`` behind, so
# this slot is all zeroes before and after every use, on any thread.
_EMPTY = ctypes.create_string_buffer(VAL)
_EMPTY_ADDR = ctypes.addressof(_EMPTY)
_memmove = ctypes.memmove
_string_at = ctypes.string_at

_HEADER = struct.Struct(f"<B{OF - 1}xQQ")  # kind, then (size, data) or (is_ok/ptr, …)
_POINTER = struct.Struct(f"<B{OF - 1}xQ")  # kind, then a pointer (option payload box)
_RESULT = struct.Struct(f"<B{OF - 1}x?7xQ")  # kind, is_ok, payload box
_VARIANT = struct.Struct(f"<B{OF - 1}xQQQ")  # kind, name size, name data, payload box
_ADDR = struct.Struct("<Q")


def clear(addr: int) -> None:
    """Free what the slot at ``addr`` owns and leave it holding ``bool false``."""
    val_delete(addr)
    _memmove(addr, _ZERO_VAL, VAL)


# --- scalars ---------------------------------------------------------------------

# kind name, struct code, Python type accepted when lowering
_SCALARS: dict[type, tuple[str, str, type]] = {
    component.Bool: ("BOOL", "?", bool),
    component.S8: ("S8", "b", int),
    component.U8: ("U8", "B", int),
    component.S16: ("S16", "h", int),
    component.U16: ("U16", "H", int),
    component.S32: ("S32", "i", int),
    component.U32: ("U32", "I", int),
    component.S64: ("S64", "q", int),
    component.U64: ("U64", "Q", int),
    component.F32: ("F32", "f", float),
    component.F64: ("F64", "d", float),
}


def _scalar(ty: component.ValType) -> tuple[int, str, type] | None:
    entry = _SCALARS.get(type(ty))
    if entry is None:
        return None
    name, code, pytype = entry
    return _kind(name), code, pytype


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


def _tagged(cases: list[tuple[str, component.ValType | None]]) -> bool:
    """True when two cases share a Python class, so values need their tag."""
    seen: set[type] = set()
    for _, ty in cases:
        classes = _py_classes(ty)
        if classes & seen:
            return True
        seen |= classes
    return False


def _accepts(ty: component.ValType | None) -> Callable[[Any], bool]:
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


def lifter(ty: component.ValType) -> Lift:
    """A function reading a value of type ``ty`` out of C memory."""
    scalar = _scalar(ty)
    if scalar is not None:
        return _lift_scalar(*scalar)
    if isinstance(ty, component.Char):
        return _lift_char()
    if isinstance(ty, component.String):
        return _lift_text(K_STRING)
    if isinstance(ty, component.EnumType):
        return _lift_text(K_ENUM)
    if isinstance(ty, component.ListType):
        return _lift_list(ty.element)
    if isinstance(ty, component.RecordType):
        return _lift_record(ty.fields)
    if isinstance(ty, component.TupleType):
        return _lift_tuple(ty.elements)
    cases = _cases(ty)
    if cases is not None:
        return _lift_cases(ty, cases)
    raise UnsupportedType(type(ty).__name__)


def _lift_scalar(kind: int, code: str, _pytype: type) -> Lift:
    unpack = struct.Struct(f"<B{OF - 1}x{code}").unpack_from

    def lift(buf: bytes, offset: int) -> Any:
        found, value = unpack(buf, offset)
        if found != kind:
            _check(found, kind)
        return value

    return lift


def _lift_char() -> Lift:
    unpack = struct.Struct(f"<B{OF - 1}xI").unpack_from

    def lift(buf: bytes, offset: int) -> str:
        found, value = unpack(buf, offset)
        _check(found, K_CHAR)
        return chr(value)

    return lift


def _lift_text(kind: int) -> Lift:
    unpack = _HEADER.unpack_from

    def lift(buf: bytes, offset: int) -> str:
        found, size, data = unpack(buf, offset)
        if found != kind:
            _check(found, kind)
        return _string_at(data, size).decode() if size else ""

    return lift


def _lift_list(element: component.ValType) -> Lift:
    unpack = _HEADER.unpack_from
    if isinstance(element, component.U8):
        u8 = bytes([_kind("U8")])

        def lift_bytes(buf: bytes, offset: int) -> bytes:
            found, size, data = unpack(buf, offset)
            _check(found, K_LIST)
            if not size:
                return b""
            block = _string_at(data, size * VAL)
            if block[::VAL] != u8 * size:
                raise LayoutError("list<u8> element of another kind")
            return block[OF::VAL]

        return lift_bytes
    item = lifter(element)

    def lift(buf: bytes, offset: int) -> list[Any]:
        found, size, data = unpack(buf, offset)
        _check(found, K_LIST)
        if not size:
            return []
        block = _string_at(data, size * VAL)
        return [item(block, i) for i in range(0, size * VAL, VAL)]

    return lift


def _lift_record(fields: list[tuple[str, component.ValType]]) -> Lift:
    """One ``struct`` unpack reads every field's kind and every scalar field's value."""
    keys = tuple(name.replace("-", "_") for name, _ in fields)
    count = len(fields)
    layout = ["<"]
    kinds: list[int] = []
    others: list[tuple[int, int, Lift]] = []  # (field index, offset, lifter) of non-scalars
    for i, (_, ty) in enumerate(fields):
        scalar = _scalar(ty)
        value_offset = i * ENTRY + ENTRY_VAL
        if scalar is not None:
            kind, code, _ = scalar
            size = struct.calcsize(code)
            layout.append(f"{ENTRY_VAL}xB{OF - 1}x{code}{VAL - OF - size}x")
        else:
            kind = _KIND_OF.get(type(ty), -1)
            layout.append(f"{ENTRY_VAL}xB{OF - 1}xQ{VAL - OF - 8}x")
            others.append((i, value_offset, lifter(ty)))
        kinds.append(kind)
    unpack = struct.Struct("".join(layout)).unpack_from
    expected = tuple(kinds)
    scalar_only = not others
    header = _HEADER.unpack_from

    def lift(buf: bytes, offset: int) -> dict[str, Any]:
        found, size, data = header(buf, offset)
        _check(found, K_RECORD)
        if size != count:
            raise LayoutError(f"record with {size} fields, expected {count}")
        block = _string_at(data, size * ENTRY)
        raw = unpack(block)
        if raw[0::2] != expected:
            raise LayoutError(f"record field kinds {raw[0::2]}, expected {expected}")
        if scalar_only:
            return dict(zip(keys, raw[1::2], strict=True))
        values = list(raw[1::2])
        for index, value_offset, item in others:
            values[index] = item(block, value_offset)
        return dict(zip(keys, values, strict=True))

    return lift


def _lift_tuple(elements: list[component.ValType]) -> Lift:
    items = [lifter(ty) for ty in elements]
    count = len(items)
    header = _HEADER.unpack_from

    def lift(buf: bytes, offset: int) -> tuple[Any, ...]:
        found, size, data = header(buf, offset)
        _check(found, K_TUPLE)
        if size != count:
            raise LayoutError(f"tuple of {size}, expected {count}")
        block = _string_at(data, size * VAL) if size else b""
        return tuple(item(block, i * VAL) for i, item in enumerate(items))

    return lift


def _lift_cases(ty: component.ValType, cases: list[tuple[str, component.ValType | None]]) -> Lift:
    tagged = _tagged(cases)
    payloads = {name: (lifter(case) if case is not None else None) for name, case in cases}

    def payload(name: str, box: int) -> Any:
        item = payloads[name]
        value = item(_string_at(box, VAL), 0) if item is not None else None
        return {"tag": name, "payload": value} if tagged else value

    if isinstance(ty, component.OptionType):
        unpack_option = _POINTER.unpack_from

        def lift_option(buf: bytes, offset: int) -> Any:
            found, box = unpack_option(buf, offset)
            _check(found, K_OPTION)
            return payload("some", box) if box else payload("none", 0)

        return lift_option
    if isinstance(ty, component.ResultType):
        unpack_result = _RESULT.unpack_from

        def lift_result(buf: bytes, offset: int) -> Any:
            found, ok, box = unpack_result(buf, offset)
            _check(found, K_RESULT)
            return payload("ok" if ok else "err", box)

        return lift_result
    unpack_variant = _VARIANT.unpack_from

    def lift_variant(buf: bytes, offset: int) -> Any:
        found, size, data, box = unpack_variant(buf, offset)
        _check(found, K_VARIANT)
        name = _string_at(data, size).decode()
        if name not in payloads:
            raise LayoutError(f"unknown variant case {name!r}")
        return payload(name, box)

    return lift_variant


def lift_result(ty: component.ResultType) -> Callable[[bytes, int], tuple[bool, Any]]:
    """For a top-level ``result``: (is_ok, payload) instead of the tagging rules."""
    ok = lifter(ty.ok) if ty.ok is not None else None
    err = lifter(ty.err) if ty.err is not None else None
    unpack = _RESULT.unpack_from

    def lift(buf: bytes, offset: int) -> tuple[bool, Any]:
        found, is_ok, box = unpack(buf, offset)
        _check(found, K_RESULT)
        item = ok if is_ok else err
        return is_ok, (item(_string_at(box, VAL), 0) if item is not None else None)

    return lift


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


def lowerer(ty: component.ValType) -> Lower:
    """A function writing a Python value of type ``ty`` into a C value slot."""
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


def _lower_scalar(kind: int, code: str, pytype: type) -> Lower:
    pack = struct.Struct(f"<B{OF - 1}x{code}").pack
    size = struct.calcsize(f"<B{OF - 1}x{code}")
    name = pytype.__name__

    def lower(value: Any, addr: int) -> None:
        if not isinstance(value, pytype):
            raise TypeError(f"expected {name}, got {type(value).__name__}")
        try:
            packed = pack(kind, value)
        except OverflowError:  # a double beyond f32's range: C's conversion gives ±inf
            packed = pack(kind, math.copysign(math.inf, cast(float, value)))
        except struct.error as exc:
            raise ValueError(f"{value} out of range: {exc}") from None
        _memmove(addr, packed, size)

    return lower


def _lower_char() -> Lower:
    pack = struct.Struct(f"<B{OF - 1}xI").pack

    def lower(value: Any, addr: int) -> None:
        if not isinstance(value, str) or len(value) != 1:
            raise TypeError("expected a one-character string")
        code = ord(value)
        if 0xD800 <= code <= 0xDFFF:
            raise ValueError("a surrogate is not a Unicode scalar value")
        _memmove(addr, pack(K_CHAR, code), OF + 4)

    return lower


def _lower_text(kind: int, names: frozenset[str] | None) -> Lower:
    tag = bytes([kind])

    def lower(value: Any, addr: int) -> None:
        if not isinstance(value, str):
            raise TypeError(f"expected str, got {type(value).__name__}")
        if names is not None and value not in names:
            raise ValueError(f"{value!r} is not one of {sorted(names)}")
        data = value.encode()
        byte_vec_new(addr + OF, len(data), data)
        _memmove(addr, tag, 1)

    return lower


def _lower_list(element: component.ValType) -> Lower:
    tag = bytes([K_LIST])
    if isinstance(element, component.U8):
        u8 = _kind("U8")

        def lower_bytes(value: Any, addr: int) -> None:
            if not isinstance(value, bytes | bytearray | memoryview):
                raise TypeError(f"expected bytes, got {type(value).__name__}")
            data = bytes(value)
            size = len(data)
            vallist_new_uninit(addr + OF, size)
            _memmove(addr, tag, 1)
            if size:
                block = bytearray(size * VAL)
                block[::VAL] = bytes([u8]) * size
                block[OF::VAL] = data
                (items,) = _ADDR.unpack(_string_at(addr + OF + 8, 8))
                _memmove(items, bytes(block), size * VAL)

        return lower_bytes
    item = lowerer(element)

    def lower(value: Any, addr: int) -> None:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected list, got {type(value).__name__}")
        vallist_new_uninit(addr + OF, len(value))
        _memmove(addr, tag, 1)
        if value:
            (items,) = _ADDR.unpack(_string_at(addr + OF + 8, 8))
            for i, element_value in enumerate(value):
                item(element_value, items + i * VAL)

    return lower


def _field_getter(keys: tuple[str, ...]) -> Callable[[Any], list[Any]]:
    def values(value: Any) -> list[Any]:
        if isinstance(value, Mapping):
            return [value[key] for key in keys]
        if isinstance(value, component.Record):
            return [getattr(value, key.replace("_", "-")) for key in keys]
        if dataclasses.is_dataclass(value):
            return [getattr(value, key) for key in keys]
        raise TypeError(f"expected a record (dict or dataclass), got {type(value).__name__}")

    return values


def _lower_record(fields: list[tuple[str, component.ValType]]) -> Lower:
    names = [name.encode() for name, _ in fields]
    items = [lowerer(ty) for _, ty in fields]
    values_of = _field_getter(tuple(name.replace("-", "_") for name, _ in fields))
    count = len(fields)
    tag = bytes([K_RECORD])

    def lower(value: Any, addr: int) -> None:
        values = values_of(value)  # before allocating: a missing field frees nothing
        valrecord_new_uninit(addr + OF, count)
        _memmove(addr, tag, 1)
        (entries,) = _ADDR.unpack(_string_at(addr + OF + 8, 8))
        for i in range(count):
            entry = entries + i * ENTRY
            byte_vec_new(entry, len(names[i]), names[i])
            items[i](values[i], entry + ENTRY_VAL)

    return lower


def _lower_tuple(elements: list[component.ValType]) -> Lower:
    items = [lowerer(ty) for ty in elements]
    count = len(items)
    tag = bytes([K_TUPLE])

    def lower(value: Any, addr: int) -> None:
        if not isinstance(value, tuple | list) or len(value) != count:
            raise TypeError(f"expected a tuple of {count}")
        valtuple_new_uninit(addr + OF, count)
        _memmove(addr, tag, 1)
        if count:
            (slots,) = _ADDR.unpack(_string_at(addr + OF + 8, 8))
            for i, item in enumerate(items):
                item(value[i], slots + i * VAL)

    return lower


def _boxed(addr: int, header: bytes) -> int:
    """Put a fresh ``bool false`` box in the slot (with ``header``); return the box."""
    box: int = val_new(_EMPTY_ADDR)
    _memmove(addr, header + _ADDR.pack(box), len(header) + 8)
    return box


def _lower_cases(ty: component.ValType, cases: list[tuple[str, component.ValType | None]]) -> Lower:
    tagged = _tagged(cases)
    lowers = {name: (lowerer(case) if case is not None else None) for name, case in cases}
    untagged = [(name, _accepts(case)) for name, case in cases]

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

    def write_payload(name: str, payload: Any, addr: int, header: bytes) -> None:
        item = lowers[name]
        if item is None:
            _memmove(addr, header + bytes(8), len(header) + 8)
        else:
            item(payload, _boxed(addr, header))

    if isinstance(ty, component.OptionType):
        option_header = bytes([K_OPTION]) + bytes(OF - 1)

        def lower_option(value: Any, addr: int) -> None:
            name, payload = choose(value)
            write_payload(name, payload, addr, option_header)

        return lower_option
    if isinstance(ty, component.ResultType):
        headers = {
            "ok": bytes([K_RESULT]) + bytes(OF - 1) + b"\x01" + bytes(7),
            "err": bytes([K_RESULT]) + bytes(OF - 1) + bytes(8),
        }

        def lower_result(value: Any, addr: int) -> None:
            name, payload = choose(value)
            write_payload(name, payload, addr, headers[name])

        return lower_result
    encoded = {name: name.encode() for name, _ in cases}

    def lower_variant(value: Any, addr: int) -> None:
        name, payload = choose(value)
        item = lowers[name]
        # Every byte of the slot is written: past a ``bool`` the union is uninitialised.
        byte_vec_new(addr + OF, len(encoded[name]), encoded[name])
        box: int = val_new(_EMPTY_ADDR) if item is not None else 0
        _memmove(addr + OF + 16, _ADDR.pack(box), 8)
        _memmove(addr, bytes([K_VARIANT]), 1)
        if item is not None:
            item(payload, box)

    return lower_variant


def lower_result(ty: component.ResultType) -> Callable[[bool, Any, int], None]:
    """For a top-level ``result``: write ok(value) or err(value), no guessing by type."""
    ok = lowerer(ty.ok) if ty.ok is not None else None
    err = lowerer(ty.err) if ty.err is not None else None
    ok_header = bytes([K_RESULT]) + bytes(OF - 1) + b"\x01" + bytes(7)
    err_header = bytes([K_RESULT]) + bytes(OF - 1) + bytes(8)

    def lower(is_ok: bool, value: Any, addr: int) -> None:
        item, header = (ok, ok_header) if is_ok else (err, err_header)
        if item is None:
            _memmove(addr, header + bytes(8), len(header) + 8)
        else:
            item(value, _boxed(addr, header))

    return lower
