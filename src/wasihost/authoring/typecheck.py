"""``wasihost typecheck``: mypy --strict on each plugin, against its world's bindings.

Each plugin is checked on its own, because each world generates its own
``wit_world`` package: the bindings, the plugin's folder (its helper
modules) and, if it imports it, the shared guest library form its import
path (the library is checked with each plugin that uses it).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from wasihost.authoring.bindings import bindings_for
from wasihost.authoring.build import discover, read_manifest
from wasihost.authoring.runtime_build import RUNTIME_FOLDER
from wasihost.errors import BuildError
from wasihost.runtime.manifest import Manifest
from wasihost.runtime.shared import RUNTIME_WORLD
from wasihost.runtime.source import library_for

Echo = Callable[[str], None]


def typecheck(
    names: Iterable[str] | None, plugins_dir: Path, wit_dir: Path, echo: Echo = print
) -> bool:
    """True when every plugin passes; mypy's findings are echoed as they are."""
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        raise BuildError("mypy not found: install the dev extra (pip install 'wasihost[dev]')")
    ok = True
    todo = list(names or discover(plugins_dir))
    if not names and (plugins_dir / RUNTIME_FOLDER).is_dir():
        todo.append(RUNTIME_FOLDER)  # the shared runtime is guest code too
    for name in todo:
        plugin_dir = plugins_dir / name
        manifest = Manifest(RUNTIME_WORLD) if name == RUNTIME_FOLDER else read_manifest(plugin_dir)
        bindings = bindings_for(manifest, wit_dir)
        paths = [str(bindings.resolve()), "."]
        library = library_for(plugin_dir)
        if library is not None:
            paths.append(str(library))
        env = {**os.environ, "MYPYPATH": os.pathsep.join(paths)}
        proc = subprocess.run(
            [mypy, "--strict", "--explicit-package-bases", "--no-error-summary", "."],
            cwd=plugin_dir, env=env, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode == 0:
            echo(f"{name}: ok")
        else:
            ok = False
            echo(f"{name}: mypy found problems")
            for line in (proc.stdout + proc.stderr).strip().splitlines():
                if line.startswith(" "):
                    echo(line)
                else:  # relative to the plugin, or absolute in the shared library
                    echo(f"  {line}" if os.path.isabs(line) else f"  {plugin_dir}/{line}")
    return ok
