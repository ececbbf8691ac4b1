"""Precompiled components: ``build/<name>.cwasm`` next to ``build/<name>.wasm``.

Compiling a componentize-py component takes seconds (minutes on a Pi);
loading its serialised native code takes milliseconds. An artifact is used
only when its tag matches this engine (wasmtime version, engine settings,
CPU architecture: ``uname -m``) and the sha256 of the ``.wasm`` beside it.
The tag does not name CPU features: wasmtime itself checks the features the
code was compiled for against this CPU when it loads it, and refuses an
artifact that uses one this CPU lacks (``"has_lse" is enabled, but not
available on the host``: Pi 5 code on a Pi 4). Every refusal is logged with
its reason and the ``.wasm`` is compiled instead.

So artifacts travel, ``precompile`` compiles for the architecture's
baseline (``Config.target`` set to this machine's triple, which turns off
wasmtime's detection of this CPU's features, and no feature enabled): code
every CPU of the architecture runs, so an artifact built on a Pi 5 or a
workstation of the same architecture loads on a Pi 4 (or a Pi 3). wasmtime
cannot compile for another architecture here: build aarch64 artifacts on an
aarch64 machine.

The tag also records the ``.wasm``'s identity on disk when it was hashed
(inode, mtime, ctime and size, ``file_identity``): while those are unchanged,
``vouched_sha256`` takes the tag's sha256 instead of reading and hashing the
file again (18 MB for the shared runtime: 29 ms here, several times that on a
Pi, at every start). Any write to the file moves its ctime, which no tool can
set back, so a changed file is always read and hashed.

Trust: a ``.cwasm`` is native code that wasmtime loads without validation.
Only load artifacts produced by ``wasihost build`` on a machine you trust;
the tag guards against staleness, not against tampering.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import platform
import sys
from pathlib import Path

import wasmtime
from wasmtime import component

from wasihost.atomic import write_atomically
from wasihost.errors import BuildError
from wasihost.runtime.engine import Engine

log = logging.getLogger("wasihost.runtime")

# What the tag says of the code: compiled for the architecture's baseline. A tag
# without it is older (code for the CPU that built it); it still loads where wasmtime
# accepts it, so the artifacts on a machine are not all rebuilt at once.
CODE = "baseline"
# wasmtime's name for this machine's architecture, when it differs from uname -m.
TRIPLE_ARCH = {"arm64": "aarch64", "amd64": "x86_64"}


def artifact_path(wasm: Path) -> Path:
    return wasm.with_suffix(".cwasm")


def _tag_path(wasm: Path) -> Path:
    return wasm.with_suffix(".cwasm.tag")


def file_identity(path: Path) -> list[int]:
    """What identifies ``path``'s content without reading it: inode, mtime, ctime, size."""
    stat = path.stat()
    return [stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size]


def write_precompiled(
    engine: Engine,
    comp: component.Component,
    wasm: Path,
    sha256: str,
    identity: list[int] | None = None,
) -> Path:
    """Serialise ``comp`` (compiled from ``wasm``) beside it; ``identity``: the
    file's ``file_identity`` taken before it was read and hashed, if known.

    The old tag goes first and the new one comes last, so at no moment does
    a tag vouch for an artifact it was not written for.
    """
    target = artifact_path(wasm)
    _tag_path(wasm).unlink(missing_ok=True)
    write_atomically(target, comp.serialize())
    _write_tag(engine, wasm, sha256, identity)
    return target


def _write_tag(engine: Engine, wasm: Path, sha256: str, identity: list[int] | None) -> None:
    fields: dict[str, object] = {"engine": engine.tag, "code": CODE, "wasm_sha256": sha256}
    if identity is not None:
        fields["wasm_identity"] = identity
    write_atomically(_tag_path(wasm), (json.dumps(fields) + "\n").encode())


