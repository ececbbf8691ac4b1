"""Real nodes for deploy tests and the deploy bench: the counter plugin, and
hosts run as ``wasihost run`` processes on a shared broker.

``counter`` writes the counting source plugin (``tests/source-plugins/
counter_app.py.tmpl``) at a version, or a version that traps on every poll.
``HostProcess`` is one node as an operator runs it: its own folder,
``host.toml`` and process, with MQTT and ``[deploy]`` on, trusting one key.
Used by tests/deploy/test_deploy_node.py (``counter``), tests/test_deploy_e2e.py
and bench/deploy_bench.py.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests" / "source-plugins" / "counter_app.py.tmpl"
PYTHON_RUNTIME = ROOT / "build" / "python-runtime.wasm"
STOP_SECONDS = 15.0


def stop_all(hosts: Sequence[HostProcess]) -> None:
    """Stop every host at once (SIGTERM to all, then wait for each)."""
    for host in hosts:
        host.terminate()
    for host in hosts:
        host.wait()


def kill_all(hosts: Sequence[HostProcess]) -> None:
    """Kill every host at once (SIGKILL, no clean stop): a test's teardown."""
    for host in hosts:
        if host.process is not None and host.process.poll() is None:
            host.process.kill()
    for host in hosts:
        host.wait()


def counter(folder: Path, version: str, trap: bool = False) -> Path:
    """The counting source plugin (state carried across versions); ``trap``: a
    version whose every poll fails with an unhandled exception."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "plugin.toml").write_text('world = "sensor-plugin"\nstate = true\n')
    text = TEMPLATE.read_text().replace("VERSION", version)
    if trap:
        text = text.replace(
            "        POLLS += 1\n", "        POLLS += 1\n        raise SystemExit(3)\n"
        )
    (folder / "app.py").write_text(text)
    return folder


def wasihost() -> str:
    """The ``wasihost`` command of this environment (the venv's script)."""
    beside = Path(sys.executable).with_name("wasihost")
    return str(beside) if beside.exists() else (shutil.which("wasihost") or "wasihost")


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def toml_text(tables: Mapping[str, Mapping[str, Any]]) -> str:
    """``{"a.b": {"key": value}}`` as TOML tables (flat values only)."""
    lines: list[str] = []
    for table, keys in tables.items():
        lines.append(f"[{table}]")
        lines += [f"{key} = {_toml(value)}" for key, value in keys.items()]
        lines.append("")
    return "\n".join(lines)


class HostProcess:
    """One node: ``wasihost run --config <folder>/host.toml`` with the counter
    plugin (1.0.0, from its own folder) and ``plugins`` besides; everything it
    writes stays in ``folder``; its log is ``folder/host.log``."""

    def __init__(
        self,
        folder: Path,
        node: str,
        broker_port: int,
        trusted_key: str,
        *,
        interval_seconds: float = 0.1,
        gate_polls: int = 3,
        gate_seconds: float = 60.0,
        labels: Sequence[str] = (),
        plugins: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.node = node
        self.folder = folder
        self.log = folder / "host.log"
        self.config = folder / "host.toml"
        self.source = counter(folder / "plugins" / "counter", "1.0.0")
        self.process: subprocess.Popen[bytes] | None = None
        tables: dict[str, dict[str, Any]] = {
            "node": {"id": node, "labels": list(labels)},
            "polling": {"interval_seconds": interval_seconds},
            "logging": {"level": "info", "show_sensor_data": False},
            "web": {"enabled": False},
            "history": {"enabled": False},
            "reload": {"enabled": False},
            "state": {"dir": str(folder / "state")},
            "mqtt": {
                "enabled": True,
                "host": "127.0.0.1",
                "port": broker_port,
                "keepalive_seconds": 5,
                "discovery": False,
                "outbox_path": str(folder / "outbox.sqlite3"),
            },
            "trust": {"keys": [trusted_key]},
            "deploy": {
                "enabled": True,
                "dir": str(folder / "deploy"),
                "gate_polls": gate_polls,
                "gate_seconds": gate_seconds,
            },
            "runtime": {
                "python_runtime": str(PYTHON_RUNTIME),
                "plugins_dir": str(folder / "plugins"),
            },
            "plugins.counter": {"source": str(self.source), "world": "sensor-plugin"},
        }
        for name, table in (plugins or {}).items():
            tables[f"plugins.{name}"] = dict(table)
        self.config.write_text(toml_text(tables))

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [wasihost(), "run", "--config", str(self.config)],
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def terminate(self) -> None:
        """SIGTERM, as systemd stops it: the host says offline and saves its state."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        """Wait for the process to end (killed after STOP_SECONDS)."""
        process, self.process = self.process, None
        if process is None:
            return
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop(self) -> None:
        self.terminate()
        self.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- {self.node} ({self.log}) ---\n" + "\n".join(text.splitlines()[-lines:])
