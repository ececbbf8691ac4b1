"""Loading and validating ``config/host.toml``.

The keys are the seed host's (``[polling]``, ``[sensors.*]``, ``[logging]``,
``[plugins.<name>]``) plus what this host needs (``[board]``, ``[web]``).
Validation is strict on purpose: a typo in a key or a string where a number
belongs must stop the host with a message naming the file and the key,
rather than silently fall back to a default on a device nobody watches.

Shorthands are spelled out here, once, so nothing after loading knows them:
a plugin's ``led`` and the seed's ``[sensors.*]`` keys become that plugin's
ordinary grants and settings (``_spelled_out``).
"""

from __future__ import annotations

import re
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from wasihost import content
from wasihost.bundle.keys import parse_public_key
from wasihost.errors import ConfigError
from wasihost.filters import FilterConfigError, FilterSpec, parse_filter
from wasihost.grants import GPIO_PINS, GRANTS, I2C_ADDRESSES, LEDS, Grant
from wasihost.runtime.manifest import Manifest, ManifestError, read_manifest

DEFAULT_CONFIG_PATH = Path("config/host.toml")


def _parse_i2c_address(value: Any) -> Any:
    """Accept ``"0x77"`` (the seed's form) or an integer; range-checked by the field."""
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            raise ValueError(f'expected an I2C address like "0x77", got {value!r}') from None
    return value


def _bounds(grant: Grant) -> Any:
    """The range a value of ``grant`` must be in, as a pydantic constraint."""
    low, high = grant.values or (None, None)
    return Field(ge=low, le=high)


I2cAddress = Annotated[int, BeforeValidator(_parse_i2c_address), _bounds(I2C_ADDRESSES)]
GpioPin = Annotated[int, _bounds(GPIO_PINS)]


def _pin(value: str) -> str:
    """A content hash as ``wasihost bundle hash`` prints it (``wasihost.content``)."""
    if not content.PATTERN.match(value):
        raise ValueError(
            'expected "sha256:<64 lower-case hex digits>", the content hash '
            f"wasihost bundle hash PLUGIN prints (got {value!r})"
        )
    return value


def _public_key(value: str) -> str:
    """A trusted key as ``wasihost bundle keygen`` prints it; checked here so a
    typo stops the host rather than silently trusting nothing."""
    parse_public_key(value)  # its ValueError says what is wrong
    return value


