"""A bundle's bytes: an uncompressed tar, packed deterministically, read defensively.

Why a tar, and why uncompressed:

- The same input gives the same bytes: entries in a fixed order, every
  header field fixed (mtime 0, owner 0, mode 0644, no user names), and no
  compressor whose output could change with its version. A bundle can be
  rebuilt and compared byte for byte.
- Nothing is ever decompressed, so there is no compression bomb to defend
  against: the file's size bounds everything in it, and the caps below bound
  the file. A compressed file (gzip, bzip2, xz, zstd, zip) is refused by its
  first bytes without being opened.
- Standard tools read it (``tar tvf app.bundle``), and Python's ``tarfile``
  reads it without extracting anything: entries are checked from their
  headers (name, type, size) before their data is read.

The entries, in this order: ``manifest.json``, ``manifest.sig`` (base64 of the
64-byte Ed25519 signature, a newline), then ``plugin/<path>`` for each of the
plugin's files, sorted by path (a component is ``plugin/plugin.wasm``).

Every entry must be a regular file whose name is a plain relative path:
no symlink, hard link, directory, device or FIFO; no absolute path, ``..``,
``.``, empty part, backslash or control character; no name twice, even
differing only in case (the file could land on a case-insensitive disk).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from wasihost.errors import BundleError
from wasihost.runtime.source import MAX_BYTES, MAX_FILES

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
PLUGIN = "plugin/"
WASM = "plugin.wasm"  # a component bundle's one file, under plugin/

# A componentize-py component is about 20 MB (the shared runtime 20.6 MB); a
# source plugin's files are at most runtime.source's 4 MiB, each and in all.
MAX_WASM_BYTES = 64 * 1024 * 1024
MAX_FILE_BYTES = MAX_BYTES
MAX_MANIFEST_BYTES = 256 * 1024  # a manifest lists at most MAX_FILES files
MAX_SIGNATURE_BYTES = 1024
MAX_ENTRIES = MAX_FILES + 2
MAX_SOURCE_BYTES = MAX_BYTES  # a source plugin's files in all (the host loads no more)
MAX_TOTAL_BYTES = MAX_WASM_BYTES + MAX_MANIFEST_BYTES + MAX_SIGNATURE_BYTES
# Headers and padding: at most 3 KiB an entry (a pax header, its data, the entry's).
MAX_BUNDLE_BYTES = MAX_TOTAL_BYTES + MAX_ENTRIES * 3 * 1024 + 16 * 1024

# First bytes of what a bundle is not, and would have to be inflated to be read.
COMPRESSED = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
ZIP = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class Archive:
    """What a bundle file holds, read but not yet verified."""

    manifest: bytes
    signature: bytes | None  # None: unsigned
    files: dict[str, bytes]  # path below plugin/ -> bytes


def _fixed(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def pack(manifest: bytes, signature: bytes | None, files: Mapping[str, bytes]) -> bytes:
    """The bundle's bytes; the same arguments always give the same bytes."""
    out = io.BytesIO()
    entries = [(MANIFEST, manifest)]
    entries += [(SIGNATURE, signature)] if signature is not None else []
    entries += [(PLUGIN + path, files[path]) for path in sorted(files, key=str.encode)]
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            tar.addfile(_fixed(name, len(data)), io.BytesIO(data))
    return out.getvalue()


def _name_problem(name: str) -> str | None:
    """Why ``name`` cannot be an entry's name, or None."""
    if not name:
        return "no name"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a control character in its name"
    if "\\" in name:
        return "a backslash in its name"
    if name.startswith("/"):
        return "an absolute path"
    parts = name.split("/")
    if ".." in parts:
        return "'..' in its path"
    if "." in parts:
        return "'.' in its path"
    if "" in parts:
        return "an empty part in its path"
    if name not in (MANIFEST, SIGNATURE) and not name.startswith(PLUGIN):
        return f"outside {PLUGIN} (a bundle holds {MANIFEST}, {SIGNATURE} and {PLUGIN}...)"
    return None


def _type_problem(member: tarfile.TarInfo) -> str | None:
    if member.issym():
        return f"a symlink (to {member.linkname!r}); a bundle holds only regular files"
    if member.islnk():
        return f"a hard link (to {member.linkname!r}); a bundle holds only regular files"
    if member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or member.issparse():
        kind = "a directory" if member.isdir() else "a device or FIFO"
        kind = "a sparse file" if member.issparse() else kind
        return f"{kind}, not a regular file"
    return None


