"""Building the shared Python runtime: one component every source plugin runs in.

Built once per runtime, contract and componentize-py version (about as long
as one plugin build used to take), instead of once per plugin version. The
same incremental scheme as plugin builds: a hash of the inputs next to the
output, an atomic rename, and the precompiled artifact beside it.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
import time
from pathlib import Path

from wasihost.atomic import write_atomically
from wasihost.authoring.leak_mend import mend_build, toolchain
from wasihost.errors import BuildError
from wasihost.runtime.artifacts import precompile
from wasihost.runtime.engine import Engine
from wasihost.runtime.shared import RUNTIME_MODULE, RUNTIME_WORLD, runtime_wasm

RUNTIME_FOLDER = "_runtime"  # <plugins>/_runtime/: the shared runtime's source


def runtime_inputs_hash(source_dir: Path, wit_dir: Path) -> str:
    digest = hashlib.sha256(f"{toolchain()}\0".encode())
    inputs = [(source_dir, p) for p in sorted(source_dir.rglob("*.py"))]
    inputs += [(wit_dir, p) for p in sorted(wit_dir.glob("*.wit"))]
    for base, path in inputs:
        if "__pycache__" not in path.parts:
            digest.update(path.relative_to(base).as_posix().encode() + b"\0")
            digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def build_runtime(
    componentize_py: str,
    engine: Engine,
    wit_dir: Path,
    out_dir: Path,
    source_dir: Path,
) -> tuple[Path, bool, float]:
    """Build ``out_dir/python-runtime.wasm`` unless up to date: (output, built, seconds)."""
    if not (source_dir / f"{RUNTIME_MODULE}.py").is_file():
        raise BuildError(f"{source_dir}: no {RUNTIME_MODULE}.py (the shared runtime's source)")
    output = runtime_wasm(out_dir)
    stamp = output.with_suffix(".inputs")
    wanted = runtime_inputs_hash(source_dir, wit_dir)
    started = time.perf_counter()
    if output.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        precompile(engine, output)
        return output, False, time.perf_counter() - started
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="wasihost-runtime-") as scratch:
        partial = Path(scratch) / output.name
        command = [
            componentize_py, "-d", str(wit_dir.resolve()), "-w", RUNTIME_WORLD,
            "componentize", RUNTIME_MODULE, "-p", str(source_dir.resolve()),
            "-o", str(partial),
        ]  # fmt: skip
        proc = subprocess.run(command, cwd=scratch, capture_output=True, text=True)
        if proc.returncode != 0:
            output_text = (proc.stderr or proc.stdout).strip()
            raise BuildError(f"the shared Python runtime did not build:\n{output_text}")
        built = mend_build(partial.read_bytes(), "the shared Python runtime")
    write_atomically(output, built)
    precompile(engine, output, built)
    stamp.write_text(wanted + "\n")
    return output, True, time.perf_counter() - started
