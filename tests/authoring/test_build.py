"""Plugin builds: incremental, with progress, failing with the compiler's message."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from wasihost.authoring import build as build_module
from wasihost.authoring.build import build, discover, embedded_assets, inputs_hash
from wasihost.errors import BuildError
from wasihost.runtime.manifest import Manifest
from wasihost.runtime.source import EMBEDDED_ASSETS, library_for

ROOT = Path(__file__).resolve().parents[2]


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


def _project(tmp_path: Path) -> tuple[Path, Path]:
    """plugins/ with the shared guest library, a plugin using it and one that does not."""
    plugins, wit = tmp_path / "plugins", tmp_path / "wit"
    (plugins / "_shared" / "wasihost_guest").mkdir(parents=True)
    (plugins / "_shared" / "wasihost_guest" / "__init__.py").write_text("")
    (plugins / "_shared" / "wasihost_guest" / "settings.py").write_text("A = 1\n")
    (plugins / "user").mkdir()
    (plugins / "user" / "app.py").write_text("import json\n")
    (plugins / "user" / "helper.py").write_text("from wasihost_guest import settings\n")
    (plugins / "other").mkdir()
    (plugins / "other" / "app.py").write_text("import wasihost_guest_not\n")
    wit.mkdir()
    (wit / "a.wit").write_text("package a:b;\n")
    return plugins, wit


def test_a_change_to_the_shared_library_rebuilds_its_users_only(tmp_path: Path) -> None:
    plugins, wit = _project(tmp_path)
    user, other = plugins / "user", plugins / "other"
    assert discover(plugins) == ["other", "user"]  # the library's folder is no plugin
    assert library_for(user) == (plugins / "_shared").resolve()
    assert library_for(other) is None
    before = {p: inputs_hash(p, wit, Manifest("w")) for p in (user, other)}

    (plugins / "_shared" / "wasihost_guest" / "settings.py").write_text("A = 2\n")

    assert inputs_hash(user, wit, Manifest("w")) != before[user]
    assert inputs_hash(other, wit, Manifest("w")) == before[other]


def test_tests_beside_a_plugin_are_not_build_inputs_and_assets_are(tmp_path: Path) -> None:
    plugins, wit = _project(tmp_path)
    user = plugins / "user"
    first = inputs_hash(user, wit, Manifest("w"))
    (user / "test_app.py").write_text("def test_it() -> None: ...\n")
    (user / "__pycache__").mkdir()
    (user / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    assert inputs_hash(user, wit, Manifest("w")) == first
    (user / "assets").mkdir()
    (user / "assets" / "app.js").write_text('"use strict";\n')
    with_asset = inputs_hash(user, wit, Manifest("w"))
    (user / "assets" / "app.js").write_text('"use strict";\n\n')
    assert len({first, with_asset, inputs_hash(user, wit, Manifest("w"))}) == 3


def _generated_files(plugin_dir: Path) -> object:
    """``FILES`` of the ``_embedded_assets`` module the build would generate."""
    source = embedded_assets(plugin_dir)
    assert source is not None
    module: dict[str, object] = {}
    exec(compile(source, EMBEDDED_ASSETS, "exec"), module)
    return module["FILES"]


def test_embedded_assets_are_the_files_the_native_run_reads(tmp_path: Path) -> None:
    """The component's `_embedded_assets` and a native run (`wasihost_guest.assets`,
    reading the folder) give the same text, byte for byte."""
    from wasihost_guest import assets

    plugin = tmp_path / "p"
    (plugin / "assets" / "sub").mkdir(parents=True)
    (plugin / "assets" / "app.js").write_bytes('const a = "\\u2014";\r\n// —\n'.encode())
    (plugin / "assets" / "sub" / "style.css").write_bytes(b'a::after { content: "\\"\'"; }')
    (plugin / "assets" / ".eslintcache").write_bytes(b"{}")
    native = assets.read(str(plugin / "app.py"))
    assert sorted(native) == ["app.js", "sub/style.css"]
    assert native["app.js"] == 'const a = "\\u2014";\r\n// —\n'
    assert _generated_files(plugin) == native
    assert embedded_assets(tmp_path / "none") is None
    dashboard = ROOT / "plugins" / "dashboard"
    assert _generated_files(dashboard) == assets.read(str(dashboard / "app.py"))


def test_the_build_puts_the_library_and_the_embedded_assets_on_the_import_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What componentize-py is given, without the 30 s build: -p for the plugin,
    the shared library and a folder holding the generated `_embedded_assets`."""
    plugins, _ = _project(tmp_path)
    (plugins / "user" / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    (plugins / "user" / "assets").mkdir()
    (plugins / "user" / "assets" / "style.css").write_text("a { color: red; }\n")
    seen: dict[str, object] = {}

    def componentize(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
        folders = [Path(command[i + 1]) for i, arg in enumerate(command) if arg == "-p"]
        seen["folders"] = folders
        seen["generated"] = (folders[-1] / f"{EMBEDDED_ASSETS}.py").read_text()
        return subprocess.CompletedProcess(command, 1, "", "stopped here by the test")

    monkeypatch.setattr(build_module, "subprocess", SimpleNamespace(run=componentize))
    with pytest.raises(BuildError, match="stopped here by the test"):
        build(["user"], plugins_dir=plugins, wit_dir=ROOT / "wit", out_dir=tmp_path / "out",
              echo=lambda _: None)  # fmt: skip
    folders = seen["folders"]
    assert isinstance(folders, list)
    assert folders[:2] == [(plugins / "user").resolve(), (plugins / "_shared").resolve()]
    assert "'style.css': 'a { color: red; }\\n'" in str(seen["generated"])


def test_a_plugin_copied_without_the_library_is_told_where_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins, _ = _project(tmp_path)
    shutil.rmtree(plugins / "_shared")
    (plugins / "user" / "plugin.toml").write_text('world = "dashboard-plugin"\n')
    failure = "ModuleNotFoundError: No module named 'wasihost_guest'"
    fail = SimpleNamespace(run=lambda c, **_: subprocess.CompletedProcess(c, 1, "", failure))
    monkeypatch.setattr(build_module, "subprocess", fail)
    with pytest.raises(BuildError, match=r"_shared/wasihost_guest/: a plugin copied on its own"):
        build(["user"], plugins_dir=plugins, wit_dir=ROOT / "wit", out_dir=tmp_path / "out",
              echo=lambda _: None)  # fmt: skip


def test_wasihost_build_builds_the_runtime_and_leaves_source_plugins_alone(
    built: dict[str, Path],
) -> None:
    """`wasihost build`: the shared runtime and kind = "component" plugins only; the
    seeds are source plugins, so there is nothing else to build (up to date here)."""
    lines: list[str] = []
    results = build(
        plugins_dir=ROOT / "plugins",
        wit_dir=ROOT / "wit",
        out_dir=ROOT / "build",
        echo=lines.append,
        sources=False,
    )
    assert [r.name for r in results] == ["python-runtime"]
    assert lines == [
        f"building the shared Python runtime into {ROOT / 'build'}/ (1 at a time)…",
        "[1/1] python-runtime: up to date",
    ]
