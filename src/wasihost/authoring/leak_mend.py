"""Mending componentize-py 0.25's runtime in a built component, so guests stop leaking.

Every componentize-py component carries the same core module,
``libcomponentize_py_runtime.so``, which has two ownership bugs
(docs/GUEST-MEMORY.md has the reading of its source and the measurements):

1. ``wit_dylib_pop_list`` hands wit-dylib a fresh copy of every byte list a
   guest sends (an ``i2c.transfer`` write, a ``state.snapshot()`` result)
   that no one frees: 16 B to n + 4 rounded up to 16 a call, until the
   memory cap traps the plugin.
2. ``cabi_realloc`` allocates a 16-byte block for a size of 0, which
   wit-dylib never frees: every empty list that crosses in a buffer it
   allocates leaks it (an empty list of any type the guest sends, an empty
   list of any type but bytes the host sends, an empty string from the host).

Until a fixed componentize-py is released, the build replaces that module
with one whose three exports go through small wrappers, appended as new
functions; the original functions are left as they are:

- ``cabi_realloc``: a size of 0 returns the alignment (a dangling pointer,
  as wit-bindgen's own ``cabi_realloc`` does) and allocates nothing.
- ``wit_dylib_push_list`` (a list the host sent): the runtime frees a byte
  list's buffer whatever its length, so an empty one is handed a real empty
  block instead of the dangling pointer, freed here if the runtime does not
  take it.
- ``wit_dylib_pop_list`` (a list the guest sends): a non-null pointer is the
  runtime's own copy of a byte list (null means element by element, which
  wit-dylib frees itself), so its release is deferred to the end of the
  call, through the runtime's ``wit_dylib_dealloc_bytes``, as the runtime
  does for the strings it hands over.

The wrappers are only right for the exact module they were written against,
so only a module with that hash is mended; any other (a fixed release, a
different version) is left alone, and the build says so. The result is
checked when the component is compiled, as every build's is.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata

from wasihost.errors import BuildError

log = logging.getLogger("wasihost.build")

# sha256 of libcomponentize_py_runtime.so as componentize-py 0.25.1 embeds it
# in every component (the same bytes in the shared runtime and every plugin).
KNOWN_RUNTIME = "d6d1faffc282de30f35fc38cda9fd558f3a22a2df24f0868104847f22bddf4dd"
# ... and of the same module once mended: mending is idempotent.
KNOWN_MENDED = "77d41569ab907f3f4cbf0f4f110948bbd4dbfe2352233fb6a13695df222ade6e"
# Part of every build's input hash: a change to the mend (which changes what it
# makes, so KNOWN_MENDED) rebuilds what it mends.
MEND_VERSION = f"leak-mend {KNOWN_MENDED[:16]}"


def toolchain() -> str:
    """What turns a plugin's sources into the component a build lands, for every
    build's input hash: componentize-py's version, and this mend's."""
    return f"componentize-py {metadata.version('componentize-py')}, {MEND_VERSION}"


_MAGIC = b"\0asm"
_COMPONENT_PREAMBLE = _MAGIC + b"\x0d\x00\x01\x00"
_MODULE_PREAMBLE = b"\0asm\x01\x00\x00\x00"
_CORE_MODULE_SECTION = 1  # in a component
_TYPE, _IMPORT, _FUNCTION, _EXPORT, _CODE = 1, 2, 3, 7, 10  # in a core module
_FUNC_KIND = 0  # an import's or export's kind byte for a function

# Instructions (the core spec's binary encoding), for the wrappers below.
I32 = 0x7F
LOCAL_GET, LOCAL_SET, LOCAL_TEE, CALL = 0x20, 0x21, 0x22, 0x10
I32_CONST, I32_EQZ, I32_LOAD = 0x41, 0x45, 0x28
IF, ELSE, END, EMPTY = 0x04, 0x05, 0x0B, 0x40


class MendError(Exception):
    """A component that claims to be componentize-py's but does not parse as one."""


@dataclass(frozen=True)
class Mended:
    component: bytes
    mended: int  # runtime modules mended now (1 in a componentize-py 0.25.1 component)
    already: int  # runtime modules mended before
    unknown: int  # runtime modules of other bytes, left as they are


def mend(component: bytes) -> Mended:
    """The component with its componentize-py runtime module mended, if it has the known one."""
    if not component.startswith(_MAGIC):
        raise MendError("not WebAssembly (bad magic number)")
    if not component.startswith(_COMPONENT_PREAMBLE):  # a newer encoding: not ours to edit
        return Mended(component, mended=0, already=0, unknown=1)
    out = [component[:8]]
    counts = {"mended": 0, "already": 0, "unknown": 0}
    for section_id, payload in _sections(component, 8):
        if section_id == _CORE_MODULE_SECTION and _is_runtime(payload):
            digest = hashlib.sha256(payload).hexdigest()
            if digest == KNOWN_RUNTIME:
                payload = mend_runtime_module(payload)
                counts["mended"] += 1
            else:
                counts["already" if digest == KNOWN_MENDED else "unknown"] += 1
        out.append(bytes([section_id]) + _uleb(len(payload)) + payload)
    return Mended(b"".join(out), **counts)


