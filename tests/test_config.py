"""Config validation: bad input is refused with the file and key named."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from wasihost.config import HostConfig, load_config, parse_config
from wasihost.errors import ConfigError
from wasihost.grants import Grants

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # plugins/ and build/ are found from where `make run` runs
    config = load_config(ROOT / "config" / "host.toml")
    assert config.sensors.bme680.i2c_address == 0x77
    assert config.plugins["pi-monitor"].led == 0  # the seed's [plugins.pi_monitor] key
    assert config.world_of("pi-monitor") == "pi-monitor-plugin"
    # The seeds are source plugins: their folders run in the shared runtime.
    assert config.source_of("dht22") == Path("plugins/dht22")
    assert config.wasm_of("dht22") == Path("build/python-runtime.wasm")
    assert config.world_of("sht31") == "sensor-plugin"


def test_a_plugin_is_a_source_plugin_only_where_its_folder_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, toml in (
        ("src", 'world = "sensor-plugin"\n'),
        ("comp", 'world = "sensor-plugin"\nkind = "component"\n'),
    ):
        (tmp_path / "plugins" / name).mkdir(parents=True)
        (tmp_path / "plugins" / name / "app.py").write_text("")
        (tmp_path / "plugins" / name / "plugin.toml").write_text(toml)
    config = parse_config({"plugins": {
        "src": {}, "comp": {}, "none": {}, "given": {"wasm": "x.wasm"},
        "elsewhere": {"source": "other/folder"},
    }})  # fmt: skip
    assert config.source_of("src") == Path("plugins/src")
    assert config.world_of("src") == "sensor-plugin"  # from its plugin.toml
    assert config.wasm_of("src") == Path("build/python-runtime.wasm")
    assert config.source_of("comp") is None
    assert config.wasm_of("comp") == Path("build/comp.wasm")
    assert config.source_of("none") is None and config.wasm_of("none") == Path("build/none.wasm")
    assert config.source_of("given") is None and config.wasm_of("given") == Path("x.wasm")
    assert config.source_of("elsewhere") == Path("other/folder")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"polling": {"interval_seconds": "2"}}, "polling.interval_seconds"),
        ({"polling": {"interval_seconds": 0}}, "polling.interval_seconds"),
        ({"plugins": {"dht22": {"led": "one"}}}, "plugins.dht22.led"),
        ({"plugins": {"dht22": {"ledd": 1}}}, "plugins.dht22.ledd: unknown key"),
        ({"sensors": {"bme680": {"i2c_address": "0xZZ"}}}, "sensors.bme680.i2c_address"),
        ({"sensors": {"bme680": {"i2c_address": "0x99"}}}, "sensors.bme680.i2c_address"),
        ({"sensors": {"dht22": {"gpio_pin": 99}}}, "sensors.dht22.gpio_pin"),
        ({"logging": {"level": "loud"}}, "logging.level"),
        ({"board": {"kind": "arduino"}}, "board.kind"),
        ({"web": {"port": 70000}}, "web.port"),
        ({"plugins": {"dht22": {"led": 11}}}, "plugins.dht22.led: LED index 11"),
        ({"mystery": {}}, "mystery: unknown key"),
        ({"node": {"id": "deploy"}}, "node.id: 'deploy' is reserved"),
    ],
)
def test_invalid_config_names_the_key(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("config/host.toml"))
    message = str(info.value)
    assert message.startswith("config/host.toml: ")
    assert expected in message


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: configuration file not found"):
        load_config(tmp_path / "missing.toml")


def test_bad_toml_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "host.toml"
    path.write_text("[polling]\ninterval_seconds = = 2\n")
    with pytest.raises(ConfigError, match=r"host.toml: not valid TOML: .*line 2"):
        load_config(path)


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        (
            {"dht22": {"led": 1}, "bme680": {"led": 1}},
            "plugins.bme680.led: LED 1 is already granted to plugin 'dht22' (plugins.dht22.led)",
        ),
        (
            {"dht22": {"grants": {"leds": [0, 3]}}, "sht31": {"led": 3}},
            "plugins.sht31.led: LED 3 is already granted to plugin 'dht22' "
            "(plugins.dht22.grants.leds[1])",
        ),
    ],
)
def test_an_led_granted_to_two_plugins_is_refused_naming_both(
    plugins: dict[str, Any], expected: str
) -> None:
    """Both would write it every cycle and the LED would flicker between them."""
    with pytest.raises(ConfigError) as info:
        parse_config({"plugins": plugins}, Path("config/host.toml"))
    assert str(info.value).startswith(f"config/host.toml: {expected}")


def test_an_led_shared_with_a_disabled_plugin_or_repeated_by_one_is_fine() -> None:
    config = parse_config(
        {
            "plugins": {
                "sht31": {"led": 1, "enabled": False},
                "dht22": {"led": 1, "grants": {"leds": [1]}},
                "bme680": {"led": 1, "enabled": False},
            }
        }
    )
    assert config.plugins["dht22"].grants.leds == [1]


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("a/b", "lower-case letters"),  # a topic level: wasihost/<node>/a/b/state
        ("x+", "lower-case letters"),  # an MQTT wildcard in a topic it publishes to
        ("../etc", "lower-case letters"),  # a folder under [deploy] dir and snapshots
        ("Big Name", "lower-case letters"),
        ("", "lower-case letters"),
        ("9lives", "lower-case letters"),
        ("rollout", "reserved"),  # wasihost/<node>/rollout/<plugin> holds deploy reports
    ],
)
def test_a_plugin_name_that_cannot_be_a_topic_level_or_a_folder_is_refused(
    key: str, why: str
) -> None:
    with pytest.raises(ConfigError, match=why) as error:
        parse_config({"plugins": {key: {"source": "plugins/dht22"}}})
    assert f"plugins.{key}" in str(error.value)


def test_plugin_names_as_written_in_the_seed_config_are_accepted() -> None:
    config = parse_config(
        {"plugins": {name: {"enabled": False} for name in ("dht22", "pi_monitor", "my-fan2")}}
    )
    assert sorted(config.plugins) == ["dht22", "my-fan2", "pi-monitor"]


def test_plugin_configured_twice_is_refused() -> None:
    with pytest.raises(ConfigError, match="configured twice"):
        parse_config({"plugins": {"pi_monitor": {}, "pi-monitor": {}}})


def test_every_section_of_the_file_reaches_host_config() -> None:
    import dataclasses

    from wasihost.config import HostConfig, _HostFile

    fields = {field.name for field in dataclasses.fields(HostConfig)}
    assert fields == set(_HostFile.model_fields) | {"path", "plugin_keys"}
    config = parse_config(
        {"web": {"port": 3001}, "plugins": {"pi_monitor": {"led": 0}}}, Path("x.toml")
    )
    assert config.path == Path("x.toml")
    assert config.web.port == 3001
    assert config.plugins["pi-monitor"].led == 0
    assert config.plugin_keys == {"pi-monitor": "pi_monitor"}
    assert config.runtime.call_path == "compiled"


# The seed's spelling of the same host.toml before the grants were written out.
OLD_STYLE = """
[sensors.dht22]
gpio_pin = 4

