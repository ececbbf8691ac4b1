"""Making a bundle: a plugin folder or component, its manifest, its signature.

A source plugin contributes exactly the files the host reads from its
folder (``runtime.source.read_own_files``: modules but the tests, ``assets/``,
``plugin.toml``), read with the host's own refusals (links, sizes), so what
is signed is what a node will run. A component contributes its ``.wasm``.

The grants recorded are what the plugin needs, spelled like
``[plugins.<name>.grants]`` and completed with each kind's default for its
world (``grants.grants_for``), so a node compares like with like.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path

from wasihost.bundle import archive
from wasihost.bundle.keys import SigningKey
from wasihost.bundle.manifest import (
    TIME_FORMAT,
    BundleManifest,
    FileEntry,
    Kind,
    parse_manifest,
    signed_message,
)
from wasihost.content import component_hash, folder_hash
from wasihost.errors import BundleError
from wasihost.grants import grants_for
from wasihost.runtime.contract import load_contract
from wasihost.runtime.manifest import ManifestError, read_manifest
from wasihost.runtime.source import ENTRY, SourceError, read_own_files

WASM_MAGIC = b"\0asm"


def plugin_files(plugin: Path) -> tuple[Kind, list[tuple[str, bytes]]]:
    """A plugin's kind and its files as a bundle carries them: a folder's own
    files, or a component as ``plugin.wasm``."""
    if plugin.is_dir():
        if not (plugin / f"{ENTRY}.py").is_file():
            raise BundleError(f"{plugin}: no {ENTRY}.py (a source plugin's entry module)")
        try:
            return "source", read_own_files(plugin)
        except (SourceError, OSError) as exc:
            raise BundleError(str(exc)) from None
    try:
        size = plugin.stat().st_size
        if size > archive.MAX_WASM_BYTES:
            raise BundleError(f"{plugin}: larger than {archive.MAX_WASM_BYTES} bytes")
        data = plugin.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{plugin}: no such plugin folder or component") from None
    except OSError as exc:
        raise BundleError(f"{plugin}: cannot read: {exc.strerror}") from None
    if not data.startswith(WASM_MAGIC):
        raise BundleError(f"{plugin}: not a WebAssembly file (a plugin folder or a .wasm)")
    return "component", [(archive.WASM, data)]


def content_of(kind: Kind, files: Iterable[tuple[str, bytes]]) -> str:
    """The content hash of a bundle's files: the host's, for either kind."""
    files = list(files)
    if kind == "component":
        return component_hash(files[0][1])
    return folder_hash(files)


def hash_plugin(plugin: Path) -> str:
    """The content hash of a plugin folder or component, as a pin names it."""
    kind, files = plugin_files(plugin)
    return content_of(kind, files)


def _world(plugin: Path, kind: Kind, name: str, world: str | None) -> str:
    if kind == "component":
        return world or f"{name}-plugin"
    try:
        manifest = read_manifest(plugin)
    except ManifestError as exc:
        raise BundleError(str(exc)) from None
    if manifest.kind != "source":
        raise BundleError(
            f'{plugin}/plugin.toml says kind = "component": build it and bundle its .wasm'
        )
    if world is not None and world != manifest.world:
        raise BundleError(f"{plugin}/plugin.toml is for world {manifest.world}, not {world}")
    return manifest.world


def created_now() -> datetime:
    """``SOURCE_DATE_EPOCH`` when set (reproducible builds' convention), else now."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch is not None:
        try:
            return datetime.fromtimestamp(int(epoch), UTC)
        except (ValueError, OverflowError, OSError):
            raise BundleError(f"SOURCE_DATE_EPOCH={epoch!r}: expected seconds since 1970") from None
    return datetime.now(UTC)


def create_bundle(
    plugin: Path,
    key: SigningKey,
    *,
    version: str,
    grants: Mapping[str, Iterable[int] | bool] | None = None,
    created_at: datetime | None = None,
    name: str | None = None,
    world: str | None = None,
) -> bytes:
    """The signed bundle of ``plugin`` (a source plugin folder or a ``.wasm``).

    ``grants`` is what it needs, as ``[plugins.<name>.grants]`` writes it;
    ``created_at`` defaults to ``created_now()``. The same arguments give the
    same bytes (Ed25519 signatures are deterministic).
    """
    kind, files = plugin_files(plugin)
    name = name or (plugin.name if kind == "source" else plugin.stem)
    world = _world(plugin, kind, name, world)
    contract = load_contract()
    if world not in contract.worlds:
        known = ", ".join(sorted(contract.worlds))
        raise BundleError(f"{plugin}: unknown world {world!r} (expected one of: {known})")
    when = (created_at or created_now()).astimezone(UTC)
    manifest = BundleManifest(
        name=name,
        version=version,
        kind=kind,
        world=world,
        grants=grants_for(grants or {}, contract.worlds[world].imports),
        files=tuple(
            FileEntry(path, len(data), hashlib.sha256(data).hexdigest())
            for path, data in sorted(files, key=lambda item: item[0].encode())
        ),
        content=content_of(kind, files),
        created_at=when.strftime(TIME_FORMAT),
        signer=key.public.key_id,
    )
    text = manifest.to_bytes()
    parse_manifest(text)  # what a node would refuse is refused here, naming the field
    signature = base64.b64encode(key.sign(signed_message(text))) + b"\n"
    return archive.pack(text, signature, dict(files))
