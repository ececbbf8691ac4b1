"""What the host decides about each plugin from the config: world, grants, settings, limits.

Every plugin is configured the same way: its grants are its
``[plugins.<name>.grants]``, each kind left out at its default from its
world's imports (``wasihost.grants``); its settings are its
``[plugins.<name>.settings]``. Shorthands (``led``, the seed's ``[sensors.*]``)
were spelled out as grants and settings when the config was loaded.
"""

from __future__ import annotations

from pathlib import Path

from wasihost.config import HostConfig, PluginConfig
from wasihost.errors import ConfigError
from wasihost.grants import Grants, grants_for
from wasihost.grants import devices_of as devices_of  # host.py and doctor.py import it here
from wasihost.runtime.contract import Contract
from wasihost.runtime.manifest import ManifestError, read_manifest
from wasihost.runtime.plugin import PluginSpec
from wasihost.runtime.shared import RUNTIME_WORLD
from wasihost.runtime.supervision import SupervisionPolicy

PI_GPIO_TIMEOUT_MS = 1800


def _grants(plugin: PluginConfig, imports: frozenset[str]) -> Grants:
    return grants_for(plugin.grants.model_dump(exclude_none=True), imports)


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
        if world == RUNTIME_WORLD:
            key = f"plugins.{config.plugin_keys[name]}.world"
            raise ConfigError(f"{config.path}: {key}: {world} is the shared runtime, not a plugin")
        source, state = _source(config, name, world)
        grants = _grants(plugin, contract.worlds[world].imports)
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
                settings=dict(plugin.settings),
                grants=grants,
                timeout_ms=timeout_ms,
                max_memory_mb=plugin.max_memory_mb,
                max_log_lines_per_minute=plugin.max_log_lines_per_minute,
                max_actuator_changes_per_minute=plugin.max_actuator_changes_per_minute,
                supervision=supervision,
                source=source,
                state=state,
                pin=plugin.pin,
            )
        )
    return specs


def _source(config: HostConfig, name: str, world: str) -> tuple[Path | None, bool]:
    """A source plugin's folder and whether it exports ``state``; (None, False)
    for a component. The folder's plugin.toml must agree with the config."""
    plugin = config.plugins[name]
    key = f"plugins.{config.plugin_keys[name]}"
    if plugin.source is not None and plugin.wasm is not None:
        raise ConfigError(f"{config.path}: {key}: give source or wasm, not both")
    folder = config.source_of(name)
    if folder is None:
        return None, False
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        raise ConfigError(f"{config.path}: {key}.source: {exc}") from None
    if manifest.kind != "source":
        raise ConfigError(
            f'{config.path}: {key}.source: {folder}/plugin.toml says kind = "{manifest.kind}": '
            "build it and give its wasm instead"
        )
    if manifest.world != world:
        raise ConfigError(
            f"{config.path}: {key}.source: {folder}/plugin.toml is for world "
            f"{manifest.world}, the config says {world}"
        )
    return folder, manifest.state


def grants_of(config: HostConfig, name: str, imports: frozenset[str]) -> Grants:
    """The grants plugin ``name`` gets, its world importing ``imports``; unlike
    ``plugin_specs``, it looks at no other plugin and at a disabled one too."""
    return _grants(config.plugins[name], imports)
