"""Precompiled components: ``build/<name>.cwasm`` next to ``build/<name>.wasm``.

Compiling a componentize-py component takes seconds; loading its serialised
native code takes milliseconds. An artifact is used only when its tag
matches this engine (wasmtime version, engine settings, CPU) and the sha256
of the ``.wasm`` beside it, so a changed ``.wasm`` or an upgraded wasmtime
silently falls back to compiling.

Trust: a ``.cwasm`` is native code that wasmtime loads without validation.
Only load artifacts produced by ``wasihost build`` on a machine you trust;
the tag guards against staleness, not against tampering.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import wasmtime
from wasmtime import component

from wasihost.atomic import write_atomically
from wasihost.errors import BuildError
from wasihost.runtime.engine import Engine


def artifact_path(wasm: Path) -> Path:
    return wasm.with_suffix(".cwasm")


def _tag_path(wasm: Path) -> Path:
    return wasm.with_suffix(".cwasm.tag")


def write_precompiled(engine: Engine, comp: component.Component, wasm: Path, sha256: str) -> Path:
    """Serialise ``comp`` (compiled from ``wasm``) beside it.

    The old tag goes first and the new one comes last, so at no moment does
    a tag vouch for an artifact it was not written for.
    """
    target = artifact_path(wasm)
    _tag_path(wasm).unlink(missing_ok=True)
    write_atomically(target, comp.serialize())
    tag = json.dumps({"engine": engine.tag, "wasm_sha256": sha256}) + "\n"
    write_atomically(_tag_path(wasm), tag.encode())
    return target


def has_matching_artifact(engine: Engine, wasm: Path, sha256: str) -> bool:
    """Whether the tag beside ``wasm`` vouches for this engine and these bytes."""
    try:
        tag = json.loads(_tag_path(wasm).read_text())
    except (OSError, ValueError):
        return False
    return bool(tag == {"engine": engine.tag, "wasm_sha256": sha256})


def load_precompiled(engine: Engine, wasm: Path, sha256: str) -> component.Component | None:
    """The precompiled component for ``wasm`` if there is a matching one, else None."""
    if not has_matching_artifact(engine, wasm, sha256):
        return None
    try:
        return component.Component.deserialize_file(engine.wasmtime, str(artifact_path(wasm)))
    except (OSError, wasmtime.WasmtimeError):
        return None


def precompile(engine: Engine, wasm: Path, data: bytes | None = None) -> bool:
    """Write ``wasm``'s precompiled artifact unless a matching one exists;
    returns whether it compiled. ``data``, when given, is ``wasm``'s content
    already in hand, so the file is not read again."""
    if data is None:
        data = wasm.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    if has_matching_artifact(engine, wasm, sha256):
        return False
    try:
        comp = component.Component(engine.wasmtime, data)
    except wasmtime.WasmtimeError as exc:
        raise BuildError(f"{wasm}: built, but wasmtime cannot compile it: {exc}") from None
    write_precompiled(engine, comp, wasm, sha256)
    return True
