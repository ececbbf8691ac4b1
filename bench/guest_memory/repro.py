"""Which values leak guest memory when a componentize-py guest sends them.

    .venv/bin/python -m bench.guest_memory.repro [--calls N] [--rebuild] [--mended]

Builds ``guest/app.py`` against ``wit/repro.wit`` with componentize-py into
``build/guest-memory/`` (skipped when the inputs are unchanged), instantiates
it with wasmtime-py, and for each shape makes N calls and reports how much the
guest's linear memory grew per call, read from /proc/self/maps (maps.py says
how, and its limits). ``--mended`` measures the component as ``wasihost
build`` leaves it, with the runtime's leaks mended (authoring/leak_mend.py).
Not part of ``make test``: it takes about a minute.
Findings and the cause: docs/GUEST-MEMORY.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import wasmtime
from wasmtime import component

from bench.guest_memory.maps import PAGE, new_memories, size_of
from wasihost.authoring.leak_mend import mend

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WIT = HERE / "wit"
GUEST = HERE / "guest"
BUILD = ROOT / "build" / "guest-memory"
PACKAGE = "wasihost:leak-repro"
VERSION = "0.1.0"


@dataclass(frozen=True)
class Shape:
    sender: str  # who sends the value: the guest or the host
    function: str  # WIT name, as an import (sink) or an export (source)
    wit_type: str
    length: int  # payload: bytes, elements or characters (for an option, 0 is none)
    export: bool = False

    @property
    def payload(self) -> str:
        if self.wit_type.startswith("option") and self.length == 0:
            return "none"
        unit = {"string": "chars", "list<u8>": "bytes"}.get(self.wit_type, "elems")
        return f"{self.length} {unit}"


SHAPES = [
    # The guest sends an import parameter (i2c.transfer's `data`, and its alternatives).
    *(Shape("guest", "take-bytes", "list<u8>", n) for n in (0, 2, 64)),
    *(Shape("guest", "take-u16s", "list<u16>", n) for n in (0, 2, 64)),
    *(Shape("guest", "take-maybe-u16s", "option<list<u16>>", n) for n in (0, 2)),
    *(Shape("guest", "take-string", "string", n) for n in (0, 2, 64)),
    # The guest sends an export result (state.snapshot(), and its alternatives).
    *(Shape("guest", "get-bytes", "list<u8>", n, export=True) for n in (0, 6, 256)),
    *(Shape("guest", "get-u16s", "list<u16>", n, export=True) for n in (0, 6, 256)),
    *(Shape("guest", "get-string", "string", n, export=True) for n in (0, 6, 256)),
    # Controls: the host sends an import result (i2c.transfer's answer).
    *(Shape("host", "give-bytes", "list<u8>", n) for n in (0, 6)),
    *(Shape("host", "give-u16s", "list<u16>", n) for n in (0, 6)),
]


def componentize_py() -> str:
    beside = Path(sys.executable).with_name("componentize-py")
    found = str(beside) if beside.exists() else shutil.which("componentize-py")
    if found is None:
        raise SystemExit("componentize-py not found: run `make setup` first")
    return found


def inputs_hash() -> str:
    digest = hashlib.sha256(f"componentize-py {metadata.version('componentize-py')}".encode())
    for path in (*sorted(WIT.glob("*.wit")), GUEST / "app.py"):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def build(out_dir: Path, rebuild: bool) -> Path:
    """The component, built unless the one in ``out_dir`` has the same inputs."""
    wasm, stamp = out_dir / "repro.wasm", out_dir / "repro.inputs"
    current = inputs_hash()
    if not rebuild and wasm.exists() and stamp.exists() and stamp.read_text() == current:
        return wasm
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"building {wasm.relative_to(ROOT)} with componentize-py…", file=sys.stderr)
    command = [
        componentize_py(), "-d", str(WIT), "-w", "repro", "componentize",
        "-p", str(GUEST), "app", "-o", str(wasm),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("VIRTUAL_ENV", None)  # nothing from site-packages belongs in the guest
    proc = subprocess.run(command, cwd=GUEST, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"componentize-py failed:\n{proc.stderr or proc.stdout}")
    stamp.write_text(current)
    return wasm


def mended(wasm: Path) -> Path:
    """The component with componentize-py's runtime mended, as ``wasihost build`` does."""
    result = mend(wasm.read_bytes())
    if result.mended != 1:
        raise SystemExit(f"{wasm}: no runtime module the mend knows (componentize-py changed?)")
    out = wasm.with_name("repro-mended.wasm")
    out.write_bytes(result.component)
    return out