[sensors.bme680]
i2c_address = "0x77"

[plugins.pi_monitor]
led = 0

[plugins.dht22]
led = 1

[plugins.bme680]
led = 2

[plugins.dashboard]

[plugins.sht31]
world = "sensor-plugin"
led = 3

[plugins.sht31.grants]
i2c_addresses = ["0x44"]
"""


def _specs(config: HostConfig) -> dict[str, tuple[Any, str]]:
    from wasihost.runtime.contract import load_contract
    from wasihost.specs import plugin_specs

    # The settings as the plugin receives them: JSON text, key order included.
    return {
        s.name: (s.grants, json.dumps(s.settings)) for s in plugin_specs(config, load_contract())
    }


def test_the_seeds_sensor_keys_configure_the_plugins_as_their_grants_do() -> None:
    old = parse_config(tomllib.loads(OLD_STYLE), Path("old.toml"))
    new = load_config(ROOT / "config" / "host.toml")
    assert _specs(old) == _specs(new)
    assert old.sensors == new.sensors
    assert _specs(new)["dht22"][1] == '{"gpio_pin": 4, "led": 1}'


def test_a_plugins_own_grants_and_settings_win_over_its_sensor_key() -> None:
    config = parse_config(
        {
            "sensors": {"dht22": {"gpio_pin": 17}},
            "plugins": {
                "dht22": {"led": 1, "grants": {"gpio_pins": [5]}, "settings": {"gpio_pin": 9}},
                "bme680": {"led": 2, "settings": {"led": 7}},
            },
        }
    )
    specs = _specs(config)
    assert specs["dht22"][0].gpio_pins == {5}
    assert specs["dht22"][1] == '{"gpio_pin": 9, "led": 1}'
    assert specs["bme680"][0].i2c_addresses == {0x77}  # the section's default
    assert specs["bme680"][1] == '{"i2c_address": 119, "led": 7}'
    assert config.sensors.dht22.gpio_pin == 17  # what the file writes there


def test_config_sensors_follows_the_new_spelling() -> None:
    """The Pi board and ``wasihost doctor`` still read ``config.sensors``."""
    config = parse_config(
        {
            "plugins": {
                "dht22": {"grants": {"gpio_pins": [17]}, "settings": {"gpio_pin": 17}},
                "bme680": {
                    "grants": {"i2c_addresses": ["0x76"]},
                    "settings": {"i2c_address": 0x76},
                },
            }
        }
    )
    assert config.sensors.dht22.gpio_pin == 17
    assert config.sensors.bme680.i2c_address == 0x76
    unusable = parse_config({"plugins": {"dht22": {"settings": {"gpio_pin": "seventeen"}}}})
    assert unusable.sensors.dht22.gpio_pin == 4  # the plugin refuses it; the board keeps 4
    assert parse_config({}).sensors.dht22.gpio_pin == 4


def test_a_plugin_of_another_name_gets_no_sensor_key() -> None:
    plugins = {"x": {"world": "dht22-plugin"}}
    specs = _specs(parse_config({"sensors": {"dht22": {"gpio_pin": 17}}, "plugins": plugins}))
    assert specs["x"] == (Grants(buzzer=True), "{}")  # the buzzer: its world imports it


FILTERS_TOML = """
[[plugins.dht22.filters.temperature]]
offset = -0.5

