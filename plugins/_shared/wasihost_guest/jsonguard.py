"""Untrusted JSON, parsed without trapping the guest, and JSON values checked before use.

``json.loads`` recurses once per level of nesting, and in the guest deep
nesting exhausts the C stack somewhere between 1,000 and 2,000 levels: a trap
that kills the instance, not a RecursionError that could be caught. So the
nesting (and, where asked, the size) is measured first, on the text, and
refused with ``Refused`` before ``json.loads`` ever sees it.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")


class Refused(ValueError):
    """JSON refused by a guard; the message reads after "the <document> is"."""


def depth(text: str) -> int:
    """The deepest array/object nesting of JSON text, without parsing it.

    Brackets inside string literals are dropped first; what remains is a short
    run of brackets, so the Python loop stays cheap even for a large document.
    Malformed text only needs a plausible answer: ``json.loads`` rejects it next.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    level = deepest = 0
    for char in brackets:
        level += 1 if char in "[{" else -1
        deepest = max(deepest, level)
    return deepest


def loads(data: str | bytes, *, max_depth: int, max_bytes: int | None = None) -> Any:
    """``json.loads`` behind the guards.

    Raises ``Refused`` for a document over ``max_bytes`` (UTF-8) or nested
    deeper than ``max_depth``, else whatever ``json.loads`` raises for bad
    JSON (``JSONDecodeError``, ``UnicodeDecodeError``: ``ValueError``s too).
    """
    if max_bytes is not None:
        size = len(data) if isinstance(data, bytes) else len(data.encode("utf-8"))
        if size > max_bytes:
            raise Refused(f"{size} bytes, more than {max_bytes}")
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    nesting = depth(text)
    if nesting > max_depth:
        raise Refused(f"nested {nesting} levels deep, more than {max_depth}")
    return json.loads(text)


def load_object(
    data: str | bytes, *, max_depth: int, max_bytes: int | None = None
) -> dict[str, Any]:
    """``loads`` for a document that must be a JSON object (``Refused`` otherwise)."""
    document = loads(data, max_depth=max_depth, max_bytes=max_bytes)
    if not isinstance(document, dict):
        raise Refused(f"a JSON {type(document).__name__}, expected an object")
    return document


def number(value: object) -> float | None:
    """``value`` if it is a usable JSON number, else None.

    A bool is not a number here (Python's ``True`` is an ``int``), nor is a NaN
    or an infinity. An ``int`` comes back as it is, so ``2`` still prints as ``2``.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def integer(value: object) -> int | None:
    """``value`` if it is a JSON integer (not a bool, not ``3.0``), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None