def mend_build(component: bytes, what: str) -> bytes:
    """What a build lands: the component mended, or as built if its runtime is not
    the known one (a warning for each such component; recycling still bounds the leak)."""
    try:
        result = mend(component)
    except MendError as exc:
        raise BuildError(f"{what}: componentize-py's output did not parse: {exc}") from None
    if result.unknown:
        log.warning(
            "%s: componentize-py's runtime is not the one whose leaks the build mends "
            "(componentize-py 0.25.1): built as is; guest memory may grow until a recycle "
            "(docs/GUEST-MEMORY.md)",
            what,
        )
    return result.component


def _is_runtime(module: bytes) -> bool:
    return b"PyInit_componentize_py_runtime" in module and b"wit_dylib_pop_list" in module


def mend_runtime_module(module: bytes) -> bytes:
    """The runtime module with its three exports redirected to the wrappers."""
    if not module.startswith(_MODULE_PREAMBLE):
        raise MendError("the runtime is not a core module")
    sections = list(_sections(module, 8))
    ids = [section_id for section_id, _ in sections]
    for needed in (_TYPE, _IMPORT, _FUNCTION, _EXPORT, _CODE):
        if needed not in ids:
            raise MendError(f"the runtime module has no section {needed}")
    payload = dict(sections)  # sections of these ids occur once each
    imported = _imported_functions(payload[_IMPORT])
    exports = _exports(payload[_EXPORT])
    try:
        realloc, push, pop, dealloc = (
            exports[name]
            for name in (
                "cabi_realloc", "wit_dylib_push_list", "wit_dylib_pop_list",
                "wit_dylib_dealloc_bytes",
            )
        )  # fmt: skip
    except KeyError as exc:
        raise MendError(f"the runtime module exports no {exc}") from None
    types, type_count = _vector(payload[_TYPE])
    _check_plain_function_types(types, type_count)
    functions, function_count = _vector(payload[_FUNCTION])
    codes, code_count = _vector(payload[_CODE])
    # Two new signatures, appended: (i32 x4) -> i32 and (i32 x3) -> i32.
    four, three = type_count, type_count + 1
    new_types = _func_type(4) + _func_type(3)
    first = imported + function_count  # the index of the first wrapper
    wrappers = {
        "cabi_realloc": (first, four, _realloc_wrapper(realloc)),
        "wit_dylib_push_list": (first + 1, four, _push_list_wrapper(push, realloc, dealloc)),
        "wit_dylib_pop_list": (first + 2, three, _pop_list_wrapper(pop, dealloc)),
    }
    new_functions = b"".join(_uleb(type_index) for _, type_index, _ in wrappers.values())
    new_codes = b"".join(_uleb(len(body)) + body for _, _, body in wrappers.values())
    replaced = {
        _TYPE: _uleb(type_count + 2) + types + new_types,
        _FUNCTION: _uleb(function_count + 3) + functions + new_functions,
        _CODE: _uleb(code_count + 3) + codes + new_codes,
        _EXPORT: _redirected(payload[_EXPORT], {n: w[0] for n, w in wrappers.items()}),
    }
    out = [module[:8]]
    for section_id, body in sections:
        body = replaced.get(section_id, body)
        out.append(bytes([section_id]) + _uleb(len(body)) + body)
    return b"".join(out)


def _realloc_wrapper(realloc: int) -> bytes:
    # (param old_ptr old_len align new_size) (result i32)
    # new_size == 0 ? align : realloc(old_ptr, old_len, align, new_size)
    return _body(
        0,
        LOCAL_GET, 3, I32_EQZ, IF, I32,
        LOCAL_GET, 2,
        ELSE,
        LOCAL_GET, 0, LOCAL_GET, 1, LOCAL_GET, 2, LOCAL_GET, 3, CALL, *_uleb(realloc),
        END,
    )  # fmt: skip


def _push_list_wrapper(push: int, realloc: int, dealloc: int) -> bytes:
    # (param cx ty ptr len) (result i32) (local block taken)
    # len != 0: push(cx, ty, ptr, len), as before.
    # len == 0: block = realloc(0, 0, 1, 0), a real empty block (the original's
    # behaviour, which the runtime's unconditional free of a byte list expects);
    # taken = push(cx, ty, block, 0); if not taken (not a byte list): free it now.
    return _body(
        2,
        LOCAL_GET, 3, IF, I32,
        LOCAL_GET, 0, LOCAL_GET, 1, LOCAL_GET, 2, LOCAL_GET, 3, CALL, *_uleb(push),
        ELSE,
        I32_CONST, 0, I32_CONST, 0, I32_CONST, 1, I32_CONST, 0, CALL, *_uleb(realloc),
        LOCAL_SET, 4,
        LOCAL_GET, 0, LOCAL_GET, 1, LOCAL_GET, 4, I32_CONST, 0, CALL, *_uleb(push),
        LOCAL_TEE, 5, I32_EQZ, IF, EMPTY,
        LOCAL_GET, 0, LOCAL_GET, 4, I32_CONST, 0, I32_CONST, 1, I32_CONST, 0,
        CALL, *_uleb(dealloc),
        END,
        LOCAL_GET, 5,
        END,
    )  # fmt: skip


