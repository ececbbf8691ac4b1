"""What the host decides about each plugin from the config: world, grants, settings, limits.

Grants default from the seed's config: ``led`` grants that LED; the
``[sensors.dht22]`` pin and the ``[sensors.bme680]`` address are granted to
the plugins of those names; buzzer and fan go to plugins whose world
imports them. ``[plugins.<name>.grants]`` overrides any of these key by key.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Any

from wasihost.capabilities import Grants
from wasihost.config import HostConfig, PluginConfig
from wasihost.errors import ConfigError
from wasihost.runtime.contract import Contract
from wasihost.runtime.plugin import PluginSpec
from wasihost.runtime.supervision import SupervisionPolicy

PI_GPIO_TIMEOUT_MS = 1800


def _grants(config: HostConfig, name: str, plugin: PluginConfig, imports: frozenset[str]) -> Grants:
    explicit = plugin.grants
    leds = {plugin.led} if plugin.led is not None else set()
    pins = {config.sensors.dht22.gpio_pin} if name == "dht22" else set()
    addresses = {config.sensors.bme680.i2c_address} if name == "bme680" else set()
    return Grants(
        leds=frozenset(explicit.leds if explicit.leds is not None else leds),
        gpio_pins=frozenset(explicit.gpio_pins if explicit.gpio_pins is not None else pins),
        i2c_addresses=frozenset(
            explicit.i2c_addresses if explicit.i2c_addresses is not None else addresses
        ),
        buzzer=explicit.buzzer if explicit.buzzer is not None else "buzzer-controller" in imports,
        fan=explicit.fan if explicit.fan is not None else "fan-controller" in imports,
    )


def devices_of(grants: Grants, imports: Set[str]) -> frozenset[str]:
    """The board devices a plugin with ``grants``, whose world imports ``imports``,
    can reach, named as ``BoardProblem.device`` names them."""
    named = {
        "dht22": bool(grants.gpio_pins),
        "i2c": bool(grants.i2c_addresses),
        "leds": bool(grants.leds),
        "buzzer": grants.buzzer,
        "fan": grants.fan,
        "cpu-temperature": "gpio-provider" in imports,
        "system": "system-info" in imports,
    }
    return frozenset(device for device, used in named.items() if used)


def _settings(config: HostConfig, name: str, plugin: PluginConfig) -> dict[str, Any]:
    """The JSON the plugin's ``configure`` receives: its sensor section, its LED,
    then its own ``settings`` table (which wins)."""
    settings: dict[str, Any] = {}
    if name == "dht22":
        settings["gpio_pin"] = config.sensors.dht22.gpio_pin
    if name == "bme680":
        settings["i2c_address"] = config.sensors.bme680.i2c_address
    if plugin.led is not None:
        settings["led"] = plugin.led
    settings.update(plugin.settings)
    return settings


def plugin_specs(config: HostConfig, contract: Contract) -> list[PluginSpec]:
    """A spec per enabled plugin; a world unknown to the contract is a ConfigError."""
    supervision = SupervisionPolicy(
        backoff_initial_s=config.supervision.backoff_initial_seconds,
        backoff_max_s=config.supervision.backoff_max_seconds,
        quarantine_after=config.supervision.quarantine_after_traps,
        window_s=config.supervision.quarantine_window_seconds,
    )
    specs = []
    for name, plugin in config.plugins.items():
        if not plugin.enabled:
            continue
        world = config.world_of(name)
        if world not in contract.worlds:
            known = ", ".join(sorted(contract.worlds))
            key = f"plugins.{config.plugin_keys[name]}.world"
            raise ConfigError(
                f"{config.path}: {key}: unknown world {world!r} (expected one of: {known})"
            )
        grants = _grants(config, name, plugin, contract.worlds[world].imports)
        timeout_ms = plugin.timeout_ms
        if (
            config.board.kind == "pi"
            and grants.gpio_pins
            and "timeout_ms" not in (plugin.model_fields_set)
        ):
            # The kernel's DHT22 driver can take its full 1 s timeout before it says a
            # read failed; with the default deadline the plugin would trap instead of
            # reporting why. The poll interval still bounds it.
            interval_ms = int(config.polling.interval_seconds * 1000)
            timeout_ms = min(max(timeout_ms, PI_GPIO_TIMEOUT_MS), interval_ms)
        specs.append(
            PluginSpec(
                name=name,
                world=world,
                wasm=config.wasm_of(name),
                settings=_settings(config, name, plugin),
                grants=grants,
                timeout_ms=timeout_ms,
                max_memory_mb=plugin.max_memory_mb,
                max_log_lines_per_minute=plugin.max_log_lines_per_minute,
                max_actuator_changes_per_minute=plugin.max_actuator_changes_per_minute,
                supervision=supervision,
            )
        )
    return specs


def grants_of(config: HostConfig, name: str, imports: frozenset[str]) -> Grants:
    """The grants plugin ``name`` gets, its world importing ``imports``; unlike
    ``plugin_specs``, it looks at no other plugin and at a disabled one too."""
    return _grants(config, name, config.plugins[name], imports)
