"""Loading and validating ``config/host.toml``.

The keys are the seed host's (``[polling]``, ``[sensors.*]``, ``[logging]``,
``[plugins.<name>]``) plus what this host needs (``[board]``, ``[web]``).
Validation is strict on purpose: a typo in a key or a string where a number
belongs must stop the host with a message naming the file and the key,
rather than silently fall back to a default on a device nobody watches.
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from wasihost.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("config/host.toml")


def _parse_i2c_address(value: Any) -> Any:
    """Accept ``"0x77"`` (the seed's form) or an integer; range-checked by the field."""
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f'expected an I2C address like "0x77", got {value!r}') from None
    return value


I2cAddress = Annotated[int, BeforeValidator(_parse_i2c_address), Field(ge=0x03, le=0x77)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PollingConfig(_Section):
    interval_seconds: float = Field(2.0, gt=0, le=3600)


class Dht22SensorConfig(_Section):
    gpio_pin: int = Field(4, ge=0, le=27, description="BCM GPIO pin of the DHT22 data line")


class Bme680SensorConfig(_Section):
    i2c_address: I2cAddress = 0x77


class SensorsConfig(_Section):
    dht22: Dht22SensorConfig = Dht22SensorConfig()
    bme680: Bme680SensorConfig = Bme680SensorConfig()


class LoggingConfig(_Section):
    level: Literal["trace", "debug", "info", "warn", "warning", "error"] = "info"
    show_sensor_data: bool = True


class GrantsConfig(_Section):
    """Explicit grants; a key left out keeps its default (see ``plugin_specs``)."""

    leds: list[Annotated[int, Field(ge=0)]] | None = None
    gpio_pins: list[Annotated[int, Field(ge=0, le=27)]] | None = None
    i2c_addresses: list[I2cAddress] | None = None
    buzzer: bool | None = None
    fan: bool | None = None


class PluginConfig(_Section):
    enabled: bool = True
    led: int | None = Field(None, ge=0, description="LED index granted to the plugin")
    world: str | None = Field(None, description="WIT world; default '<name>-plugin'")
    wasm: str | None = Field(None, description="component path; default 'build/<name>.wasm'")
    timeout_ms: int = Field(1000, ge=1, le=600_000)
    max_memory_mb: int = Field(64, ge=16, le=4096)
    max_log_lines_per_minute: int = Field(120, ge=1, le=100_000)
    max_actuator_changes_per_minute: int = Field(6, ge=1, le=600)
    grants: GrantsConfig = GrantsConfig()
    settings: dict[str, Any] = Field(default_factory=dict)


class SupervisionConfig(_Section):
    """How the host treats a plugin that keeps trapping."""

    backoff_initial_seconds: float = Field(1.0, gt=0, le=3600)
    backoff_max_seconds: float = Field(60.0, gt=0, le=86_400)
    quarantine_after_traps: int = Field(5, ge=1, le=1000)
    quarantine_window_seconds: float = Field(600.0, gt=0, le=86_400)


# BCM pins the Pi board's buses own: I2C1 (SDA 2, SCL 3) and SPI0 (CE1 7, CE0 8,
# MISO 9, MOSI 10, SCLK 11). A relay on one of them would fight the bus driver.
PI_BUS_PINS = frozenset({2, 3, 7, 8, 9, 10, 11})


class PiBoardConfig(_Section):
    """``[board.pi]``: where the Raspberry Pi board finds its devices.

    The DHT22 pin is not here: it is ``[sensors.dht22] gpio_pin``, the pin the
    ``dht22`` plugin is granted, so the two can never disagree.
    """

    i2c_bus: int = Field(1, ge=0, le=255, description="the N of /dev/i2c-N")
    spi_device: str = Field("/dev/spidev0.0", description="spidev node driving the WS2812B data")
    led_brightness: float = Field(0.3, ge=0.0, le=1.0, description="scales every LED colour")
    gpio_chip: str = Field("/dev/gpiochip0", description="chip of the 40-pin header lines")
    buzzer_pin: int = Field(17, ge=0, le=27, description="BCM pin of the buzzer relay")
    buzzer_active_low: bool = True
    fan_pin: int = Field(27, ge=0, le=27, description="BCM pin of the fan relay")
    fan_active_low: bool = True

    @model_validator(mode="after")
    def _pins_do_not_collide(self) -> PiBoardConfig:
        if self.buzzer_pin == self.fan_pin:
            raise ValueError(f"buzzer_pin and fan_pin are both GPIO {self.fan_pin}")
        for key in ("buzzer_pin", "fan_pin"):
            pin = getattr(self, key)
            if pin in PI_BUS_PINS:
                raise ValueError(
                    f"{key}: GPIO {pin} belongs to the I2C or SPI bus "
                    f"(reserved: {sorted(PI_BUS_PINS)})"
                )
        return self


class BoardConfig(_Section):
    kind: Literal["sim", "pi"] = "sim"
    led_count: int = Field(11, ge=1, le=1024)
    seed: int | None = Field(None, description="simulated board RNG seed; None = random")
    pi: PiBoardConfig = PiBoardConfig()


class WebConfig(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(3000, ge=0, le=65535)
    # Bearer token for state-changing endpoints; WASIHOST_TOKEN overrides it.
    # Without either, those endpoints are disabled.
    token: str | None = Field(None, min_length=16)


class HistoryConfig(_Section):
    enabled: bool = True
    path: str = "data/history.sqlite3"
    retention_days: float = Field(7.0, gt=0, le=3650)


class ReloadConfig(_Section):
    enabled: bool = True


class StateConfig(_Section):
    dir: str = "data/state"
    save_interval_seconds: float = Field(60.0, ge=1, le=86_400)


class NodeConfig(_Section):
    # The node's name in MQTT topics, Home Assistant and the fleet view;
    # default: the host name, lower-cased with anything but [a-z0-9_-] replaced.
    id: str | None = Field(None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")


class MqttConfig(_Section):
    enabled: bool = False
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str | None = None  # default: the node id
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None  # with tls; default: the system's CAs
    base_topic: str | None = None  # default: wasihost/<node id>
    qos: Literal[0, 1, 2] = 1
    keepalive_seconds: int = Field(30, ge=5, le=3600)
    outbox_path: str = "data/outbox.sqlite3"
    outbox_max_messages: int = Field(100_000, ge=100, le=10_000_000)
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # How long Home Assistant shows a value before marking it unavailable;
    # default: three poll intervals (at least 60 s).
    expire_after_seconds: int | None = Field(None, ge=1, le=86_400)


class FleetConfig(_Section):
    role: Literal["node", "hub"] = "node"
    # A node whose last message is older than this shows as offline on the hub.
    offline_after_seconds: float = Field(60.0, gt=0, le=86_400)


class RuntimeConfig(_Section):
    # "compiled": each call goes through a plan built once per function, converting
    # in C (fastest; "typed" where the C module is not built); "typed": the same
    # plans in Python; "generic": wasmtime-py's public API, the fallback should the
    # others ever misbehave after an upgrade.
    call_path: Literal["compiled", "typed", "generic"] = "compiled"


class _HostFile(_Section):
    polling: PollingConfig = PollingConfig()
    sensors: SensorsConfig = SensorsConfig()
    logging: LoggingConfig = LoggingConfig()
    plugins: dict[str, PluginConfig] = Field(default_factory=dict)
    board: BoardConfig = BoardConfig()
    web: WebConfig = WebConfig()
    history: HistoryConfig = HistoryConfig()
    reload: ReloadConfig = ReloadConfig()
    state: StateConfig = StateConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    node: NodeConfig = NodeConfig()
    mqtt: MqttConfig = MqttConfig()
    fleet: FleetConfig = FleetConfig()
    runtime: RuntimeConfig = RuntimeConfig()


@dataclass(frozen=True)
class HostConfig:
    """A validated configuration. Plugin keys are normalised to kebab-case
    (``pi_monitor`` → ``pi-monitor``), the form used for plugin folders."""

    path: Path
    polling: PollingConfig
    sensors: SensorsConfig
    logging: LoggingConfig
    plugins: dict[str, PluginConfig]
    board: BoardConfig
    web: WebConfig
    history: HistoryConfig
    reload: ReloadConfig
    state: StateConfig
    supervision: SupervisionConfig
    node: NodeConfig
    mqtt: MqttConfig
    fleet: FleetConfig
    runtime: RuntimeConfig
    plugin_keys: dict[str, str]  # normalised name -> key as written in the file

    @property
    def node_id(self) -> str:
        """``[node] id``, else the host name made safe for MQTT topics and entity ids."""
        if self.node.id:
            return self.node.id
        cleaned = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-")
        return cleaned[:64] or "wasihost"

    def world_of(self, name: str) -> str:
        return self.plugins[name].world or f"{name}-plugin"

    def wasm_of(self, name: str) -> Path:
        configured = self.plugins[name].wasm
        return Path(configured) if configured else Path("build") / f"{name}.wasm"


def _format_errors(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid configuration"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        got = item.get("input")
        own_message = item["type"] == "value_error"
        shown = "" if own_message or isinstance(got, dict) or got is None else f" (got {got!r})"
        lines.append(f"  {key}: {message}{shown}")
    return "\n".join(lines)


def parse_config(data: dict[str, Any], path: Path = DEFAULT_CONFIG_PATH) -> HostConfig:
    """Validate already-parsed TOML data; ``path`` is only used in messages."""
    try:
        raw = _HostFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
    plugins: dict[str, PluginConfig] = {}
    keys: dict[str, str] = {}
    for key, plugin in raw.plugins.items():
        name = key.replace("_", "-")
        if name in plugins:
            raise ConfigError(f"{path}: plugins.{key}: plugin '{name}' is configured twice")
        leds = [("led", plugin.led)] if plugin.led is not None else []
        leds += [(f"grants.leds[{i}]", led) for i, led in enumerate(plugin.grants.leds or [])]
        for where, led in leds:
            if led >= raw.board.led_count:
                raise ConfigError(
                    f"{path}: plugins.{key}.{where}: LED index {led} is outside the strip "
                    f"(expected 0..{raw.board.led_count - 1}, "
                    f"board.led_count = {raw.board.led_count})"
                )
        interval_ms = raw.polling.interval_seconds * 1000
        if plugin.timeout_ms > interval_ms and "timeout_ms" not in plugin.model_fields_set:
            # The default deadline never outlasts a short poll interval.
            plugin = plugin.model_copy(update={"timeout_ms": max(1, int(interval_ms))})
        elif plugin.timeout_ms > interval_ms:
            raise ConfigError(
                f"{path}: plugins.{key}.timeout_ms: {plugin.timeout_ms} ms is longer than the "
                f"poll interval ({raw.polling.interval_seconds} s); a plugin hitting it would "
                "delay every cycle"
            )
        plugins[name] = plugin
        keys[name] = key
    # A pydantic model iterates as (field, value) pairs, sub-models kept as they are:
    # every section of the file becomes the HostConfig field of the same name.
    return HostConfig(path=path, plugin_keys=keys, **{**dict(raw), "plugins": plugins})


def load_config(path: Path = DEFAULT_CONFIG_PATH) -> HostConfig:
    """Read and validate ``path``; every failure is a ``ConfigError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: configuration file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration file: {exc.strerror}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(data, path)