ContentHash = Annotated[str, AfterValidator(_pin)]
PublicKeyText = Annotated[str, AfterValidator(_public_key)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PollingConfig(_Section):
    interval_seconds: float = Field(2.0, gt=0, le=3600)


class Dht22SensorConfig(_Section):
    gpio_pin: GpioPin = Field(4, description="BCM GPIO pin of the DHT22 data line")


class Bme680SensorConfig(_Section):
    i2c_address: I2cAddress = 0x77


class SensorsConfig(_Section):
    """The seed's ``[sensors.*]``: another spelling of two plugins' grants and
    settings (``SENSOR_KEYS``). As ``HostConfig.sensors`` it is derived from
    whichever spelling the file uses, for code that still reads it there."""

    dht22: Dht22SensorConfig = Dht22SensorConfig()
    bme680: Bme680SensorConfig = Bme680SensorConfig()


@dataclass(frozen=True)
class SensorKey:
    """A key of a seed ``[sensors.<plugin>]`` section: a value granted to the
    plugin of that name and handed to it as the setting of the same name."""

    plugin: str
    key: str
    grant: Grant


SENSOR_KEYS = (
    SensorKey("dht22", "gpio_pin", GPIO_PINS),
    SensorKey("bme680", "i2c_address", I2C_ADDRESSES),
)


class LoggingConfig(_Section):
    level: Literal["trace", "debug", "info", "warn", "warning", "error"] = "info"
    # Log every reading each cycle; default: on the simulated board (a demo to
    # watch), off on a Pi (one line per reading every 2 s is 28 MB a day of log).
    show_sensor_data: bool | None = None


def _grant_field(grant: Grant) -> tuple[Any, None]:
    """How ``[plugins.<name>.grants]`` writes ``grant``: a list of its values
    (hex ones as "0x44" or a number) or true/false; None when left out."""
    if grant.is_switch:
        return (bool | None, None)
    parse = (BeforeValidator(_parse_i2c_address),) if grant.hex else ()
    value = Annotated[(int, *parse, _bounds(grant))]
    return (list[value] | None, None)


# Explicit grants, one key per row of ``wasihost.grants.GRANTS``; a key left out
# keeps its default (see ``plugin_specs``). Type checkers see only the base: the
# fields exist at run time, so code reads them by the table's keys.
if TYPE_CHECKING:
    GrantsConfig = _Section
else:
    GrantsConfig = create_model(
        "GrantsConfig", __base__=_Section, **{grant.key: _grant_field(grant) for grant in GRANTS}
    )


class PluginConfig(_Section):
    # Filter specs are plain objects, parsed by ``_filters`` before validation.
    model_config = ConfigDict(
        extra="forbid", strict=True, frozen=True, arbitrary_types_allowed=True
    )

    enabled: bool = True
    led: int | None = Field(None, ge=0, description="LED index granted to the plugin")
    world: str | None = Field(None, description="WIT world; default '<name>-plugin'")
    wasm: str | None = Field(None, description="component path; default 'build/<name>.wasm'")
    source: str | None = Field(
        None, description="a source plugin's folder, run in the shared Python runtime"
    )
    timeout_ms: int = Field(1000, ge=1, le=600_000)
    max_memory_mb: int = Field(64, ge=16, le=4096)
    max_log_lines_per_minute: int = Field(120, ge=1, le=100_000)
    max_actuator_changes_per_minute: int = Field(6, ge=1, le=600)
    grants: GrantsConfig = GrantsConfig()
    settings: dict[str, Any] = Field(default_factory=dict)
    # [[plugins.<name>.filters.<measurement>]]: measurement name -> its filter chain,
    # in order (wasihost.filters; docs/CONFIG.md#sensor-filters).
    filters: dict[str, tuple[FilterSpec, ...]] = Field(default_factory=dict)
    # Load (and hot-reload to) only this content (docs/BUNDLES.md#pinning).
    pin: ContentHash | None = None


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

    The DHT22 pin is not here: the board reads the pin the ``dht22`` plugin is
    configured with (``HostConfig.sensors.dht22.gpio_pin`` derives it from
    either spelling), so the board and the plugin cannot disagree.
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
    # Statistics (min/mean/max): per 5 minutes kept this many days, per hour
    # this many (years: about 0.4 MB per measurement a year, measured).
    short_term_days: float = Field(10.0, gt=0, le=3650)
    long_term_days: float = Field(3650.0, gt=0, le=36500)
    # Readings are committed at most this often (0: every cycle); a crash loses
    # the readings not yet committed. Default: 60 on a Pi (its SD card), 0 on the
    # simulated board. See docs/CONFIG.md for the measured trade-off.
    commit_interval_seconds: float | None = Field(None, ge=0, le=3600)
    # Readings kept in memory while the database cannot be written (disk full,
    # card error); past this many the oldest are dropped and counted.
    max_unsaved_readings: int = Field(10_000, ge=100, le=1_000_000)


class ReloadConfig(_Section):
    enabled: bool = True


class StateConfig(_Section):
    dir: str = "data/state"
    save_interval_seconds: float = Field(60.0, ge=1, le=86_400)


# Topic levels under wasihost/ that are not nodes: a node of that name could write them.
RESERVED_NODE_IDS = frozenset({"deploy"})


# A node id or a label: one MQTT topic level (no "/", no wildcards), one spelling.
NODE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_LABELS = 32  # also what a versions message may carry (deploy/protocol.py)


class NodeConfig(_Section):
    # The node's name in MQTT topics, Home Assistant and the fleet view;
    # default: the host name, lower-cased with anything but [a-z0-9_-] replaced.
    id: str | None = Field(None, pattern=NODE_NAME)
    # Groups this node belongs to for deliveries (``wasihost/deploy/label/<label>/...``):
    # a label is one MQTT topic level, so only [a-z0-9_-].
    labels: list[Annotated[str, Field(pattern=NODE_NAME)]] = Field(
        default_factory=list, max_length=MAX_LABELS
    )

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str | None) -> str | None:
        if value in RESERVED_NODE_IDS:
            raise ValueError(
                f"{value!r} is reserved: wasihost/{value}/# holds the fleet's plugin deliveries, "
                "and a broker's usual node ACL (write wasihost/<node>/#) would let this node "
                "publish them"
            )
        return value


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
    # Messages wait in memory and are written to the outbox's SQLite only once the
    # oldest has waited this long (0: at once). Default: 60 on a Pi, 0 on the
    # simulated board. See docs/CONFIG.md for the measured trade-off.
    outbox_write_interval_seconds: float | None = Field(None, ge=0, le=3600)
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    # How long Home Assistant shows a value before marking it unavailable;
    # default: three poll intervals (at least 60 s).
    expire_after_seconds: int | None = Field(None, ge=1, le=86_400)


