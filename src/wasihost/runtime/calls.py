"""The call layer: the one place values cross between Python and components.

Everything that converts between plain Python values and wasmtime's
component values lives here, and so does the translation of wasmtime
failures into wasihost errors. The rest of the host sees dicts, lists,
floats and ``WasihostError`` subclasses only; a faster call path can
replace this module without touching its callers: ``plans.py`` is that
faster path (``compiled.py`` its C version), and this module remains the fallback
(``[runtime] call_path``). How failures reach the host is shared by all paths.

Conversions: a WIT record is a dict with snake_case keys (``temperature_c``);
an enum is its case name; ``list<u8>`` is ``bytes``. A ``result`` whose
cases have distinct Python types arrives untagged from wasmtime-py, so the
error case of ``result<T, string>`` is recognised as a ``str``.
"""

from __future__ import annotations

import ctypes
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi
from wasmtime import component
from wasmtime.component._enter import enter_wasm

from wasihost.errors import GuestError, PluginError, PluginTrap, WasihostError
from wasihost.runtime.values import (
    StringOverCap,
    capped_text,
    check_strings,
    error_string,
    shortened,
)

log = logging.getLogger("wasihost.calls")

# Error text from a guest ends up in logs, /api/plugins and the dashboard:
# a plugin returning megabytes of it must not make any of those huge.
MAX_ERROR_CHARS = 500
# Strings a guest returns are refused over these caps when they are lifted, from
# the length wasmtime reports, before they are decoded into Python (the error
# string of a ``result`` is cut to MAX_ERROR_CHARS there instead).
MAX_STRING_CHARS = 64 * 1024
MAX_PAGE_CHARS = 2_000_000  # a real dashboard is tens of KB; more is a broken or hostile plugin
STRING_CAPS: dict[str, tuple[int, str]] = {"dashboard-logic.render": (MAX_PAGE_CHARS, "page")}


def string_cap(function: str) -> tuple[int, str]:
    """The cap on strings export ``function`` returns, and what to call them."""
    return STRING_CAPS.get(function, (MAX_STRING_CHARS, "string"))


def printable(text: str) -> str:
    """Every character Python deems unprintable escaped as ``repr`` writes it
    (``\\n``, ``\\x1b``, ``\\u202e``): guest text must not be able to forge host
    log lines, drive the operator's terminal, or reorder or hide what a log viewer
    shows (bidi overrides, zero-width characters: the Unicode format category).

    ``str.isprintable`` is the rule rather than a list of code points so that
    characters a later Unicode version assigns as formatting are escaped too
    (unassigned ones are unprintable); it also escapes the separators other
    than the ASCII space (U+00A0, U+2028), which can pass for a space or a
    line break.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def bounded(message: str) -> str:
    """Guest error text, escaped and cut to ``MAX_ERROR_CHARS`` (as the typed
    paths cut it when lifting it, so a cut text passes here unchanged)."""
    if len(message) > MAX_ERROR_CHARS:
        message = shortened(message, len(message), MAX_ERROR_CHARS)
    return printable(message)


def to_python(value: Any) -> Any:
    """A component value as plain Python."""
    if isinstance(value, component.Record):
        return {key.replace("-", "_"): to_python(item) for key, item in vars(value).items()}
    if isinstance(value, list):
        return [to_python(item) for item in value]
    if isinstance(value, tuple):
        return tuple(to_python(item) for item in value)
    if isinstance(value, component.Variant):
        return {"tag": value.tag, "payload": to_python(value.payload)}
    return value


def to_component(value: Any) -> Any:
    """A plain Python value (dataclasses for records) as a component value."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        record = component.Record()
        for field in dataclasses.fields(value):
            setattr(record, field.name.replace("_", "-"), to_component(getattr(value, field.name)))
        return record
    if isinstance(value, list | tuple):
        return [to_component(item) for item in value]
    return value


def run_capability(
    plugin: str, name: str, impl: Callable[..., Any], args: Sequence[Any]
) -> tuple[bool, Any]:
    """Run a capability for a guest: ``(True, value)`` or ``(False, WIT error text)``.

    Never raises, on either call path: a failure becomes the error case of
    the capability's ``result`` (all fallible capabilities return one).
    """
    try:
        return True, impl(*args)
    except WasihostError as exc:
        return False, str(exc)
    except Exception as exc:
        return False, CallbackFailures(plugin, name).internal(exc)


