"""The rules a node applies to a bundle, in order, each refusal naming why.

1. The archive (``archive.unpack``): a plain tar of regular files with safe
   names, within the caps. Otherwise "malformed".
2. Signed: a ``manifest.sig`` exists ("unsigned" otherwise).
3. The manifest's fields are well formed (``manifest.parse_manifest``).
4. Trusted: the manifest names a signer whose key is in ``[trust] keys``,
   and the signature is that key's over the manifest's exact bytes. An
   edited manifest, a flipped bit or another key claiming a trusted key's id
   all fail here.
5. The content is what was signed: the same set of files, each with the
   signed size and SHA-256, and the content hash recomputed by the function
   the host loads with ("tampered" otherwise). A source bundle is unpacked to
   a folder (temporary, or on a node the one it is installed from) and read
   as the host reads a plugin folder: its
   ``plugin.toml`` must be for the signed world, and it may hold no file the
   host would not read.
6. This node's config: the world it configures for the plugin, its pin, and
   its grants. A bundle that needs a grant the node does not give the plugin
   is held ("needs-grants", naming each missing grant): a bundle can never
   grant itself anything.

Only a "valid" verdict may be installed.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from wasihost.bundle import archive
from wasihost.bundle.create import WASM_MAGIC, content_of
from wasihost.bundle.keys import SIGNATURE_BYTES, PublicKey, parse_public_key
from wasihost.bundle.manifest import BundleManifest, parse_manifest, signed_message
from wasihost.config import HostConfig
from wasihost.errors import BundleError
from wasihost.grants import GRANTS, Grants, grants_for
from wasihost.runtime.contract import load_contract
from wasihost.runtime.manifest import ManifestError, read_manifest
from wasihost.runtime.source import SourceError, own_files, read_sources
from wasihost.specs import grants_of

Status = Literal["valid", "needs-grants", "refused"]


@dataclass(frozen=True)
class Verdict:
    status: Status
    reason: str
    manifest: BundleManifest | None = None  # None when it could not be read
    missing: tuple[str, ...] = ()  # the grants a "needs-grants" bundle lacks, e.g. "I2C 0x45"
    # The plugin's files as checked (path below plugin/ -> bytes): what a node
    # installs, so it never unpacks the bundle a second time.
    files: Mapping[str, bytes] = field(default_factory=dict, repr=False, compare=False)


def verify_bundle(bundle: Path | bytes, config: HostConfig, *, into: Path | None = None) -> Verdict:
    """Every rule above for ``bundle`` (a file or its bytes) on the node ``config``
    describes. Never raises for a bad bundle: the verdict says why.

    ``into`` (a folder that must not exist): where a source bundle is unpacked
    for its check, instead of a temporary folder, and left when the verdict is
    ``valid``: a node installs the very files that were checked, unpacked once.
    Removed on any other verdict. A component's one file is only in ``files``."""
    manifest: BundleManifest | None = None
    try:
        parts = archive.read_archive(bundle) if isinstance(bundle, Path) else archive.unpack(bundle)
        if parts.signature is None:
            raise BundleError(f"unsigned: no {archive.SIGNATURE} in the bundle")
        manifest = parse_manifest(parts.manifest)
        trusted = {key.key_id: key for key in map(parse_public_key, config.trust.keys)}
        if not trusted:
            raise BundleError(
                f"this node trusts no keys ([trust] keys in {config.path} is empty): "
                "every bundle is refused"
            )
        where = f"[trust] keys in {config.path}"
        check_signature(parts.manifest, parts.signature, manifest.signer, trusted, where)
        check_content(manifest, parts.files, into)
    except BundleError as exc:
        if into is not None:
            shutil.rmtree(into, ignore_errors=True)
        return Verdict("refused", str(exc), manifest)
    verdict = admit(manifest, config)
    if verdict.status != "valid" and into is not None:
        shutil.rmtree(into, ignore_errors=True)
    return replace(verdict, files=parts.files)


def check_signature(
    text: bytes, signature: bytes, signer: str, trusted: Mapping[str, PublicKey], where: str
) -> None:
    """The signature is the key ``signer`` names over ``text``, and that key is
    one of ``trusted`` (key id -> key; ``where`` says where they come from);
    ``BundleError`` otherwise. One check for a node and for ``wasihost deploy``."""
    key = trusted.get(signer)
    if key is None:
        ids = ", ".join(sorted(trusted))
        raise BundleError(f"signed by key {signer}, which is not trusted here ({where}: {ids})")
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != SIGNATURE_BYTES:
        raise BundleError(
            f"{archive.SIGNATURE}: not a signature (expected base64 of {SIGNATURE_BYTES} bytes)"
        )
    if not key.verifies(signed_message(text), raw):
        raise BundleError(
            f"the signature does not match: {archive.MANIFEST} was changed after key {signer} "
            "signed it, or another key signed it"
        )


def _short(digest: str) -> str:
    return digest.removeprefix("sha256:")[:16]