class FleetConfig(_Section):
    role: Literal["node", "hub"] = "node"
    # A node whose last message is older than this shows as offline on the hub.
    offline_after_seconds: float = Field(60.0, gt=0, le=86_400)


class DeployConfig(_Section):
    """``[deploy]``: plugin bundles delivered over MQTT (docs/MQTT.md, "Deploying
    plugins"). Off by default: a node installs nothing it was not configured with."""

    enabled: bool = False
    # Where delivered versions live (<dir>/<plugin>/current, previous).
    dir: str = Field("data/deploy", min_length=1)
    # A new version is healthy after gate_polls successful polls with no trap
    # within gate_seconds; otherwise the node rolls it back by itself.
    gate_polls: int = Field(10, ge=1, le=100_000)
    gate_seconds: float = Field(120.0, gt=0, le=86_400)


class TrustConfig(_Section):
    """``[trust]``: the public keys whose signed plugin bundles this node accepts
    (docs/BUNDLES.md). None by default: every bundle is refused."""

    keys: list[PublicKeyText] = Field(default_factory=list)

    @model_validator(mode="after")
    def _each_key_once(self) -> TrustConfig:
        seen: set[str] = set()
        for i, key in enumerate(self.keys):
            if key in seen:
                raise ValueError(f"keys[{i}]: {key[:20]}… is listed twice")
            seen.add(key)
        return self


class RuntimeConfig(_Section):
    # "compiled": each call goes through a plan built once per function, converting
    # in C (fastest; "typed" where the C module is not built); "typed": the same
    # plans in Python; "generic": wasmtime-py's public API, the fallback should the
    # others ever misbehave after an upgrade.
    call_path: Literal["compiled", "typed", "generic"] = "compiled"
    # The shared Python runtime source plugins run in (`wasihost build` makes it).
    python_runtime: str = Field("build/python-runtime.wasm", min_length=1)
    # Where a plugin named in [plugins.<name>] finds its folder by default.
    plugins_dir: str = Field("plugins", min_length=1)


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
    trust: TrustConfig = TrustConfig()
    deploy: DeployConfig = DeployConfig()


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
    trust: TrustConfig
    deploy: DeployConfig
    plugin_keys: dict[str, str]  # normalised name -> key as written in the file

    @property
    def node_id(self) -> str:
        """``[node] id``, else the host name made safe for MQTT topics and entity ids."""
        if self.node.id:
            return self.node.id
        cleaned = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-")
        cleaned = cleaned[:64] or "wasihost"
        return f"{cleaned[:59]}-node" if cleaned in RESERVED_NODE_IDS else cleaned

    def world_of(self, name: str) -> str:
        """The configured world, else a source plugin's own (its plugin.toml),
        else ``<name>-plugin``."""
        configured = self.plugins[name].world
        if configured:
            return configured
        source = self.source_of(name)
        return _manifest(source).world if source is not None else f"{name}-plugin"

    def source_of(self, name: str) -> Path | None:
        """A source plugin's folder, run in the shared Python runtime: ``source``,
        else ``<plugins_dir>/<name>/`` when it holds an ``app.py`` whose plugin.toml
        does not ask for a component of its own; None for a component (a
        ``wasm`` given, or no such folder)."""
        plugin = self.plugins[name]
        if plugin.source:
            return Path(plugin.source)
        if plugin.wasm:
            return None
        folder = Path(self.runtime.plugins_dir) / name
        if not (folder / "app.py").is_file() or _manifest(folder).kind != "source":
            return None
        return folder

    def wasm_of(self, name: str) -> Path:
        """The component to load: the plugin's own, or for a source plugin the
        shared Python runtime beside the built plugins."""
        configured = self.plugins[name].wasm
        if configured:
            return Path(configured)
        if self.source_of(name) is not None:
            return Path(self.runtime.python_runtime)
        return Path("build") / f"{name}.wasm"


