"""Plugin builds: incremental, with progress, failing with the compiler's message."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from wasihost.authoring.build import Manifest, build, inputs_hash
from wasihost.errors import BuildError

ROOT = Path(__file__).resolve().parent.parent


def test_up_to_date_plugins_are_skipped(built: dict[str, Path]) -> None:
    lines: list[str] = []
    results = build(
        ["dht22"],
        plugins_dir=ROOT / "plugins",
        wit_dir=ROOT / "wit",
        out_dir=ROOT / "build",
        echo=lines.append,
    )
    assert [r.built for r in results] == [False]
    assert lines[-1] == "[1/1] dht22: up to date"


def test_inputs_hash_follows_sources_and_wit(tmp_path: Path) -> None:
    plugin = tmp_path / "plugins" / "p"
    wit = tmp_path / "wit"
    plugin.mkdir(parents=True)
    wit.mkdir()
    (plugin / "app.py").write_text("x = 1\n")
    (wit / "a.wit").write_text("package a:b;\n")
    first = inputs_hash(plugin, wit, Manifest("w"))
    assert inputs_hash(plugin, wit, Manifest("w")) == first
    (plugin / "helper.py").write_text("y = 2\n")
    second = inputs_hash(plugin, wit, Manifest("w"))
    (wit / "a.wit").write_text("package a:c;\n")
    third = inputs_hash(plugin, wit, Manifest("w"))
    assert len({first, second, third, inputs_hash(plugin, wit, Manifest("w", state=True))}) == 4


def test_broken_plugin_fails_with_compiler_message(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    broken = plugins / "broken"
    broken.mkdir(parents=True)
    (broken / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    (broken / "app.py").write_text("import module_that_does_not_exist\n")
    lines: list[str] = []
    with pytest.raises(BuildError) as info:
        build(
            plugins_dir=plugins, wit_dir=ROOT / "wit", out_dir=tmp_path / "out", echo=lines.append
        )
    assert "broken (world dashboard-plugin) did not build" in str(info.value)
    assert "module_that_does_not_exist" in str(info.value)
    assert lines[-1] == "[1/1] broken: FAILED"
    assert not (tmp_path / "out" / "broken.wasm").exists()


def test_unknown_plugin_is_named(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "plugins" / "dht22", tmp_path / "plugins" / "dht22")
    with pytest.raises(BuildError, match=r"no app\.py \(known plugins: dht22"):
        build(
            ["nope"],
            plugins_dir=tmp_path / "plugins",
            wit_dir=ROOT / "wit",
            out_dir=tmp_path / "out",
            echo=lambda _: None,
        )
