"""wasihost.testing: the same plugin test runs natively and on the built component."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wasihost.boards.sim import SimBoard
from wasihost.capabilities import Grants
from wasihost.errors import GuestError
from wasihost.testing import ComponentPlugin, NativePlugin, plugin_under_test

ROOT = Path(__file__).resolve().parents[2]
DHT22_GRANTS = Grants(leds=frozenset({1}), gpio_pins=frozenset({4}), buzzer=True)


@pytest.fixture(params=["native", "component"])
def dht22(
    request: pytest.FixtureRequest, built: dict[str, Path]
) -> Iterator[NativePlugin | ComponentPlugin]:
    plugin = plugin_under_test(
        ROOT / "plugins" / "dht22",
        request.param,
        board=SimBoard(seed=3),
        grants=DHT22_GRANTS,
        settings={"gpio_pin": 4, "led": 1},
    )
    yield plugin
    plugin.close()


def test_dht22_alarm_latches_once_in_both_modes(dht22: NativePlugin | ComponentPlugin) -> None:
    board = dht22.board
    assert isinstance(board, SimBoard)
    results = []
    for temperature in (22.0, 29.0, 29.5, 26.0):
        board.set_dht22(temperature, 50.0)
        results.append(dht22.poll())
    assert [r["alarm"] for r in results] == ["none", "high", "high", "none"]
    assert [r["poll_count"] for r in results] == [1, 2, 3, 4]
    assert results[1]["heat_index_c"] == pytest.approx(29.7, abs=0.1)  # NOAA: 84 °F, 50 % → 85 °F
    assert len(board.beeps) == 1
    assert dht22.leds.snapshot()[1] == (255, 140, 0)  # 26 °C: warm, alarm released


def test_grants_apply_natively_too(built: dict[str, Path]) -> None:
    plugin = NativePlugin(
        ROOT / "plugins" / "dht22",
        grants=Grants(gpio_pins=frozenset({4})),
        settings={"gpio_pin": 4, "led": 1},
    )
    with pytest.raises(GuestError, match="LED 1 is not granted to dht22"):
        plugin.poll()


def test_both_modes_agree_on_the_generic_world(built: dict[str, Path]) -> None:
    results = {}
    for mode in ("native", "component"):
        plugin = (
            plugin_under_test(
                ROOT / "tests" / "plugins" / "generic",
                mode,
                board=SimBoard(seed=9),
                wasm=built["generic"],
            )
            if mode == "component"
            else (
                plugin_under_test(
                    ROOT / "tests" / "plugins" / "generic", mode, board=SimBoard(seed=9)
                )
            )
        )
        results[mode] = (plugin.describe(), [plugin.poll() for _ in range(3)])
        plugin.close()
    assert results["native"][0] == results["component"][0]
    assert same(results["native"][1], results["component"][1])


def test_plain_values_match_the_component_shape(built: dict[str, Path]) -> None:
    plugin = NativePlugin(
        ROOT / "plugins" / "pi-monitor", grants=Grants(leds=frozenset({0}), fan=True)
    )
    record = plugin.poll()
    assert set(record) == {
        "cpu_temperature_c",
        "cpu_load_percent",
        "memory_used_percent",
        "uptime_seconds",
        "fan_on",
        "alarm",
        "poll_count",
    }
    assert record["alarm"] == "none"


def same(a: object, b: object) -> bool:
    """Equal, with floats compared to f32 precision (a component's f32 fields
    are rounded to single precision)."""
    if isinstance(a, float) and isinstance(b, float):
        return bool(a == pytest.approx(b, rel=1e-6))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_refused_settings_raise_the_same_error_in_both_modes(built: dict[str, Path]) -> None:
    from wasihost.testing import Mode, PluginLoadError

    modes: tuple[Mode, ...] = ("native", "component")
    for mode in modes:
        with pytest.raises(PluginLoadError, match="refused its settings: unknown setting"):
            plugin_under_test(ROOT / "plugins" / "dht22", mode, settings={"hot_on": 30})


def test_a_stale_build_is_refused(tmp_path: Path, built: dict[str, Path]) -> None:
    import shutil

    from wasihost.authoring.build import build
    from wasihost.errors import BuildError

    project = tmp_path / "project"
    shutil.copytree(ROOT / "plugins" / "pi-monitor", project / "plugins" / "pi-monitor")
    shutil.copytree(ROOT / "plugins" / "_shared", project / "plugins" / "_shared")
    shutil.copytree(ROOT / "wit", project / "wit")
    build(["pi-monitor"], plugins_dir=project / "plugins", wit_dir=project / "wit",
          out_dir=project / "build", echo=lambda _: None)  # fmt: skip
    app = project / "plugins" / "pi-monitor" / "app.py"
    app.write_text(app.read_text() + "\n# an edit after the build\n")
    with pytest.raises(BuildError, match="older than the sources"):
        ComponentPlugin(project / "plugins" / "pi-monitor")


def test_load_module_keeps_plugins_apart() -> None:
    from wasihost.testing import load_module

    climate = load_module(ROOT / "plugins" / "dht22", "climate")
    assert climate.dew_point_c(20.0, 50.0) == pytest.approx(9.3, abs=0.1)
    iaq = load_module(ROOT / "plugins" / "bme680", "iaq")
    assert iaq.band(25) == "good"


def test_bindings_are_regenerated_when_the_wit_changes(tmp_path: Path) -> None:
    import shutil

    from wasihost.authoring.bindings import bindings_for
    from wasihost.runtime.manifest import Manifest

    wit = tmp_path / "wit"
    shutil.copytree(ROOT / "wit", wit)
    first = bindings_for(Manifest("sensor-plugin"), wit, tmp_path / "bindings")
    generated = first / "wit_world" / "exports" / "__init__.py"
    assert "Read the sensor and report" in generated.read_text()  # the doc comment
    contract = wit / "plugin.wit"
    contract.write_text(contract.read_text().replace("/// Read the sensor and report", "/// Read"))
    second = bindings_for(Manifest("sensor-plugin"), wit, tmp_path / "bindings")
    assert second == first
    assert "Read the sensor and report" not in generated.read_text()
