"""``--dev``: a saved source change is rebuilt and goes live; a broken one does not."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from wasihost.authoring.build import build
from wasihost.authoring.devloop import DevRebuilder
from wasihost.config import HostConfig
from wasihost.host import Host

ROOT = Path(__file__).resolve().parents[2]


def test_affected_plugins(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    for name in ("a", "b", "c"):
        (plugins / name).mkdir(parents=True)
        (plugins / name / "app.py").write_text("")
    wit = tmp_path / "wit"
    wit.mkdir()
    rebuilder = DevRebuilder(None, plugins, wit, tmp_path / "build", ["a", "b"])  # type: ignore[arg-type]
    assert rebuilder.affected([plugins / "a" / "app.py"]) == {"a"}
    assert rebuilder.affected([plugins / "c" / "app.py"]) == set()  # not run by this host
    assert rebuilder.affected([wit / "plugin.wit"]) == {"a", "b"}


async def test_edit_save_see_new_logic(
    tmp_path: Path,
    make_config: Callable[..., HostConfig],
    make_host: Callable[[HostConfig], Host],
    caplog: pytest.LogCaptureFixture,
) -> None:
    plugins = tmp_path / "plugins"
    shutil.copytree(ROOT / "tests" / "plugins" / "chaos", plugins / "dht22")
    out = tmp_path / "build"
    build(["dht22"], plugins_dir=plugins, wit_dir=ROOT / "wit", out_dir=out, echo=lambda _: None)
    host = make_host(make_config({"dht22": {"wasm": str(out / "dht22.wasm"), "led": 1}}))
    rebuilder = DevRebuilder(host.engine, plugins, ROOT / "wit", out, ["dht22"])
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.value("temperature") == 1.0

    # A broken edit: the build error is logged and the running version stays.
    app = plugins / "dht22" / "app.py"
    original = app.read_text()
    app.write_text(original + "\ndef broken(:\n")
    caplog.set_level(logging.ERROR, logger="wasihost.dev")
    await rebuilder.rebuild(["dht22"])
    assert rebuilder.failures == 1
    assert any("build failed; the running version stays" in m for m in caplog.messages)
    assert any("SyntaxError" in m or "invalid syntax" in m for m in caplog.messages)

    # A good edit, through both watchers: rebuilt, reloaded, state carried over.
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(rebuilder.run(stop)),
        asyncio.create_task(host.reloader.watch(stop)),
    ]
    await asyncio.wait_for(rebuilder.ready.wait(), 30)  # both watchers are watching
    await asyncio.wait_for(host.reloader.ready.wait(), 30)
    try:
        app.write_text(
            original.replace("return _data(float(POLLS))", "return _data(1000.0 + POLLS)")
        )
        for _ in range(1200):  # up to 60 s: a cold build and compile take a while
            if host.plugins["dht22"].stats.reloads:
                break
            await asyncio.sleep(0.05)
        assert host.plugins["dht22"].stats.reloads == 1, host.statuses()["dht22"]
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await host.reloader.wait_idle()
    await host.cycle.run_once()
    assert host.state.plugins["dht22"].reading.value("temperature") == 1002.0