def vouched_sha256(engine: Engine, wasm: Path, identity: list[int]) -> str | None:
    """The sha256 the tag beside ``wasm`` recorded, when the tag is this engine's
    and the file is the very one it hashed (same ``file_identity``); else None."""
    try:
        tag = json.loads(_tag_path(wasm).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(tag, dict) or tag.get("engine") != engine.tag:
        return None
    sha256 = tag.get("wasm_sha256")
    return sha256 if tag.get("wasm_identity") == identity and isinstance(sha256, str) else None


def baseline_target() -> str | None:
    """The triple to compile travelling artifacts for (this architecture, no
    CPU features), or None where wasihost leaves wasmtime its default."""
    if not sys.platform.startswith("linux"):
        return None
    machine = platform.machine().lower()
    arch = TRIPLE_ARCH.get(machine, machine)
    return f"{arch}-unknown-linux-gnu" if arch in {"x86_64", "aarch64"} else None


@functools.cache
def baseline_engine() -> wasmtime.Engine:
    """An engine with the settings ``Engine`` tags, compiling for the baseline."""
    return wasmtime.Engine(Engine.config(target=baseline_target()))


def tag_mismatch(engine: Engine, wasm: Path, sha256: str) -> str | None:
    """Why the tag beside ``wasm`` does not vouch for this engine and these
    bytes, or None when it does."""
    try:
        tag = json.loads(_tag_path(wasm).read_text())
    except OSError:
        return "no tag beside it"
    except ValueError:
        return "its tag is not JSON"
    if not isinstance(tag, dict):
        return "its tag is not an object"
    if tag.get("engine") != engine.tag:
        return f"built by {tag.get('engine')}, this host is {engine.tag}"
    if tag.get("wasm_sha256") != sha256:
        return f"built from another {wasm.name} (it changed since)"
    return None


def has_matching_artifact(engine: Engine, wasm: Path, sha256: str) -> bool:
    """Whether the tag beside ``wasm`` vouches for this engine and these bytes."""
    return tag_mismatch(engine, wasm, sha256) is None


def load_precompiled(engine: Engine, wasm: Path, sha256: str) -> component.Component | None:
    """The precompiled component for ``wasm`` if there is a matching one, else
    None; an artifact that is there but refused is logged with the reason."""
    artifact = artifact_path(wasm)
    if not artifact.exists():
        return None
    reason = tag_mismatch(engine, wasm, sha256)
    if reason is None:
        return deserialize(engine, wasm)
    _refused(artifact, wasm, reason)
    return None


def deserialize(engine: Engine, wasm: Path) -> component.Component | None:
    """The artifact beside ``wasm``, whose tag the caller has matched; None (and
    logged) when wasmtime refuses it."""
    artifact = artifact_path(wasm)
    if not artifact.exists():
        return None  # a tag without its artifact: nothing to load, nothing to say
    try:
        return component.Component.deserialize_file(engine.wasmtime, str(artifact))
    except (OSError, wasmtime.WasmtimeError) as exc:
        _refused(artifact, wasm, f"wasmtime refuses it: {str(exc).strip().splitlines()[0]}")
        return None


def _refused(artifact: Path, wasm: Path, reason: str) -> None:
    log.warning(
        "%s not used (%s): compiling %s instead (minutes on a Pi); `wasihost build` on this "
        "version writes artifacts for the %s baseline, which every such CPU loads",
        artifact,
        reason,
        wasm.name,
        platform.machine(),
    )


def precompile(engine: Engine, wasm: Path, data: bytes | None = None) -> bool:
    """Write ``wasm``'s precompiled artifact unless a matching one exists;
    returns whether it compiled. ``data``, when given, is ``wasm``'s content
    already in hand (just written by this process), so the file is not read again."""
    identity = file_identity(wasm)  # before reading: a later write moves its ctime
    if data is None:
        data = wasm.read_bytes()
    elif identity[3] != len(data):
        identity = []  # not the bytes in hand: nothing to vouch for
    sha256 = hashlib.sha256(data).hexdigest()
    if has_matching_artifact(engine, wasm, sha256):
        if identity and vouched_sha256(engine, wasm, identity) is None:
            # An older tag, or the file copied since: record what it is now, so
            # loading need not hash it.
            _write_tag(engine, wasm, sha256, identity)
        return False
    try:
        comp = component.Component(baseline_engine(), data)
    except wasmtime.WasmtimeError as exc:
        raise BuildError(f"{wasm}: built, but wasmtime cannot compile it: {exc}") from None
    write_precompiled(engine, comp, wasm, sha256, identity or None)
    return True
