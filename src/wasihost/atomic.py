"""Replacing a file atomically, so readers see the old or the new content, never half.

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
        folder = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