def _manifest(folder: Path) -> Manifest:
    """A source folder's plugin.toml; its problems are configuration errors."""
    try:
        return read_manifest(folder)
    except ManifestError as exc:
        raise ConfigError(str(exc)) from None


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


# A plugin's name is a level of its MQTT topics (wasihost/<node>/<plugin>/state),
# a folder (snapshots, [deploy] dir) and a metric label: no "/", no wildcards, no
# "..", one spelling. "rollout" is taken: wasihost/<node>/rollout/<plugin> holds
# the node's deploy reports, and a plugin of that name would publish among them.
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
RESERVED_PLUGIN_NAMES = frozenset({"rollout"})


def _check_plugin_name(path: Path, key: str) -> None:
    if not PLUGIN_NAME.match(key):
        raise ConfigError(
            f"{path}: plugins.{key}: {key!r} is not a plugin name: lower-case letters, digits, "
            "'-' and '_', starting with a letter, at most 48 (it names MQTT topics and folders)"
        )
    if key.replace("_", "-") in RESERVED_PLUGIN_NAMES:
        raise ConfigError(
            f"{path}: plugins.{key}: {key!r} is reserved: wasihost/<node>/{key}/<plugin> holds "
            "the node's deploy reports; choose another name"
        )


def parse_config(data: dict[str, Any], path: Path = DEFAULT_CONFIG_PATH) -> HostConfig:
    """Validate already-parsed TOML data; ``path`` is only used in messages."""
    data, filters = _filters(data, path)
    try:
        raw = _HostFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(path, exc)) from None
    plugins: dict[str, PluginConfig] = {}
    keys: dict[str, str] = {}
    # Each LED has one writer: two would each set it every cycle and it would
    # flicker between them. Disabled plugins write nothing.
    led_owners: dict[int, tuple[str, str]] = {}
    for key, plugin in raw.plugins.items():
        _check_plugin_name(path, key)
        name = key.replace("_", "-")
        if name in plugins:
            raise ConfigError(f"{path}: plugins.{key}: plugin '{name}' is configured twice")
        written = plugin.grants.model_dump(exclude_none=True)
        leds = [("led", plugin.led)] if plugin.led is not None else []
        leds += [(f"grants.leds[{i}]", led) for i, led in enumerate(written.get(LEDS.key, []))]
        for where, led in leds:
            if led >= raw.board.led_count:
                raise ConfigError(
                    f"{path}: plugins.{key}.{where}: LED index {led} is outside the strip "
                    f"(expected 0..{raw.board.led_count - 1}, "
                    f"board.led_count = {raw.board.led_count})"
                )
            if not plugin.enabled:
                continue
            owner, owner_where = led_owners.setdefault(led, (key, where))
            if owner != key:
                raise ConfigError(
                    f"{path}: plugins.{key}.{where}: LED {led} is already granted to plugin "
                    f"'{owner.replace('_', '-')}' (plugins.{owner}.{owner_where}); each LED "
                    "can have one plugin (the strip would flicker between them)"
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
        if key in filters:
            plugin = plugin.model_copy(update={"filters": filters[key]})
        plugins[name] = _spelled_out(name, plugin, raw.sensors)
        keys[name] = key
    sensors = _sensors(raw.sensors, plugins)
    if raw.deploy.enabled:
        # Deliveries come over the broker and are installed only if a trusted key
        # signed them: without either, "enabled" would silently do nothing.
        if not raw.mqtt.enabled:
            raise ConfigError(
                f"{path}: deploy.enabled = true needs mqtt.enabled = true "
                "(bundles are delivered over the broker)"
            )
        if not raw.trust.keys:
            raise ConfigError(
                f"{path}: deploy.enabled = true needs at least one key in trust.keys "
                "(a node that trusts no key refuses every bundle)"
            )
    # A pydantic model iterates as (field, value) pairs, sub-models kept as they are:
    # every section of the file becomes the HostConfig field of the same name.
    return HostConfig(
        path=path, plugin_keys=keys, **{**dict(raw), "plugins": plugins, "sensors": sensors}
    )


def _filters(
    data: dict[str, Any], path: Path
) -> tuple[dict[str, Any], dict[str, dict[str, tuple[FilterSpec, ...]]]]:
    """Take each ``[plugins.<name>.filters]`` out of ``data`` and parse it.

    Parsed here rather than by pydantic so that an error names the entry the way
    host.toml is read, ``plugins.dht22.filters.temperature[1].median.window_size``,
    with one message per mistake (a union of fourteen filter models would list
    why the entry is none of them). Returns ``data`` without the filters, and
    the chains by plugin key as written.
    """
    plugins = data.get("plugins")
    if not isinstance(plugins, dict):
        return data, {}
    rest: dict[str, Any] = {}
    parsed: dict[str, dict[str, tuple[FilterSpec, ...]]] = {}
    for key, plugin in plugins.items():
        if isinstance(plugin, dict) and "filters" in plugin:
            plugin = dict(plugin)
            parsed[key] = _filter_chains(plugin.pop("filters"), f"plugins.{key}.filters", path)
        rest[key] = plugin
    return {**data, "plugins": rest}, parsed


def _filter_chains(raw: object, where: str, path: Path) -> dict[str, tuple[FilterSpec, ...]]:
    """One plugin's ``filters`` table: measurement name -> list of filter entries."""
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path}: {where}: expected a table of measurement name = list of filters, e.g. "
            f"[[{where}.temperature]] (got {raw!r})"
        )
    chains: dict[str, tuple[FilterSpec, ...]] = {}
    for measurement, entries in raw.items():
        if not isinstance(entries, list):
            raise ConfigError(
                f"{path}: {where}.{measurement}: expected a list of filters: "
                f"[[{where}.{measurement}]] entries, or {measurement} = "
                f"[{{ offset = -0.5 }}, ...] (got {entries!r})"
            )
        specs: list[FilterSpec] = []
        for i, entry in enumerate(entries):
            try:
                specs.append(parse_filter(entry))
            except FilterConfigError as exc:
                key = f"{where}.{measurement}[{i}]" + (f".{exc.where}" if exc.where else "")
                got = "" if exc.got is None else f" (got {exc.got!r})"
                raise ConfigError(f"{path}: {key}: {exc.message}{got}") from None
        chains[measurement] = tuple(specs)
    return chains


