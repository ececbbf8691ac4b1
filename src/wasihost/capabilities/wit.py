"""The WIT types of capability parameters, and the check that holds every call to them.

A capability function states its parameters' WIT types in its signature,
``def set_led(index: U32, r: U8, g: U8, b: U8)``, which reads as the WIT line
does; ``PROVIDERS`` wraps each function in ``checked``, built once per bind
from that signature, so a capability module holds only its policy (grants,
sizes, rates). The contract stays the source of truth: a test holds every
signature to ``wit/plugin.wit`` (tests/capabilities/test_grants.py), since this layer may
not import the contract parser (it lives in ``runtime/``, above it).

Why check at all: the load check makes every component declare the
contract's types, so this only fires if a value gets past it (a looser call
path, a forgery the check misses); then the guest gets the WIT error and
nothing out of range reaches the board, the LED buffer or the state the web
serves (one NaN there and a browser cannot parse the page's data).
"""

from __future__ import annotations

import math
import typing
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Annotated, Any

from wasihost.capabilities.context import CapabilityContext


@dataclass(frozen=True)
class Wit:
    """A parameter's WIT type, as the contract writes it."""

    name: str


U8 = Annotated[int, Wit("u8")]
U16 = Annotated[int, Wit("u16")]
U32 = Annotated[int, Wit("u32")]
U64 = Annotated[int, Wit("u64")]
S8 = Annotated[int, Wit("s8")]
S16 = Annotated[int, Wit("s16")]
S32 = Annotated[int, Wit("s32")]
S64 = Annotated[int, Wit("s64")]
F32 = Annotated[float, Wit("f32")]
F64 = Annotated[float, Wit("f64")]
Bool = Annotated[bool, Wit("bool")]
String = Annotated[str, Wit("string")]
Bytes = Annotated[bytes, Wit("list<u8>")]

_INTEGERS = {
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
    "s8": (-(2**7), 2**7 - 1),
    "s16": (-(2**15), 2**15 - 1),
    "s32": (-(2**31), 2**31 - 1),
    "s64": (-(2**63), 2**63 - 1),
}


def fits(value: object, wit_type: str) -> bool:
    """Whether ``value`` is one a WIT ``wit_type`` can carry (floats: finite ones)."""
    if wit_type == "bool":
        return isinstance(value, bool)
    if wit_type in ("f32", "f64"):
        return isinstance(value, float) and math.isfinite(value)
    if wit_type == "string":
        return isinstance(value, str)
    if wit_type == "list<u8>":
        return isinstance(value, bytes | bytearray | memoryview)
    low, high = _INTEGERS[wit_type]
    return type(value) is int and low <= value <= high


def signature(function: Callable[..., Any]) -> tuple[tuple[str, str | None], ...]:
    """Each parameter of a capability function as the WIT names it, with its WIT
    type (None where the annotation names none)."""
    # Keyed by the code: every bind makes new closures of the same functions.
    code = function.__code__
    found = _SIGNATURES.get(code)
    if found is None:
        hints = typing.get_type_hints(function, include_extras=True)
        params = code.co_varnames[: code.co_argcount]
        found = tuple((p.replace("_", "-"), _wit_of(hints.get(p))) for p in params)
        _SIGNATURES[code] = found
    return found


_SIGNATURES: dict[CodeType, tuple[tuple[str, str | None], ...]] = {}


def _wit_of(hint: object) -> str | None:
    for meta in getattr(hint, "__metadata__", ()):
        if isinstance(meta, Wit):
            return meta.name
    return None


def _shown(value: object) -> str:
    cut = value[:40] if isinstance(value, str | bytes | list) else value
    shown = repr(cut)
    return shown if len(shown) <= 40 else shown[:39] + "…"


def checked(ctx: CapabilityContext, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (the capability ``name``), refusing first any argument its WIT
    type cannot carry: counted and logged once as ``wit-type``, like every refusal."""
    checks = [
        (index, param, wit)
        for index, (param, wit) in enumerate(signature(function))
        if wit is not None
    ]
    if not checks:
        return function

    def call(*args: Any) -> Any:
        for index, param, wit in checks:
            if not fits(args[index], wit):
                shown = _shown(args[index])
                raise ctx.refuse("wit-type", f"{name}: {param} = {shown} is not a {wit}")
        return function(*args)

    return call
