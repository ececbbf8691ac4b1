"""Call plans: the typed fast path for export calls and capability callbacks.

A plan is built once per function from its component type: the converters
for its parameters and result (``values.py``), the C function handle and
preallocated argument and result slots. A call then does no type
introspection at all, which is where wasmtime-py's generic path spends most
of its time (``FuncType.params``, ``RecordType.fields`` and a ctypes object per
value, on every call and inside every host callback).

This uses wasmtime-py's private ctypes layer, so ``wasmtime`` is pinned to
one version in pyproject.toml and ``calls.py`` keeps the generic path as a
fallback: ``[runtime] call_path = "generic"``, and automatically for any
function whose types the plan does not convert.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from collections.abc import Callable
from typing import Any

import wasmtime
from wasmtime import component

from wasihost.runtime.calls import (
    ARGUMENT_ERRORS,
    MAX_ERROR_CHARS,
    CallbackFailures,
    ExportFailures,
    run_capability,
    string_cap,
    wasmtime_error,
)
from wasihost.runtime.values import (
    DIRECT,
    VAL,
    Arena,
    Compose,
    LayoutError,
    LiftMany,
    StringOverCap,
    clear,
    compose,
    fits_in_slot,
    lift_result,
    lift_sequence,
    lifter,
    lower_result,
    lowerer,
    proto,
    val_clone,
)

_void_p, _size_t = ctypes.c_void_p, ctypes.c_size_t
_func_call = proto(
    "wasmtime_component_func_call", _void_p, _void_p, _void_p, _void_p, _size_t, _void_p, _size_t
)
_error_new = proto("wasmtime_error_new", _void_p, ctypes.c_char_p)


def _error(message: str) -> int:
    """A wasmtime error to hand back from a callback: the guest's call traps with it."""
    pointer: int = _error_new(message.encode("utf-8", "replace"))
    return pointer


class TypedExport:
    """One export of one instance, called through its plan."""

    def __init__(
        self,
        plugin: str,
        name: str,
        func: component.Func,
        store: wasmtime.Store,
        deadline: int = 0,
    ) -> None:
        self.plugin = plugin
        self.name = name
        self._deadline = deadline  # epoch ticks each call may run (0: left as it is)
        self._busy = False
        ty = func.type(store)
        self._lowers: list[Compose] = [lowerer(param) for _, param in ty.params]
        self._failures = ExportFailures(plugin, name, len(self._lowers))
        result = ty.result
        self._split = isinstance(result, component.ResultType)
        self._lift: Callable[[int], Any] | None = None
        cap = string_cap(name)[0]  # strings the guest returns, refused over it as lifted
        if isinstance(result, component.ResultType):
            self._lift = lift_result(result, cap, MAX_ERROR_CHARS)
        elif result is not None:
            self._lift = lifter(result, cap)
        self._func = func  # its C struct must outlive every call
        self._func_addr = ctypes.addressof(func._func)
        # The store's context pointer is stable for the store's life; the instance
        # owning this plan drops it before closing the store.
        self._context = ctypes.cast(store._context(), _void_p).value
        # Arguments are composed here and lent to wasmtime, which copies them.
        self._arena = Arena(256)
        self._result = ctypes.create_string_buffer(VAL)
        self._result_addr = ctypes.addressof(self._result)

    def __call__(self, store: wasmtime.Store, *args: Any) -> Any:
        # Host code run while composing (a Mapping's __getitem__) could call this export
        # again and reuse the arena under the outer call: refused.
        if self._busy:
            raise self._failures.reentered()
        self._busy = True
        try:
            return self._call(store, args)
        finally:
            self._busy = False

    def _call(self, store: wasmtime.Store, args: tuple[Any, ...]) -> Any:
        if self._deadline:
            store.set_epoch_deadline(self._deadline)
        count = len(self._lowers)
        if len(args) != count:
            raise self._failures.wrong_count(len(args))
        try:
            base = compose(self._arena, self._write_args, args, slots=count) if count else 0
        except ARGUMENT_ERRORS as exc:
            raise self._failures.unpassable(exc) from None
        error = _func_call(
            self._func_addr,
            self._context,
            base,
            count,
            self._result_addr,
            0 if self._lift is None else 1,
        )
        if error:
            raise self._failures.trapped(error)
        if self._lift is None:
            return None
        try:
            value = self._lift(self._result_addr)
        except StringOverCap as exc:
            raise self._failures.over_cap(exc) from None
        except LayoutError as exc:
            raise self._failures.unreadable(exc) from None
        finally:
            clear(self._result_addr)
        if self._split:
            ok, value = value
            if not ok:
                raise self._failures.guest_error(value)
        return value

    def _write_args(self, args: tuple[Any, ...], base: int, arena: Arena) -> None:
        for i, lower in enumerate(self._lowers):
            lower(args[i], base + i * VAL, arena)


