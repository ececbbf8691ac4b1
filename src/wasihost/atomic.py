"""Replacing a file atomically, so readers see the old or the new content, never half;
and fsyncing files and folders, so what a record names survives a power cut.

The temporary file has a unique name in the target's folder, so two
writers (two builds, a build and a deploy) never clobber each other's
half-written file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes | bytearray, durable: bool = False) -> None:
    """Write ``data`` to ``path`` via a rename; ``durable`` also fsyncs the file
    and the folder, so the new content survives a power cut."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)


def fsync_path(path: Path) -> None:
    """fsync a file or a folder by name: a folder's fsync makes its entries
    (files created or renamed in it) survive a power cut, which the files'
    own fsyncs do not."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(folder: Path) -> None:
    """fsync every file and folder below ``folder``, and ``folder`` itself: a
    tree written without fsyncs (an unpacked plugin) made durable before a
    rename and a record make it the deployed version. Each folder after its
    files."""
    for parent, _folders, files in os.walk(folder, topdown=False):
        for name in files:
            fsync_path(Path(parent, name))
        fsync_path(Path(parent))