def _cap(name: str) -> int:
    if name == MANIFEST:
        return MAX_MANIFEST_BYTES
    if name == SIGNATURE:
        return MAX_SIGNATURE_BYTES
    return MAX_WASM_BYTES if name == PLUGIN + WASM else MAX_FILE_BYTES


def _refused(why: str) -> BundleError:
    return BundleError(f"malformed bundle: {why}")


def _not_a_tar(data: bytes) -> str | None:
    """Why ``data`` is plainly not an uncompressed tar, from its first bytes."""
    if not data:
        return "an empty file"
    for magic, name in COMPRESSED:
        if data.startswith(magic):
            return f"{name}-compressed; a bundle is an uncompressed tar and is never decompressed"
    if data.startswith(ZIP):
        return "a zip archive; a bundle is an uncompressed tar"
    if len(data) > MAX_BUNDLE_BYTES:
        return f"larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB"
    return None


def unpack(data: bytes) -> Archive:
    """Read a bundle's entries, checking each from its header before reading
    its data; raises ``BundleError`` ("malformed bundle: ...") naming the entry."""
    problem = _not_a_tar(data)
    if problem is not None:
        raise _refused(problem)
    entries: dict[str, bytes] = {}
    folded: dict[str, str] = {}
    total = source_total = end = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            while (member := tar.next()) is not None:
                name = member.name
                if len(entries) >= MAX_ENTRIES:
                    raise _refused(f"more than {MAX_ENTRIES} entries")
                why = _name_problem(name) or _type_problem(member)
                if why is None and name.casefold() in folded:
                    same = folded[name.casefold()]
                    why = "twice" if same == name else f"twice (as {same!r}, differing in case)"
                if why is None and member.size > _cap(name):
                    why = f"larger than {_cap(name)} bytes ({member.size})"
                source = name.startswith(PLUGIN) and name != PLUGIN + WASM
                if why is None and source and source_total + member.size > MAX_SOURCE_BYTES:
                    why = f"more than {MAX_SOURCE_BYTES} bytes of plugin files in all"
                if why is None and total + member.size > MAX_TOTAL_BYTES:
                    why = f"more than {MAX_TOTAL_BYTES} bytes of entries in all"
                if why is not None:
                    raise _refused(f"entry {name!r}: {why}")
                reader = tar.extractfile(member)
                content = reader.read(member.size + 1) if reader is not None else b""
                if len(content) != member.size:
                    raise _refused(
                        f"entry {name!r}: truncated ({len(content)} of {member.size} bytes)"
                    )
                entries[name] = content
                folded[name.casefold()] = name
                total += member.size
                source_total += member.size if source else 0
            end = tar.offset  # where the next header would start
    except tarfile.TarError as exc:
        raise _refused(f"not a tar archive, or a truncated one ({exc})") from None
    if data[end : end + 2 * tarfile.BLOCKSIZE] != bytes(2 * tarfile.BLOCKSIZE):
        # tarfile takes a file that stops between two entries for a complete one.
        raise _refused("truncated: no end-of-archive marker after the last entry")
    if MANIFEST not in entries:
        raise _refused(f"no {MANIFEST} (not a wasihost bundle)")
    files = {
        name.removeprefix(PLUGIN): body for name, body in entries.items() if name.startswith(PLUGIN)
    }
    return Archive(entries[MANIFEST], entries.get(SIGNATURE), files)


def read_archive(path: Path) -> Archive:
    """``unpack`` of a bundle file; one over the cap is refused before it is read."""
    return read_file(path)[1]


def read_file(path: Path) -> tuple[bytes, Archive]:
    """A bundle file's bytes, read once, and their ``unpack``: for a caller
    that sends the very bytes it checked. Over the cap: refused before reading."""
    try:
        size = path.stat().st_size
        if size > MAX_BUNDLE_BYTES:
            raise BundleError(
                f"{path}: larger than {MAX_BUNDLE_BYTES // (1024 * 1024)} MiB ({size} bytes); "
                "not a bundle (refused before reading it)"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{path}: no such bundle file") from None
    except OSError as exc:
        raise BundleError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data, unpack(data)
    except BundleError as exc:
        raise BundleError(f"{path}: {exc}") from None
