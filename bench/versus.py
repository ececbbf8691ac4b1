"""Full-cycle time of this checkout against another, side by side in one run.

    git worktree add /tmp/before <commit>      # the other version
    (build its compiled call plans the same way as this checkout's, if it has them)
    python -m bench.versus /tmp/before/src [--rounds 5]

Each round runs one process per version, alternating, each timing 100
cycles of the 4 seed plugins and of 50 generic sensor plugin instances on
the compiled path (this checkout's built plugins for both). It prints the
medians and the ratio. Not part of ``make bench``: it needs a second checkout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _configs() -> dict[str, dict[str, Any]]:
    seed = {
        name: {"wasm": str(ROOT / "build" / f"{name}.wasm"), **({"led": led} if led >= 0 else {})}
        for name, led in (("pi-monitor", 0), ("dht22", 1), ("bme680", 2), ("dashboard", -1))
    }
    generic = str(ROOT / "build" / "test-plugins" / "generic.wasm")
    fifty = {f"s{i}": {"world": "sensor-plugin", "wasm": generic} for i in range(50)}
    return {"4 seed plugins": seed, "50 generic sensor plugins": fifty}


def _measure(cycles: int) -> dict[str, float]:
    """In a child process: ms per cycle of each config, with whatever ``wasihost`` imports.

    The same loop as ``calls_bench._cycle_ms``, written again on purpose: this
    module must import nothing of wasihost's at the top, since the other
    checkout may not have what the benchmark modules import."""
    from wasihost.boards.sim import SimBoard
    from wasihost.config import parse_config
    from wasihost.host import Host

    async def one(plugins: dict[str, Any]) -> float:
        with tempfile.TemporaryDirectory(prefix="wasihost-versus-") as tmp:
            config = parse_config({
                "web": {"enabled": False},
                "history": {"path": f"{tmp}/history.sqlite3"},
                "state": {"dir": f"{tmp}/state"},
                "plugins": plugins,
            })  # fmt: skip
            host = Host(config, board=SimBoard(seed=1))
            host.load_plugins()
            try:
                await host.after_cycle(await host.cycle.run_once())  # warm up
                started = time.perf_counter()
                for _ in range(cycles):
                    await host.after_cycle(await host.cycle.run_once())
                return (time.perf_counter() - started) / cycles * 1000
            finally:
                host.close()

    return {label: asyncio.run(one(plugins)) for label, plugins in _configs().items()}


def _child(src: str | None) -> dict[str, float]:
    code = (
        "import json, logging, sys; logging.disable(logging.CRITICAL); "
        + (f"sys.path.insert(0, {src!r}); " if src else "")
        + "from bench.versus import _measure; print(json.dumps(_measure(100)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    )
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("other_src", help="the other checkout's src/ folder")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, dict[str, list[float]]] = {"other": {}, "this": {}}
    for round_ in range(args.rounds):
        print(f"  … round {round_ + 1}/{args.rounds}", file=sys.stderr, flush=True)
        for side, src in (("other", args.other_src), ("this", None)):
            for label, ms in _child(src).items():
                samples[side].setdefault(label, []).append(ms)
    for label in _configs():
        other = statistics.median(samples["other"][label])
        this = statistics.median(samples["this"][label])
        print(
            f"{label}: other {other:.2f} ms, this {this:.2f} ms, this / other {this / other:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