# --- capability callbacks --------------------------------------------------------

_CALLBACK = ctypes.CFUNCTYPE(_size_t, _void_p, _void_p, _void_p, _void_p, _size_t, _void_p, _size_t)
_FINALIZER = ctypes.CFUNCTYPE(None, _void_p)
_add_func = proto(
    "wasmtime_component_linker_instance_add_func",
    _void_p,
    _void_p,
    ctypes.c_char_p,
    _size_t,
    _CALLBACK,
    _void_p,
    _FINALIZER,
)

_HANDLERS: dict[int, CapabilityCall] = {}
_ids = itertools.count(1)


class CapabilityCall:
    """A capability function as a host callback, through its plan.

    The plan is built when linking, from the type the component imports the
    function with. Like the generic path, a failure becomes the WIT
    ``result`` error: callbacks never raise.
    """

    def __init__(
        self, plugin: str, name: str, impl: Callable[..., Any], ty: component.FuncType
    ) -> None:
        self.plugin = plugin
        self.name = name
        self.impl = impl
        self._failures = CallbackFailures(plugin, name)
        self._read_args: LiftMany = lift_sequence([param for _, param in ty.params], VAL)
        self._lower: Compose | None = None
        self._lower_result: Callable[[bool, Any, int, Arena], None] | None = None
        # Which results fit in wasmtime's slot as they are (a number; a result
        # case without payload), so need no arena and no copy.
        self._direct = False
        self._direct_case = {True: False, False: False}
        result = ty.result
        if isinstance(result, component.ResultType):
            self._lower_result = lower_result(result)
            self._direct_case = {True: result.ok is None, False: result.err is None}
        elif result is not None:
            self._lower = lowerer(result)
            self._direct = fits_in_slot(result)

    def __call__(self, args: int, results: int) -> int:
        try:
            values = self._read_args(args)
            if self._lower_result is None:
                value = self.impl(*values)  # no error case in the type: a failure traps
                if self._lower is not None:
                    _deliver(self._lower, (value,), results, self._direct)
                return 0
            ok, value = run_capability(self.plugin, self.name, self.impl, values)
            try:
                _deliver(self._lower_result, (ok, value), results, self._direct_case[ok])
            except Exception as exc:
                failure = self._failures.bad_value(exc)
                _deliver(self._lower_result, (False, failure), results, self._direct_case[False])
            return 0
        except Exception as exc:
            return _error(self._failures.failed(exc))


def _deliver(write: Callable[..., None], args: tuple[Any, ...], results: int, direct: bool) -> None:
    """Write a callback's result into wasmtime's slot: directly when it fits
    there, else composed in this thread's arena and deep-copied by wasmtime."""
    if direct:
        write(*args, results, DIRECT)  # DIRECT refuses anything that would not fit
    else:
        val_clone(compose(_arena(), write, *args), results)


_arenas = threading.local()


def _arena() -> Arena:
    """This thread's arena: callbacks run on the thread that called into the guest."""
    try:
        arena: Arena = _arenas.arena
    except AttributeError:
        arena = _arenas.arena = Arena()
    return arena


def _dispatch_call(
    data: int, _context: int, _ty: int, args: int, _nargs: int, results: int, _nresults: int
) -> int:
    handler = _HANDLERS.get(data)
    if handler is None:
        return _error("host function no longer registered")
    return handler(args, results)


def _forget_call(data: int) -> None:
    _HANDLERS.pop(data, None)


# Module globals: the C side keeps calling these for as long as any linker lives.
_dispatch = _CALLBACK(_dispatch_call)
_forget = _FINALIZER(_forget_call)


def add_capability(instance: component.LinkerInstance, call: CapabilityCall) -> None:
    """Define ``call`` in a linker instance through the typed callback."""
    key = next(_ids)
    _HANDLERS[key] = call
    name = call.name.encode()
    pointer = ctypes.cast(instance.ptr(), _void_p).value
    error = _add_func(pointer, name, len(name), _dispatch, key, _forget)
    if error:
        _HANDLERS.pop(key, None)
        raise wasmtime_error(error)