class HostFailures:
    """Failures inside the host's side of one plugin's capability calls: host
    bugs or hardware trouble, never the guest's fault, so they are counted
    rather than refused (a refusal is ``CapabilityContext.refuse``).

    A guest can make such a call thousands of times a second, each costing a
    traceback in the log: only the first failure of each function and kind
    (exception type) is logged, with its traceback; later ones are counted in
    ``counts`` ("function: Kind" -> calls), with one reminder line at most every
    ``REMIND_S`` seconds per kind while it keeps failing.
    """

    REMIND_S = 60.0
    clock: Callable[[], float] = staticmethod(time.monotonic)  # tests step it

    def __init__(self, plugin: str) -> None:
        self.plugin = plugin
        self.counts: dict[str, int] = {}
        self._reminded: dict[str, tuple[float, int]] = {}  # kind -> (when, count then)
        self._lock = threading.Lock()

    def record(self, function: str, exc: BaseException, *, bad_value: bool = False) -> None:
        """Count one failure of ``function``; ``bad_value``: it returned what its
        WIT type cannot carry (a kind of its own)."""
        what = "returned a bad value" if bad_value else "failed"
        kind = f"{function}: {'bad value ' if bad_value else ''}{type(exc).__name__}"
        now = self.clock()
        with self._lock:
            count = self.counts[kind] = self.counts.get(kind, 0) + 1
            when, then = self._reminded.get(kind, (now, 0))
            remind = count > 1 and now - when >= self.REMIND_S
            if count == 1 or remind:
                self._reminded[kind] = (now, count)
        if count == 1:
            log.error(
                "[%s] host function %s %s (logged once per function and kind, then counted)",
                self.plugin,
                function,
                what,
                exc_info=exc,
            )
        elif remind:
            log.error(
                "[%s] host function %s still failing (%s): %d times in the last %.0f s (%d in all)",
                self.plugin,
                function,
                kind.removeprefix(f"{function}: "),
                count - then,
                now - when,
                count,
            )

    @property
    def total(self) -> int:
        return sum(self.counts.values())


_HOST_FAILURES: dict[str, HostFailures] = {}


def host_failures(plugin: str) -> HostFailures:
    """The host-side capability failures of the plugin named ``plugin``, kept by
    name across its instances and versions for the life of the process."""
    failures = _HOST_FAILURES.get(plugin)
    if failures is None:
        failures = _HOST_FAILURES.setdefault(plugin, HostFailures(plugin))
    return failures


def forget_host_failures(plugin: str) -> None:
    """Drop a removed plugin's counts (a plugin added later under the name starts at 0)."""
    _HOST_FAILURES.pop(plugin, None)


class CallbackFailures:
    """What a capability callback's failures become, on every call path: each
    method records the exception (``HostFailures``) and says what the guest gets."""

    def __init__(self, plugin: str, name: str) -> None:
        self.plugin = plugin
        self.name = name

    def internal(self, exc: BaseException) -> str:
        """A bug in a capability: the guest gets the WIT error, the log the traceback."""
        host_failures(self.plugin).record(self.name, exc)
        return f"internal host error in {self.name}"

    def bad_value(self, exc: BaseException) -> str:
        """A capability returned what its WIT type cannot carry."""
        host_failures(self.plugin).record(self.name, exc, bad_value=True)
        return f"internal host error in {self.name}"

    def failed(self, exc: BaseException) -> str:
        """No error case to report it in: the guest's call traps with this message."""
        host_failures(self.plugin).record(self.name, exc)
        return f"host function {self.name} failed: {type(exc).__name__}"


