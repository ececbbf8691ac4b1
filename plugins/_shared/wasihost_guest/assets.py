"""A plugin's ``assets/`` folder (a page's script and style sheet), as text.

The guest has no files at run time, so ``wasihost build`` embeds the folder in
the component: it generates the module ``_embedded_assets`` (never written
into the plugin, never committed), whose ``FILES`` maps each file's path in
the folder to its text. Natively (pytest, ``wasihost.testing``) there is no
such module and the folder itself is read. Both take the bytes as UTF-8 with
no newline translation and skip hidden files, so both give the same text.
"""

from __future__ import annotations

import importlib

FOLDER = "assets"
GENERATED = "_embedded_assets"


def read(module_file: str) -> dict[str, str]:
    """The plugin's asset files by path (``"app.js"``); pass ``__file__`` of a
    module in the plugin's folder."""
    try:
        generated = importlib.import_module(GENERATED)
    except ModuleNotFoundError as exc:
        if exc.name != GENERATED:
            raise
    else:
        files: dict[str, str] = generated.FILES
        return files
    # Natively only: in a component pathlib would add ~0.5 MB to the snapshot for nothing.
    from pathlib import Path

    folder = Path(module_file).resolve().parent / FOLDER
    return {
        path.relative_to(folder).as_posix(): path.read_bytes().decode("utf-8")
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    }