def _pop_list_wrapper(pop: int, dealloc: int) -> bytes:
    # (param cx ty retptr) (result i32) (local len ptr)
    # len = pop(cx, ty, retptr); ptr = *retptr
    # ptr != 0 (the runtime's copy of a byte list): dealloc(cx, ptr, len, 1, defer=1)
    return _body(
        2,
        LOCAL_GET, 0, LOCAL_GET, 1, LOCAL_GET, 2, CALL, *_uleb(pop), LOCAL_SET, 3,
        LOCAL_GET, 2, I32_LOAD, 2, 0, LOCAL_TEE, 4, IF, EMPTY,
        LOCAL_GET, 0, LOCAL_GET, 4, LOCAL_GET, 3, I32_CONST, 1, I32_CONST, 1,
        CALL, *_uleb(dealloc),
        END,
        LOCAL_GET, 3,
    )  # fmt: skip


def _body(i32_locals: int, *code: int) -> bytes:
    locals_ = (_uleb(1) + _uleb(i32_locals) + bytes([I32])) if i32_locals else _uleb(0)
    return locals_ + bytes(code) + bytes([END])


def _func_type(i32_params: int) -> bytes:
    return b"\x60" + _uleb(i32_params) + bytes([I32] * i32_params) + b"\x01" + bytes([I32])


def _check_plain_function_types(types: bytes, count: int) -> None:
    """New types are numbered by count, which holds only for plain function types
    (no recursion groups, as in any module Rust compiles for wasm32)."""
    at = 0
    for _ in range(count):
        if types[at] != 0x60:
            raise MendError(f"the runtime module has a type of form {types[at]:#x}")
        at += 1
        for _side in ("parameters", "results"):
            size, at = _read_uleb(types, at)
            at += size  # a byte each: number types only
    if at != len(types):
        raise MendError("the runtime module's types do not parse")


def _sections(data: bytes, at: int) -> Iterator[tuple[int, bytes]]:
    while at < len(data):
        section_id = data[at]
        size, at = _read_uleb(data, at + 1)
        if at + size > len(data):
            raise MendError(f"section {section_id} runs past the end")
        yield section_id, data[at : at + size]
        at += size


def _vector(payload: bytes) -> tuple[bytes, int]:
    """A vector section's entries (as bytes) and their count."""
    count, at = _read_uleb(payload, 0)
    return payload[at:], count


def _name(data: bytes, at: int) -> tuple[str, int]:
    size, at = _read_uleb(data, at)
    return data[at : at + size].decode(), at + size


def _imported_functions(payload: bytes) -> int:
    count, at = _read_uleb(payload, 0)
    functions = 0
    for _ in range(count):
        _, at = _name(payload, at)
        _, at = _name(payload, at)
        kind = payload[at]
        at += 1
        if kind == _FUNC_KIND:
            functions += 1
            _, at = _read_uleb(payload, at)
        elif kind == 1:  # table: reftype, limits
            at = _skip_limits(payload, at + 1)
        elif kind == 2:  # memory: limits
            at = _skip_limits(payload, at)
        elif kind == 3:  # global: valtype, mutability
            at += 2
        else:
            raise MendError(f"the runtime module imports an item of kind {kind}")
    return functions


def _skip_limits(data: bytes, at: int) -> int:
    flags = data[at]
    _, at = _read_uleb(data, at + 1)
    if flags & 1:
        _, at = _read_uleb(data, at)
    return at


def _exports(payload: bytes) -> dict[str, int]:
    """Exported functions by name: their index."""
    found = {}
    count, at = _read_uleb(payload, 0)
    for _ in range(count):
        name, at = _name(payload, at)
        kind = payload[at]
        index, at = _read_uleb(payload, at + 1)
        if kind == _FUNC_KIND:
            found[name] = index
    return found


def _redirected(payload: bytes, targets: dict[str, int]) -> bytes:
    count, at = _read_uleb(payload, 0)
    out = [_uleb(count)]
    for _ in range(count):
        start = at
        name, at = _name(payload, at)
        out.append(payload[start:at])
        kind = payload[at]
        index, at = _read_uleb(payload, at + 1)
        if kind == _FUNC_KIND and name in targets:
            index = targets[name]
        out.append(bytes([kind]) + _uleb(index))
    return b"".join(out)


def _read_uleb(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise MendError("truncated number")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
