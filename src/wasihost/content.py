"""A plugin's content hash, defined once: what a bundle signs and a pin names.

The same function answers for a bundle being made (``wasihost bundle
create``), a bundle being verified, a plugin being loaded or hot-reloaded
under ``[plugins.<name>] pin``, and ``wasihost bundle hash``, so a hash
printed by one is the hash checked by the others.

- A component (``.wasm``): the SHA-256 of its bytes, what ``sha256sum``
  prints and what the host logs as a component's hash.
- A source plugin (a folder): the SHA-256 of the listing ``sha256sum``
  writes for its files, ``<hex sha256>  <path>\\n`` per file, sorted by path
  (byte order, POSIX ``/``). The files are the plugin's own as the host reads
  them (``runtime.source.own_files``: its modules but the tests, ``assets/``,
  ``plugin.toml``). So in a plugin folder,
  ``find . -type f ... | LC_ALL=C sort | xargs sha256sum | sha256sum`` over
  those files gives the same digest.

Both are written ``sha256:<64 lower-case hex digits>``. It sits outside the
layers, like ``grants.py``: ``runtime/source.py`` hashes what it loads with
it and the bundle package hashes what it packs.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

PREFIX = "sha256:"
PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


def _listing_line(path: str, data: bytes) -> bytes:
    if not path or any(ord(c) < 0x20 or c == "\\" for c in path):
        # sha256sum escapes such names; a plugin's files never have them (and a
        # bundle refuses them), so refusing keeps the listing one line a file.
        raise ValueError(f"{path!r}: a file name with a control character or a backslash")
    return f"{hashlib.sha256(data).hexdigest()}  {path}\n".encode()


def listing(files: Iterable[tuple[str, bytes]]) -> bytes:
    """The ``sha256sum`` listing of ``files`` ((path, bytes)), sorted by path."""
    ordered = sorted(files, key=lambda item: item[0].encode())
    return b"".join(_listing_line(path, data) for path, data in ordered)


def folder_hash(files: Iterable[tuple[str, bytes]]) -> str:
    """A source plugin's content hash from its own files ((path in the folder, bytes))."""
    return PREFIX + hashlib.sha256(listing(files)).hexdigest()


def component_hash(data: bytes) -> str:
    """A component's content hash from its bytes."""
    return of_sha256(hashlib.sha256(data).hexdigest())


def of_sha256(hexdigest: str) -> str:
    """The content hash of a component whose bytes' SHA-256 is ``hexdigest``
    (the loader has already hashed the exact bytes it compiled)."""
    return PREFIX + hexdigest