class Guest:
    """One instance of the component, and the size of its linear memory."""

    def __init__(self, wasm: Path) -> None:
        config = wasmtime.Config()
        config.cache = True  # the first compile takes several seconds, later ones 0.2 s
        self.engine = wasmtime.Engine(config)
        self.component = component.Component.from_file(self.engine, str(wasm))
        linker = component.Linker(self.engine)
        linker.add_wasip2()
        sink: dict[str, Callable[..., Any]] = {
            "take-bytes": lambda store, data: None,
            "take-u16s": lambda store, data: None,
            "take-maybe-u16s": lambda store, data: None,
            "take-string": lambda store, data: None,
            "give-bytes": lambda store, length: bytes(length),
            "give-u16s": lambda store, length: [7] * length,
        }
        with linker.root() as root, root.add_instance(f"{PACKAGE}/sink@{VERSION}") as iface:
            for name, function in sink.items():
                iface.add_func(name, function)
        self.store = wasmtime.Store(self.engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        with new_memories() as memories:
            self.instance = linker.instantiate(self.store, self.component)
        if len(memories) != 1:
            raise SystemExit(f"expected one new linear memory, found {len(memories)}")
        self.memory_end = memories[0]
        self._run = self._export("driver", "run")

    def _export(self, interface: str, name: str) -> Any:
        iface = self.instance.get_export_index(self.store, f"{PACKAGE}/{interface}@{VERSION}")
        return self.instance.get_func(
            self.store, self.instance.get_export_index(self.store, name, iface)
        )

    def size(self) -> int:
        return size_of(self.memory_end)

    def calls(self, shape: Shape, count: int) -> None:
        if shape.export:
            function = self._export("source", shape.function)
            for _ in range(count):
                function(self.store, shape.length)
        else:
            self._run(self.store, shape.function, shape.length, count)

    def prime(self) -> int:
        """Use up the free heap the instance starts with, so that from now on
        leaked bytes grow the memory; returns how many bytes that took. The guest
        keeps what it makes, so this works on a runtime that leaks nothing too."""
        held = 0
        for length, batch in ((4096, 64), (64, 2000)):  # big holes and the top first, then small
            start = self.size()
            while self.size() == start:
                self._run(self.store, "hold", length, batch)
                held += batch * length
        return held

    def close(self) -> None:
        self.store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000, help="calls per shape")
    parser.add_argument("--rebuild", action="store_true", help="build even when up to date")
    parser.add_argument("--build-dir", type=Path, default=BUILD, help="where the build goes")
    parser.add_argument(
        "--mended", action="store_true", help="with the runtime's leaks mended, as wasihost builds"
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    wasm = build(args.build_dir, args.rebuild)
    guest = Guest(mended(wasm) if args.mended else wasm)
    try:
        initial = guest.size()
        primed = guest.prime()
        warm = max(1000, args.calls // 50)
        print(
            f"componentize-py {metadata.version('componentize-py')}, "
            f"wasmtime-py {metadata.version('wasmtime')}, Python {sys.version.split()[0]}; "
            f"runtime {'mended' if args.mended else 'as built'}; "
            f"linear memory {initial / 2**20:.1f} MiB after instantiation; about "
            f"{primed / 2**20:.1f} MiB held on purpose before it first grew (free heap)"
        )
        print(
            f"{args.calls} calls per shape after {warm} warm-up calls; memory read in "
            f"64 KiB pages, so ±{PAGE / args.calls:.2f} B/call; time per call as the host sees it\n"
        )
        row = "{:<8} {:<22} {:<18} {:>10} {:>10} {:>10}  {:<5} {:>8}"
        print(row.format("sent by", "function", "WIT type", "payload", "growth", "per call",
                         "leaks", "time"))  # fmt: skip
        for shape in SHAPES:
            guest.calls(shape, warm)
            before = guest.size()
            start = time.perf_counter()
            guest.calls(shape, args.calls)
            seconds = time.perf_counter() - start
            growth = guest.size() - before
            per_call = growth / args.calls
            leaks = "yes" if growth >= 2 * PAGE else "no"
            where = "export" if shape.export else "import"
            print(
                row.format(
                    shape.sender,
                    f"{where} {shape.function}",
                    shape.wit_type,
                    shape.payload,
                    f"{growth // 1024} KiB",
                    f"{per_call:.1f} B",
                    leaks,
                    f"{seconds / args.calls * 1e6:.1f} µs",
                ),
                flush=True,
            )
        print(f"\ngrowth at the end: {(guest.size() - initial) / 2**20:.1f} MiB", end="")
        print(f" in {time.perf_counter() - started:.0f} s")
    finally:
        guest.close()


if __name__ == "__main__":
    main()
