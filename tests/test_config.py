"""Config validation: bad input is refused with the file and key named."""

from __future__ import annotations

from pathlib import Path

import pytest

from wasihost.config import load_config, parse_config
from wasihost.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_is_valid() -> None:
    config = load_config(ROOT / "config" / "host.toml")
    assert config.sensors.bme680.i2c_address == 0x77
    assert config.plugins["pi-monitor"].led == 0  # the seed's [plugins.pi_monitor] key
    assert config.world_of("pi-monitor") == "pi-monitor-plugin"
    assert config.wasm_of("dht22") == Path("build/dht22.wasm")


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
