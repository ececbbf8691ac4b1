"""``wasihost typecheck``: mypy --strict on each plugin, against its world's bindings.

Each plugin is checked on its own, because each world generates its own
``wit_world`` package: the bindings and the plugin's folder (its helper
modules) form its import path.
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
from wasihost.errors import BuildError

Echo = Callable[[str], None]


def typecheck(
    names: Iterable[str] | None, plugins_dir: Path, wit_dir: Path, echo: Echo = print
) -> bool:
    """True when every plugin passes; mypy's findings are echoed as they are."""
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        raise BuildError("mypy not found: install the dev extra (pip install 'wasihost[dev]')")
    ok = True
    for name in names or discover(plugins_dir):
        plugin_dir = plugins_dir / name
        bindings = bindings_for(read_manifest(plugin_dir), wit_dir)
        env = {**os.environ, "MYPYPATH": os.pathsep.join([str(bindings.resolve()), "."])}
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
                echo(f"  {plugin_dir}/{line}" if not line.startswith(" ") else line)
    return ok
