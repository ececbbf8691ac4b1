"""``wasihost new``: the scaffolded plugin builds, passes its own tests and runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from wasihost.authoring.build import build
from wasihost.authoring.scaffold import scaffold
from wasihost.cli import main
from wasihost.config import HostConfig
from wasihost.errors import WasihostError
from wasihost.host import Host

ROOT = Path(__file__).resolve().parents[2]


async def test_new_plugin_builds_tests_and_runs(
    tmp_path: Path,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugins = tmp_path / "plugins"
    assert main(["new", "probe", "--plugins-dir", str(plugins), "--led", "6"]) == 0
    printed = capsys.readouterr().out
    source = (plugins / "probe").as_posix()
    assert f'[plugins.probe]\nworld = "sensor-plugin"\nsource = "{source}"' in printed
    assert "\nled = 6  #" in printed
    assert sorted(p.name for p in (plugins / "probe").iterdir()) == [
        "app.py", "plugin.toml", "test_app.py",
    ]  # fmt: skip

    out = tmp_path / "build"
    build(["probe"], plugins_dir=plugins, wit_dir=ROOT / "wit", out_dir=out, echo=lambda _: None)
    for name in ("python-runtime.wasm", "python-runtime.cwasm", "python-runtime.cwasm.tag"):
        shutil.copy(ROOT / "build" / name, out / name)  # the shared runtime `make` built
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(plugins / "probe")],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "3 passed" in tests.stdout  # native, in the shared runtime, as its own component

    for how in ({"wasm": str(out / "probe.wasm")}, {"source": source}):
        host = make_host(make_config({"probe": {"world": "sensor-plugin", "led": 6, **how}}))
        await host.cycle.run_once()
        reading = host.state.to_json()["readings"]["probe"]
        assert reading["measurements"][0]["name"] == "cpu_temperature", how


def test_bad_names_and_worlds_are_refused(tmp_path: Path) -> None:
    with pytest.raises(WasihostError, match="use lower-case letters"):
        scaffold("My Plugin", "sensor-plugin", tmp_path, 3)
    with pytest.raises(WasihostError, match="no template for world 'dht22-plugin'"):
        scaffold("probe", "dht22-plugin", tmp_path, 3)
    scaffold("probe", "sensor-plugin", tmp_path, 3)
    with pytest.raises(WasihostError, match="already exists"):
        scaffold("probe", "sensor-plugin", tmp_path, 3)
