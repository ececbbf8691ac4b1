"""``wasihost check``: the report and the verdict match what the host would do."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from wasihost.cli import main
from wasihost.config import HostConfig

ROOT = Path(__file__).resolve().parents[2]


def run(path: Path, config: HostConfig | None, plugin: str | None) -> tuple[bool, str]:
    from wasihost.authoring.check import run_check

    lines: list[str] = []
    ok = run_check(path, config, plugin, echo=lines.append)
    return ok, "\n".join(lines)


def test_accepted_plugin_shows_imports_exports_and_grants(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config({"dht22": {"led": 1}})
    ok, report = run(built["dht22"], config, "dht22")
    assert ok
    assert "wasihost:plugin/gpio-provider@0.1.0  get-timestamp-ms, read-cpu-temperature" in report
    assert "wasihost:plugin/sensor-logic@0.1.0  poll" in report
    assert "fits worlds: dht22-plugin" in report
    assert "✓ plugins.dht22 (dht22-plugin)" in report
    assert "grants: LEDs 1; GPIO 4; I2C none; buzzer yes; fan no" in report


def test_refused_plugin_says_why(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config({"dht22": {"led": 1}})
    ok, report = run(built["bme680"], config, "dht22")
    assert not ok
    assert "✗ plugins.dht22 (dht22-plugin)" in report
    assert "imports wasihost:plugin/i2c@0.1.0, which world dht22-plugin does not allow" in report


def test_corrupt_file_and_cli_exit_codes(tmp_path: Path, built: dict[str, Path]) -> None:
    corrupt = tmp_path / "corrupt.wasm"
    corrupt.write_bytes(b"not wasm at all")
    ok, report = run(corrupt, None, None)
    assert not ok and "not a valid WebAssembly component" in report
    missing_config = str(tmp_path / "none.toml")
    assert main(["check", str(built["dashboard"]), "--config", missing_config]) == 0
    assert main(["check", str(corrupt), "--config", missing_config]) == 1


def test_disabled_plugin_is_checked_with_its_grants(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config({"dht22": {"led": 1, "enabled": False}})
    ok, report = run(built["dht22"], config, "dht22")
    assert ok
    assert "✓ plugins.dht22 (dht22-plugin)" in report
    assert "note: plugins.dht22.enabled = false" in report
    assert "grants: LEDs 1; GPIO 4; I2C none; buzzer yes; fan no" in report


def test_another_plugins_unknown_world_does_not_matter(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config(
        {"dht22": {"led": 1}, "other": {"built": "dht22", "world": "no-such-plugin"}}
    )
    ok, report = run(built["dht22"], config, "dht22")
    assert ok
    assert "grants: LEDs 1; GPIO 4; I2C none; buzzer yes; fan no" in report


def test_unknown_world_is_refused_not_a_crash(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config({"dht22": {"world": "no-such-plugin"}})
    ok, report = run(built["dht22"], config, "dht22")
    assert not ok
    assert "✗ plugins.dht22 (no-such-plugin)" in report
    assert "would refuse it: unknown world 'no-such-plugin' (expected one of: " in report


def test_every_built_plugin_but_the_forged_one_passes_the_type_check(
    built: dict[str, Path],
) -> None:
    """The type comparison accepts what componentize-py builds from the real WIT."""
    for name, path in built.items():
        ok, report = run(path, None, None)
        assert ok == (name != "forged-types"), (name, report)


def test_a_forged_component_is_refused_naming_the_difference(
    built: dict[str, Path], make_config: Callable[..., HostConfig]
) -> None:
    config = make_config({"dht22": {"led": 1}})
    ok, report = run(built["forged-types"], config, "dht22")
    assert not ok
    assert "✗ plugins.dht22 (dht22-plugin)" in report
    assert (
        "built against another contract: imports "
        "wasihost:plugin/gpio-provider@0.1.0#get-timestamp-ms returning string, "
        "the contract says u64" in report
    )
    assert main(["check", str(built["forged-types"]), "--config", str(Path("none.toml"))]) == 1


def test_a_source_folder_is_loaded_as_the_host_would(
    built: dict[str, Path], make_config: Callable[..., HostConfig], monkeypatch: Any
) -> None:
    monkeypatch.chdir(ROOT)  # build/python-runtime.wasm, as `make` built it
    config = make_config({"dht22": {"led": 1, "source": "plugins/dht22"}})
    ok, report = run(Path("plugins/dht22"), config, None)
    assert ok, report
    assert "plugins/dht22 (source plugin, world dht22-plugin, " in report
    assert "\n  climate.py\n" in report and "\n  wasihost_guest/settings.py\n" in report
    assert "✓ loads in the shared runtime as a dht22-plugin plugin" in report
    assert "grants: LEDs 1; GPIO 4; I2C none; buzzer yes; fan no" in report


def test_a_source_folder_that_does_not_load_says_where(
    built: dict[str, Path], monkeypatch: Any
) -> None:
    monkeypatch.chdir(ROOT)
    ok, report = run(Path("tests/source-plugins/bad-import"), None, None)
    assert not ok
    assert '\n      File "app.py", line 6, in <module>\n' in report
    assert "system-info is not a capability of this plugin's world (it imports: none)" in report
    assert "grants: LEDs none" not in report