def check_content(
    manifest: BundleManifest, files: Mapping[str, bytes], into: Path | None = None
) -> None:
    """The files are the signed ones, and read as the host reads them (a
    source bundle unpacked into ``into``, or a temporary folder); ``BundleError``."""
    listed = {entry.path: entry for entry in manifest.files}
    for path in sorted(set(files) - set(listed)):
        raise BundleError(f"tampered: plugin/{path} is not in the signed manifest")
    for path in sorted(set(listed) - set(files)):
        raise BundleError(f"tampered: plugin/{path} is missing (the signed manifest lists it)")
    for path, entry in sorted(listed.items()):
        data = files[path]
        actual = hashlib.sha256(data).hexdigest()
        if actual != entry.sha256 or len(data) != entry.size:
            raise BundleError(
                f"tampered: plugin/{path} has sha256 {actual[:16]}… ({len(data)} bytes), "
                f"the signed manifest says {entry.sha256[:16]}… ({entry.size} bytes)"
            )
    content = content_of(manifest.kind, sorted(files.items()))
    if content != manifest.content:
        raise BundleError(
            f"tampered: the content hash is {content}, the signed manifest says {manifest.content}"
        )
    if manifest.kind == "component":
        if set(files) != {archive.WASM} or not files[archive.WASM].startswith(WASM_MAGIC):
            raise BundleError(
                f"a component bundle holds one WebAssembly file, plugin/{archive.WASM}"
            )
        return
    if into is not None:
        extract(files, into)
        _check_source_folder(manifest, into, set(files))
        return
    with tempfile.TemporaryDirectory(prefix="wasihost-bundle-") as tmp:
        folder = Path(tmp) / manifest.name
        extract(files, folder)
        _check_source_folder(manifest, folder, set(files))


def extract(files: Mapping[str, bytes], folder: Path) -> None:
    """Write a checked bundle's files below ``folder`` (which must not exist):
    regular files only, mode 0644; the names were checked by ``archive``."""
    folder.mkdir(mode=0o755)
    for path, data in files.items():
        target = folder / path
        if not target.resolve().is_relative_to(folder.resolve()):
            raise BundleError(f"plugin/{path}: outside the plugin's folder")
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_bytes(data)
        target.chmod(0o644)


def _check_source_folder(manifest: BundleManifest, folder: Path, names: set[str]) -> None:
    """A source bundle's files as the host would load them from a folder."""
    own = {path.relative_to(folder).as_posix() for path in own_files(folder)}
    for path in sorted(names - own):
        raise BundleError(
            f"plugin/{path}: not a file the host reads from a plugin folder (tests, hidden "
            "files and caches are never loaded, so they are never bundled)"
        )
    try:
        plugin_toml = read_manifest(folder)
        sources = read_sources(folder)
    except (ManifestError, SourceError) as exc:
        raise BundleError(f"the plugin cannot load: {exc}".replace(str(folder), "plugin")) from None
    if plugin_toml.kind != "source":
        raise BundleError('plugin/plugin.toml says kind = "component" in a source bundle')
    if plugin_toml.world != manifest.world:
        raise BundleError(
            f"plugin/plugin.toml is for world {plugin_toml.world}, "
            f"the signed manifest says {manifest.world}"
        )
    if sources.content != manifest.content:  # the host's own read disagrees
        raise BundleError(
            f"tampered: the host reads content {sources.content}, "
            f"the signed manifest says {manifest.content}"
        )


def missing_grants(needed: Grants, granted: Grants) -> tuple[str, ...]:
    """Each grant in ``needed`` that ``granted`` lacks, e.g. "LEDs 4", "buzzer"."""
    missing = []
    for grant in GRANTS:
        want, have = grant.held(needed), grant.held(granted)
        if isinstance(want, bool):
            if want and not have:
                missing.append(grant.label)
        else:
            extra = sorted(want - (have if isinstance(have, frozenset) else frozenset()))
            if extra:
                missing.append(f"{grant.label} {', '.join(grant.show(v) for v in extra)}")
    return tuple(missing)


def admit(manifest: BundleManifest, config: HostConfig) -> Verdict:
    """What this node's config says about a verified bundle: its world, its pin,
    and whether it needs more than the node grants the plugin."""
    contract = load_contract()
    if manifest.world not in contract.worlds:
        known = ", ".join(sorted(contract.worlds))
        return Verdict(
            "refused", f"world {manifest.world} is not in this node's contract ({known})", manifest
        )
    imports = contract.worlds[manifest.world].imports
    name = manifest.name
    plugin = config.plugins.get(name)
    if plugin is None:
        missing = missing_grants(manifest.grants, grants_for({}, imports))
        return Verdict(
            "needs-grants",
            f"plugins.{name} is not configured in {config.path}: the node would not run it "
            "(held, not installed)",
            manifest,
            missing,
        )
    key = f"plugins.{config.plugin_keys[name]}"
    if plugin.world is not None and plugin.world != manifest.world:
        return Verdict(
            "refused",
            f"the bundle is for world {manifest.world}; {key}.world in {config.path} "
            f"is {plugin.world}",
            manifest,
        )
    if plugin.pin is not None and plugin.pin != manifest.content:
        return Verdict(
            "refused",
            f"{key}.pin in {config.path} is {plugin.pin}; this bundle's content is "
            f"{manifest.content}",
            manifest,
        )
    missing = missing_grants(manifest.grants, grants_of(config, name, imports))
    if missing:
        return Verdict(
            "needs-grants",
            f"needs grants {config.path} does not give it: {'; '.join(missing)} "
            f"({key}.grants); held, not installed",
            manifest,
            missing,
        )
    return Verdict(
        "valid",
        f"{name} {manifest.version} ({manifest.kind}, {manifest.world}, {manifest.content}) "
        f"signed by trusted key {manifest.signer}",
        manifest,
    )
