"""Compiled call plans: the typed path with its conversions in C (``_compiled.c``).

The Python plans (``plans.py``) left a seed plugin's poll spending about 40 %
of its time in small Python frames that convert values and dispatch
callbacks. The C module does that work in one call per export call and per
capability callback; what remains in Python is the capability
implementation itself and the failure reporting below.

It is optional: ``pip install`` builds it where a C compiler and the Python
headers are present (``python3-dev`` on Raspberry Pi OS), and the host falls
back to the Python plans when it is missing (``available()`` says why). A
type it does not convert (variants, results nested inside values, options
whose payload can be None) also falls back, per function, to the Python
plans. The Python forms of values are exactly those of ``values.py``;
tests/runtime/test_values.py runs every kind of value through every path.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from typing import Any, Protocol

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component

from wasihost.errors import WasihostError
from wasihost.runtime import values
from wasihost.runtime.calls import (
    ARGUMENT_ERRORS,
    MAX_ERROR_CHARS,
    CallbackFailures,
    ExportFailures,
    string_cap,
    wasmtime_error,
)
from wasihost.runtime.values import UnsupportedType


class _Module(Protocol):  # the C extension's interface, for the type checker
    LIST_U8: int
    Capability: Any
    Export: Any

    def setup(self, *args: Any) -> None: ...
    def add(self, instance: int, name: bytes, capability: Any) -> int | None: ...


def _load() -> tuple[_Module | None, str | None]:
    try:
        from wasihost.runtime import _compiled  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"not built ({exc}; it needs a C compiler and python3-dev)"
    names = (
        "wasmtime_component_func_call",
        "wasmtime_error_new",
        "wasmtime_component_val_clone",
        "wasmtime_component_val_delete",
        "wasmtime_context_set_epoch_deadline",
        "wasmtime_component_linker_instance_add_func",
    )
    functions = {name: ctypes.cast(ffi.dll[name], ctypes.c_void_p).value for name in names}
    layout = {
        "val": values.VAL,
        "of": values.OF,
        "entry": values.ENTRY,
        "entry_val": values.ENTRY_VAL,
        "result_val": values.RESULT_VAL,
        "variant_val": values.VARIANT_VAL,
    }
    kinds = {
        name.removeprefix("WASMTIME_COMPONENT_"): getattr(ffi, name).value
        for name in dir(ffi)
        if name.startswith("WASMTIME_COMPONENT_") and name.isupper()
    }
    if values.LAYOUT_PROBLEM is not None:
        return None, f"refused to start: {values.LAYOUT_PROBLEM}"
    try:
        _compiled.setup(
            functions,
            layout,
            kinds,
            values.LayoutError,
            WasihostError,
            ARGUMENT_ERRORS,
            values.StringOverCap,
            values.shortened,
        )
    except Exception as exc:  # e.g. wasmtime's layout is not the one _compiled.c was written for
        return None, f"refused to start: {exc}"
    return _compiled, None


_C, _UNAVAILABLE = _load()


def unavailable() -> str | None:
    """Why the compiled plans cannot be used here, or None when they can."""
    return _UNAVAILABLE


def _module() -> _Module:
    if _C is None:
        raise UnsupportedType(f"compiled plans {_UNAVAILABLE}")
    return _C


# --- types, described for the C side ------------------------------------------------


def describe(ty: component.ValType, cap: int | None = None) -> tuple[Any, ...]:
    """``ty`` as the nested tuple ``_compiled.c`` reads (see ``desc_new`` there); its
    strings refused over ``cap`` characters when lifted (None: no cap)."""
    scalar = values.scalar_kind(ty)
    if scalar is not None:
        return (scalar,)
    if isinstance(ty, component.Char):
        return (values.K_CHAR,)
    if isinstance(ty, component.String):
        return (values.K_STRING,) if cap is None else (values.K_STRING, cap, False)
    if isinstance(ty, component.EnumType):
        return (values.K_ENUM, tuple(ty.names))
    if isinstance(ty, component.ListType):
        if isinstance(ty.element, component.U8):
            return (_module().LIST_U8,)
        return (values.K_LIST, describe(ty.element, cap))
    if isinstance(ty, component.RecordType):
        keys = tuple(name.replace("-", "_") for name, _ in ty.fields)
        items = tuple(describe(field, cap) for _, field in ty.fields)
        names = tuple(name for name, _ in ty.fields)
        return (values.K_RECORD, keys, names, items, values.field_getter(keys))
    if isinstance(ty, component.TupleType):
        return (values.K_TUPLE, tuple(describe(element, cap) for element in ty.elements))
    if isinstance(ty, component.OptionType) and not values.is_tagged(ty):
        return (values.K_OPTION, describe(ty.payload, cap), values.accepts(ty.payload))
    if isinstance(ty, component.ResultType) and not values.is_tagged(ty):
        ok, err = (None if case is None else describe(case, cap) for case in (ty.ok, ty.err))
        return (values.K_RESULT, ok, err, values.accepts(ty.ok), values.accepts(ty.err))
    what = "tagged " if values.is_tagged(ty) else ""
    raise UnsupportedType(f"{what}{type(ty).__name__} in the compiled plans")


def _signature(ty: component.FuncType, cap: int | None = None) -> tuple[tuple[Any, ...], Any]:
    """Parameters and result; strings in the result refused over ``cap`` characters,
    and a top-level error string cut to ``MAX_ERROR_CHARS`` (only for exports:
    what a capability returns is the host's, what it is given no string in our
    contract)."""
    params = tuple(describe(param) for _, param in ty.params)
    result = ty.result
    if result is None:
        return params, None
    if isinstance(result, component.ResultType):
        ok = describe(result.ok, cap) if result.ok is not None else None
        err = describe(result.err, cap) if result.err is not None else None
        if cap is not None and isinstance(result.err, component.String):
            err = (values.K_STRING, MAX_ERROR_CHARS, True)
        return params, ("result", ok, err)
    return params, ("value", describe(result, cap))


# --- exports and capabilities ----------------------------------------------------------


def export(
    plugin: str, name: str, func: component.Func, store: wasmtime.Store, deadline: int
) -> Callable[..., Any]:
    """A compiled plan for one export of one instance: ``plan(store, *args)``.

    It sets the store's epoch deadline (``deadline`` ticks) itself. Raises
    UnsupportedType when a type needs the Python plans.
    """
    compiled = _module()
    ty = func.type(store)
    params, result = _signature(ty, string_cap(name)[0])
    context = ctypes.cast(store._context(), ctypes.c_void_p).value
    failures = ExportFailures(plugin, name, len(params))
    address = ctypes.addressof(func._func)
    plan: Callable[..., Any] = compiled.Export(
        params, result, func, address, context, deadline, failures
    )
    return plan


def add_capability(
    instance: component.LinkerInstance,
    plugin: str,
    name: str,
    impl: Any,
    ty: component.FuncType,
) -> None:
    """Define capability ``name`` in a linker instance through a compiled plan.

    Raises UnsupportedType when a type needs the Python plans."""
    compiled = _module()
    params, result = _signature(ty)
    plan = compiled.Capability(params, result, impl, CallbackFailures(plugin, name))
    pointer = ctypes.cast(instance.ptr(), ctypes.c_void_p).value or 0
    error = compiled.add(pointer, name.encode(), plan)
    if error:
        raise wasmtime_error(error)