[[plugins.dht22.filters.temperature]]
median = { window_size = 5, send_every = 1 }

[plugins.bme680.filters]
gas_resistance = [{ median = {} }, { throttle_average = "1min" }]
iaq = [{ filter_out = [nan, 500.0] }, { timeout = { timeout = 30, value = "last" } }]
"""


def test_filters_are_ordered_lists_per_measurement_in_either_toml_form() -> None:
    from wasihost.filters import FilterOut, Median, Offset, ThrottleAverage, Timeout

    config = parse_config(tomllib.loads(FILTERS_TOML), Path("host.toml"))
    assert config.plugins["dht22"].filters == {
        "temperature": (Offset(-0.5), Median(window_size=5, send_every=1)),
    }
    bme680 = config.plugins["bme680"].filters
    assert bme680["gas_resistance"] == (Median(), ThrottleAverage(60.0))
    (out, timeout) = bme680["iaq"]
    assert isinstance(out, FilterOut) and out.values[1] == 500.0
    assert timeout == Timeout(30.0, None)
    assert parse_config({"plugins": {"dht22": {}}}).plugins["dht22"].filters == {}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (
            {"temperature": [{"offset": -0.5}, {"median": {"window_size": 0}}]},
            "plugins.dht22.filters.temperature[1].median.window_size: must be at least 1 (got 0)",
        ),
        (
            {"temperature": [{"smooth": 3}]},
            "plugins.dht22.filters.temperature[0].smooth: unknown filter (expected one of: offset,",
        ),
        (
            {"humidity": [{"exponential_moving_average": {"alpha": 2}}]},
            "plugins.dht22.filters.humidity[0].exponential_moving_average.alpha: must be above 0 "
            "and at most 1 (got 2.0)",
        ),
        (
            {"t": [{"calibrate_linear": ["20 -> 21"]}]},
            "plugins.dht22.filters.t[0].calibrate_linear.datapoints: needs at least 2 datapoints",
        ),
        (
            {"t": [{"calibrate_linear": ["20 -> 21", "twenty -> 22"]}]},
            "plugins.dht22.filters.t[0].calibrate_linear.datapoints[1]: expected a datapoint like",
        ),
        (
            {"t": [{"clamp": {"min_value": 10, "max_value": 0}}]},
            "plugins.dht22.filters.t[0].clamp.min_value: must not be above max_value (0) (got 10)",
        ),
        (
            {"t": [{"throttle": "a while"}]},
            'plugins.dht22.filters.t[0].throttle: expected seconds, or a duration like "30s"',
        ),
        ({"t": {"offset": 1}}, "plugins.dht22.filters.t: expected a list of filters"),
        ({"t": [{"offset": 1, "round": 1}]}, "plugins.dht22.filters.t[0]: expected one filter"),
        ([1], "plugins.dht22.filters: expected a table of measurement name = list of filters"),
    ],
)
def test_a_bad_filter_names_its_entry_and_the_file(filters: object, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"plugins": {"dht22": {"filters": filters}}}, Path("config/host.toml"))
    assert str(info.value).startswith(f"config/host.toml: {expected}")


def test_filters_of_a_plugin_written_with_underscores_reach_its_normalised_name() -> None:
    data = {"plugins": {"pi_monitor": {"filters": {"cpu_load": [{"round": 0}]}}}}
    config = parse_config(data)
    assert set(config.plugins["pi-monitor"].filters) == {"cpu_load"}
    with pytest.raises(ConfigError, match=r"plugins\.pi_monitor\.filters\.cpu_load\[0\]\.round"):
        parse_config({"plugins": {"pi_monitor": {"filters": {"cpu_load": [{"round": 1.5}]}}}})


def test_the_documented_filter_examples_are_valid() -> None:
    text = (ROOT / "docs" / "CONFIG.md").read_text(encoding="utf-8")
    section = text.split("## Sensor filters", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```toml\n")[1:]
    assert len(blocks) >= 6
    for block in blocks:
        config = parse_config(tomllib.loads(block.split("```", 1)[0]), Path("CONFIG.md"))
        assert any(plugin.filters for plugin in config.plugins.values())


# -- [trust] keys and [plugins.<name>] pin (docs/BUNDLES.md) -----------------------
KEY = "ed25519:" + "A" * 43 + "="  # 32 bytes of base64


def test_trusted_keys_and_a_pin_are_read_as_written() -> None:
    pin = "sha256:" + "0123456789abcdef" * 4
    config = parse_config({"trust": {"keys": [KEY]}, "plugins": {"sht31": {"pin": pin}}})
    assert config.trust.keys == [KEY]
    assert config.plugins["sht31"].pin == pin
    assert parse_config({}).trust.keys == []  # by default: no key, every bundle refused


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"trust": {"keys": ["AAAA"]}}, 'trust.keys.0: expected "ed25519:<base64 of 32 bytes>"'),
        ({"trust": {"keys": ["ed25519:not base64!"]}}, "trust.keys.0: not base64"),
        ({"trust": {"keys": [KEY, "ed25519:AAAA"]}}, "trust.keys.1: 3 bytes, not 32"),
        ({"trust": {"keys": ["ed25519-private:" + "A" * 43 + "="]}}, "that is a private key"),
        ({"trust": {"keys": [KEY, KEY]}}, "trust: keys[1]: ed25519:AAAAAAAAAAAA… is listed twice"),
        ({"trust": {"keys": KEY}}, "trust.keys: Input should be a valid list"),
        ({"trust": {"key": [KEY]}}, "trust.key: unknown key"),
        ({"plugins": {"x": {"pin": "abc"}}}, 'plugins.x.pin: expected "sha256:<64 lower-case hex'),
        ({"plugins": {"x": {"pin": "sha256:" + "A" * 64}}}, "plugins.x.pin: expected"),
        ({"plugins": {"x": {"pin": 1}}}, "plugins.x.pin: Input should be a valid string"),
    ],
)
def test_bad_trust_keys_and_pins_are_refused_naming_the_key(
    data: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(data, Path("node.toml"))
    message = str(caught.value)
    assert message.startswith("node.toml: invalid configuration")
    assert expected in message, message


KEY = "ed25519:" + "A" * 43 + "="  # 32 zero bytes: a well-formed public key


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"node": {"labels": ["Canary"]}}, "node.labels.0"),
        ({"node": {"labels": ["a/b"]}}, "node.labels.0"),
        ({"deploy": {"gate_polls": 0}}, "deploy.gate_polls"),
        ({"deploy": {"gate_seconds": 0}}, "deploy.gate_seconds"),
        ({"deploy": {"enabled": True}, "trust": {"keys": [KEY]}}, "mqtt.enabled"),
        ({"deploy": {"enabled": True}, "mqtt": {"enabled": True}}, "trust.keys"),
    ],
)
def test_deploy_and_labels_are_checked_naming_the_key(data: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, Path("x.toml"))
    assert expected in str(info.value)


def test_deploy_with_mqtt_and_a_trusted_key_is_accepted() -> None:
    config = parse_config(
        {
            "node": {"labels": ["canary", "attic_2"]},
            "mqtt": {"enabled": True},
            "trust": {"keys": [KEY]},
            "deploy": {"enabled": True, "gate_polls": 3, "gate_seconds": 30},
        },
        Path("x.toml"),
    )
    assert config.node.labels == ["canary", "attic_2"]
    assert config.deploy.enabled and config.deploy.gate_polls == 3
    assert config.deploy.dir == "data/deploy" and config.deploy.gate_seconds == 30


def test_more_labels_than_a_versions_message_carries_are_refused() -> None:
    """The deployer learns a node's labels from its versions message (32 at most):
    a 33rd would be a label no deployment could find the node by."""
    with pytest.raises(ConfigError, match=r"node\.labels"):
        parse_config({"node": {"labels": [f"l{i}" for i in range(33)]}})
    assert len(parse_config({"node": {"labels": [f"l{i}" for i in range(32)]}}).node.labels) == 32