def host_function(plugin: str, name: str, impl: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a capability implementation as a wasmtime-py host function.

    A host function must never raise: wasmtime-py carries a callback's
    exception through a module global, so with plugins on several threads
    it could surface in another plugin's call.
    """

    def converted(*args: Any) -> Any:
        return to_component(impl(*args))

    def call(_store: Any, *args: Any) -> Any:
        # the error text stands for itself: wasmtime-py picks the result case by type
        return run_capability(plugin, name, converted, args)[1]

    return call


def trap_reason(exc: wasmtime.WasmtimeError) -> str:
    """The useful line of a wasmtime error: the cause, not the backtrace."""
    text = str(exc).strip()
    if "Caused by:" in text:
        causes = [line.strip() for line in text.split("Caused by:", 1)[1].splitlines()]
        reasons = [line for line in causes if line]
        if reasons:
            return reasons[-1].lstrip("0123456789: ")
    return text.splitlines()[0] if text else type(exc).__name__


@dataclasses.dataclass(frozen=True)
class ExportFunction:
    """One exported function of one instance, with how to read its result."""

    plugin: str
    name: str
    func: component.Func
    returns_result: bool
    deadline: int = 0  # epoch ticks each call may run (0: left as it is)

    def __call__(self, store: wasmtime.Store, *args: Any) -> Any:
        if self.deadline:
            store.set_epoch_deadline(self.deadline)
        try:
            value = _call(self.func, store, args, string_cap(self.name)[0], self.returns_result)
        except wasmtime.WasmtimeError as exc:
            raise trapped(self.plugin, self.name, exc) from None
        except ARGUMENT_ERRORS as exc:  # wasmtime-py refused an argument before the call
            raise unpassable(self.plugin, self.name, exc) from None
        except StringOverCap as exc:
            raise over_cap(self.plugin, self.name, exc) from None
        except _LongError as exc:
            raise guest_error(self.plugin, exc.text) from None
        if self.returns_result:
            if isinstance(value, str):
                raise guest_error(self.plugin, value)
            if isinstance(value, component.Variant):
                if value.tag == "err":
                    raise guest_error(self.plugin, value.payload)
                value = value.payload
        return to_python(value)


class _LongError(Exception):
    """A guest error text over MAX_ERROR_CHARS, cut as it was lifted."""

    def __init__(self, text: str) -> None:
        self.text = text


def _call(
    func: component.Func, store: wasmtime.Store, args: tuple[Any, ...], cap: int, split: bool
) -> Any:
    """``func(store, *args)`` as wasmtime-py's ``Func.__call__`` does it, except that
    the result's strings are checked against ``cap`` (and a long error string cut)
    from their lengths before wasmtime-py decodes any of them."""
    ty = func.type(store)
    if len(args) != len(ty.params):
        raise TypeError(f"wrong number of parameters: given {len(args)}, expected {len(ty.params)}")
    params = (ffi.wasmtime_component_val_t * len(args))()
    lowered = 0
    try:
        for (_, param), arg in zip(ty.params, args, strict=True):
            param.convert_to_c(store, arg, ctypes.pointer(params[lowered]))
            lowered += 1
        if ty.result is None:
            enter_wasm(lambda: _func_call(func, store, params, lowered, None, 0))
            return None
        result = ffi.wasmtime_component_val_t()
        enter_wasm(lambda: _func_call(func, store, params, lowered, ctypes.byref(result), 1))
        try:
            addr = ctypes.addressof(result)
            error = error_string(addr) if split else None
            if error is not None and error[1] > MAX_ERROR_CHARS:
                raise _LongError(capped_text(*error, MAX_ERROR_CHARS, cut=True))
            check_strings(addr, cap)
        except BaseException:
            ffi.wasmtime_component_val_delete(ctypes.byref(result))
            raise
        return ty.result.convert_from_c(result)  # frees the value as it converts it
    finally:
        for i in range(lowered):
            ffi.wasmtime_component_val_delete(ctypes.byref(params[i]))


def _func_call(
    func: component.Func, store: wasmtime.Store, params: Any, count: int, result: Any, n: int
) -> Any:
    return ffi.wasmtime_component_func_call(
        ctypes.byref(func._func), store._context(), params, count, result, n
    )


# How a call's failures reach the host, the same on both call paths.
ARGUMENT_ERRORS = (TypeError, ValueError, KeyError, AttributeError)


def trapped(plugin: str, name: str, exc: wasmtime.WasmtimeError) -> PluginTrap:
    return PluginTrap(plugin, f"trapped in {name}: {bounded(trap_reason(exc))}")


def unpassable(plugin: str, name: str, exc: Exception) -> PluginError:
    return PluginError(plugin, f"cannot pass arguments to {name}: {exc}")


def guest_error(plugin: str, payload: Any) -> GuestError:
    return GuestError(plugin, bounded(str(payload)))


def wasmtime_error(pointer: int) -> wasmtime.WasmtimeError:
    """A ``wasmtime_error_t *`` from the C API, owned (and freed) by the returned object."""
    return wasmtime.WasmtimeError._from_ptr(
        ctypes.cast(pointer, ctypes.POINTER(ffi.wasmtime_error_t))
    )


class ExportFailures:
    """What an export call's failures become, on the typed paths (Python and C)."""

    def __init__(self, plugin: str, name: str, count: int) -> None:
        self.plugin = plugin
        self.name = name
        self.count = count

    def wrong_count(self, given: int) -> PluginError:
        return PluginError(self.plugin, f"{self.name} takes {self.count} arguments, not {given}")

    def unpassable(self, exc: Exception) -> PluginError:
        return unpassable(self.plugin, self.name, exc)

    def reentered(self) -> PluginError:
        """Host code run while passing the arguments called the same export again."""
        return PluginError(self.plugin, f"{self.name} called again while passing its arguments")

    def trapped(self, pointer: int) -> PluginTrap:
        return trapped(self.plugin, self.name, wasmtime_error(pointer))

    def unreadable(self, exc: Exception) -> PluginTrap:
        """Never expected (the C memory did not hold the type): the instance is not
        trusted any more."""
        log.error("[%s] cannot read the result of %s: %s", self.plugin, self.name, exc)
        return PluginTrap(self.plugin, f"unreadable result from {self.name}: {exc}")

    def guest_error(self, payload: Any) -> GuestError:
        return guest_error(self.plugin, payload)

    def over_cap(self, exc: StringOverCap) -> GuestError:
        return over_cap(self.plugin, self.name, exc)


def over_cap(plugin: str, name: str, exc: StringOverCap) -> GuestError:
    """A returned string over its cap: the call failed, not the instance (wasmtime
    finished the call and its clean-up; the guest's state is intact), so it is the
    guest's error rather than a trap that would throw that state away."""
    label = string_cap(name)[1]
    return GuestError(
        plugin,
        f"{name}: the returned {label} is over {exc.cap} characters "
        f"({exc.size} bytes of UTF-8, refused as lifted)",
    )