def _spelled_out(name: str, plugin: PluginConfig, sensors: SensorsConfig) -> PluginConfig:
    """The plugin with its shorthands written as grants and settings, so that
    from here on every plugin is configured the same way.

    ``led = N`` grants LED N and sets ``led``; for the seed plugins, their
    ``[sensors.*]`` key (written or at its default) grants its value and sets
    the key. The plugin's own grants and settings win, and the settings keep
    the order plugins have always received them in: sensor key, ``led``, own.
    """
    written = plugin.grants.model_dump(exclude_none=True)
    grants: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for sensor in SENSOR_KEYS:
        if sensor.plugin == name:
            value = getattr(getattr(sensors, sensor.plugin), sensor.key)
            grants[sensor.grant.key] = [value]
            settings[sensor.key] = value
    if plugin.led is not None:
        grants[LEDS.key] = [plugin.led]
        settings["led"] = plugin.led
    settings.update(plugin.settings)
    grants = {key: value for key, value in grants.items() if key not in written}
    return plugin.model_copy(
        update={"grants": plugin.grants.model_copy(update=grants), "settings": settings}
    )


def _sensors(sensors: SensorsConfig, plugins: dict[str, PluginConfig]) -> SensorsConfig:
    """``[sensors.*]`` as code that reads ``HostConfig.sensors`` expects it, whichever
    spelling the file uses: a key the file writes, else its plugin's setting of that
    name where it is a value the grant could hold, else the key's default."""
    for sensor in SENSOR_KEYS:
        section = getattr(sensors, sensor.plugin)
        plugin = plugins.get(sensor.plugin)
        if sensor.key in section.model_fields_set or plugin is None:
            continue
        setting = plugin.settings.get(sensor.key)
        if sensor.grant.holds(setting):
            section = section.model_copy(update={sensor.key: setting})
            sensors = sensors.model_copy(update={sensor.plugin: section})
    return sensors


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
