"""Pure HTML rendering of the wasihost dashboard.

This module is the whole dashboard except the WIT binding: it turns the host's
app state (the same JSON document `/api/stream` sends) into one self-contained
HTML5 page. It deliberately imports nothing but the standard library, the
shared guest library `wasihost_guest` (itself standard library only) and its
sibling `assets` (never `wit_world`), so it runs unchanged inside the
WebAssembly guest and under pytest on the development machine.

The page is complete without JavaScript (a `<noscript>` refresh keeps it
current); the inline script from `assets` then keeps it live. Every value the
script updates is tagged with a `data-*` attribute here, so the script never
has to build markup: see `assets.py` for the attribute scheme's consumer.

Two rules shape the code:

* Every string in the state may come from an untrusted plugin (names, units,
  status keys, error messages), so every value reaches the page through
  `html.escape`; only markup built here from validated numbers (LED colours,
  timestamps) and CSS classes from fixed tables is written unescaped.
* An exception escaping the guest traps the plugin and blanks the dashboard,
  so every field is type-checked before use, each card is rendered behind its
  own guard, and `render_json` turns any remaining failure into an error page.
"""

import html
import json
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from assets import IAQ_PLACEHOLDER, SCRIPT, STYLE
from wasihost_guest import iaq, jsonguard

JsonObject = dict[str, Any]

_MISSING = "—"

# The real state is about 5 levels deep. The guest's C stack is exhausted (a trap,
# not a RecursionError) somewhere between 1,000 and 2,000 levels of JSON nesting,
# so deeper input is refused before `json.loads` ever sees it.
_MAX_JSON_DEPTH = 64

# The CSS class of each band of the IAQ scale (`wasihost_guest.iaq`, the table the
# bme680 plugin's LED uses too).
_IAQ_CLASSES = {
    "good": "iaq-good",
    "moderate": "iaq-moderate",
    "unhealthy for sensitive groups": "iaq-sensitive",
    "unhealthy": "iaq-unhealthy",
    "very unhealthy": "iaq-very-unhealthy",
    "hazardous": "iaq-hazardous",
}
# (upper bound of the rounded IAQ value, label, CSS class); the last band is open-ended.
_IAQ_BANDS = tuple((upper, label, _IAQ_CLASSES[label]) for upper, label in iaq.BANDS)
_IAQ_WORST = (iaq.WORST, _IAQ_CLASSES[iaq.WORST])

# The BME680 IAQ accuracy scale tops out at 3 (baseline settled).
_IAQ_ACCURACY_MAX = 3

# The script needs the same bands to re-colour live IAQ values; they are
# defined once, here, and only constants go into the script.
_SCRIPT = SCRIPT.replace(
    IAQ_PLACEHOLDER,
    json.dumps(
        {
            "bands": [list(band) for band in _IAQ_BANDS],
            "worst": list(_IAQ_WORST),
            "accuracyMax": _IAQ_ACCURACY_MAX,
        }
    ),
)

_DAY_MS = 86_400_000

# (label, window in ms) of the two charts drawn per measurement. The second is the
# long chart: the page's one range control (`_LONG_RANGES`) switches every long
# chart to another span, the first of those being the default.
_CHART_WINDOWS = (("1 h", 3_600_000), ("24 h", _DAY_MS))
_LONG_CHART = 1

# (label, span in ms, what the button says to a screen reader) of the long charts'
# ranges. Beyond 48 h the host answers with statistics (5-minute or hourly
# minimum, mean and maximum), which the script draws as a band around the mean.
_LONG_RANGES = (
    ("24 h", _DAY_MS, "the last 24 hours"),
    ("7 d", 7 * _DAY_MS, "the last 7 days"),
    ("30 d", 30 * _DAY_MS, "the last 30 days"),
    ("1 y", 365 * _DAY_MS, "the last year"),
)

# Assumed when the state has no usable poll interval (the host's default).
_DEFAULT_INTERVAL_S = 2.0

# A reading older than this many poll intervals (and at least the minimum, so
# a fast poll rate does not make cards flicker) counts as stale. The script
# applies the same rule to streamed states.
_STALE_AFTER_INTERVALS = 3
_STALE_AFTER_MIN_S = 5.0

# How often the page reloads itself when the browser runs no JavaScript, and
# how soon an error page retries.
_NOSCRIPT_REFRESH_MIN_S = 5
_ERROR_PAGE_REFRESH_S = 10

# The CSS class of each plugin health the host reports (`Host.statuses`).
_HEALTH_CLASSES = {"ok": "ok", "failing": "bad", "unavailable": "bad"}

# The CSS class of each state of a plugin's rollout on a node (the deploy protocol's
# states, `wasihost.deploy.protocol.STATES`): passed the gate, on its way, or not
# running the new version. The script's ROLLOUT_CLASSES is the same table.
_ROLLOUT_CLASSES = {
    "healthy": "ok",
    "received": "warn",
    "staging": "warn",
    "live": "warn",
    "rolled-back": "bad",
    "failed": "bad",
    "refused": "bad",
    "needs-grants": "bad",
}
# The order a rollout's summary names the states after the healthy count.
_ROLLOUT_ORDER = (
    "live",
    "staging",
    "received",
    "rolled-back",
    "failed",
    "refused",
    "needs-grants",
)
# A rollout's progress bar: one segment per class, offline nodes last.
_ROLLOUT_SEGMENTS = ("ok", "warn", "bad", "off")
# A larger node count is nonsense (a hub keeps 1,000 nodes), and would not fit a float.
_MAX_COUNT = 1_000_000_000

# Words written in capitals in a label made from a key or a plugin's slug; so are
# words of letters and digits, sensor names such as dht22 or bme680.
_ACRONYMS = frozenset(
    ("cpu", "gpu", "iaq", "co2", "eco2", "voc", "tvoc", "led", "rssi", "ip", "id", "uv", "rh")
)


class _Snapshot(NamedTuple):
    """Page-wide facts every card needs: the LED strip and the host's clock."""

    strip: list[Any]
    now_ms: float | None
    interval_s: float

    @property
    def stale_after_s(self) -> float:
        """Age in seconds after which a reading no longer counts as current."""
        return max(_STALE_AFTER_INTERVALS * self.interval_s, _STALE_AFTER_MIN_S)


def render_json(state_json: str) -> str:
    """Render the dashboard from the raw JSON the host passes to the guest.

    This is the guest's only entry point and it never raises: a trap would
    mark the dashboard plugin failed and leave the user with no page at all,
    whereas an error page at least says what went wrong. Malformed JSON, a
    non-object state and any unexpected rendering bug all become error pages.
    """
    try:
        try:
            state = jsonguard.load_object(state_json, max_depth=_MAX_JSON_DEPTH)
        except jsonguard.Refused as refused:
            return render_error_page(f"the app state is {refused}")
        return render_page(state)
    except Exception as exc:  # deliberately broad: an escape would trap the guest
        return render_error_page(f"{type(exc).__name__}: {exc}")


def render_page(state: JsonObject) -> str:
    """Render the full dashboard page for one snapshot of the host's app state.

    Any key may be missing, null or of the wrong type (plugins supply most of
    the content), so each section renders whatever is usable and falls back
    to a placeholder.
    """
    node = _text(state.get("node")) or "wasihost"
    readings = _dict(state.get("readings"))
    plugins = _dict(state.get("plugins"))
    interval = jsonguard.number(state.get("interval_seconds"))
    snapshot = _Snapshot(
        strip=_list(state.get("leds")),
        now_ms=jsonguard.number(state.get("timestamp_ms")),
        interval_s=interval if interval is not None and interval > 0 else _DEFAULT_INTERVAL_S,
    )
    if readings:
        cards = "".join(
            _card(name, reading, snapshot, _dict(plugins.get(name)))
            for name, reading in readings.items()
        )
    else:
        cards = '<p class="muted">No readings yet.</p>'
    body = (
        _guarded("the header", _page_header, state, node, readings, plugins, snapshot)
        + f'<main class="grid">{cards}</main>'
        + _guarded("the fleet", _fleet_section, state.get("fleet"))
        + _guarded("the plugin table", _health_table, plugins)
        + f"<script>{_SCRIPT}</script>"
    )
    # Only numbers go into these attributes; the script reads them at start-up.
    now_attr = f' data-now="{int(snapshot.now_ms)}"' if snapshot.now_ms is not None else ""
    refresh = max(_NOSCRIPT_REFRESH_MIN_S, math.ceil(snapshot.interval_s))
    return _document(
        f"{node} · wasihost",
        body,
        head=f'<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>\n',
        body_attrs=f'{now_attr} data-interval="{snapshot.interval_s!r}"',
    )


def render_error_page(message: str) -> str:
    """Render a complete page that only reports `message`.

    Used when the state cannot be rendered at all, so that the browser still
    gets a valid, styled document instead of an empty response. It reloads
    itself, so a wall tablet recovers once the state is renderable again.
    """
    body = (
        '<header class="page-header"><h1>wasihost dashboard</h1></header>'
        f"{_error_notice(f'Cannot render the dashboard: {message}')}"
    )
    return _document(
        "wasihost dashboard",
        body,
        head=f'<meta http-equiv="refresh" content="{_ERROR_PAGE_REFRESH_S}">\n',
    )


def iaq_band(iaq_value: float) -> tuple[str, str]:
    """Return the (label, CSS class) of the air-quality band for an IAQ value.

    Bands follow the BME680 IAQ scale (0-50 good ... 301+ hazardous), from the
    table the bme680 plugin's LED uses: the value is rounded half up first, as
    the page's script (``Math.round``) does, so the band always agrees with the
    integer on the page and with the LED.
    """
    label = iaq.band(iaq_value)
    return label, _IAQ_CLASSES[label]


def format_utc_time(timestamp_ms: int) -> str:
    """Format epoch milliseconds as `HH:MM:SS` in UTC.

    Plain arithmetic keeps this independent of the guest's clock and time-zone
    support; the wall tablet only needs the time of day to spot a stalled host
    (the script switches to the browser's local time once it runs).
    """
    seconds_of_day = (timestamp_ms // 1000) % 86_400
    hours, rest = divmod(seconds_of_day, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _document(title: str, body: str, head: str = "", body_attrs: str = "") -> str:
    """Wrap `body` in the HTML5 skeleton with the inline style sheet.

    `head` and `body_attrs` must be built from constants and numbers only:
    they are inserted unescaped.
    """
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"{head}"
        f"<title>{_esc(title)}</title>\n"
        f"<style>{STYLE}</style>\n"
        f"</head>\n<body{body_attrs}>\n{body}\n</body>\n</html>\n"
    )


def _guarded(what: str, render: Callable[..., str], *args: object) -> str:
    """Return `render(*args)`, or an inline error notice if it raises.

    Confining a failure to one section keeps the rest of the dashboard
    visible when a single plugin reports something unexpected.
    """
    try:
        return render(*args)
    except Exception as exc:  # deliberately broad: an escape would trap the guest
        return _error_notice(f"Cannot render {what}: {type(exc).__name__}: {exc}")


def _card(name: str, reading: object, snapshot: _Snapshot, info: JsonObject) -> str:
    """Render one plugin's card, or a card holding only an error notice.

    The fallback still carries `data-plugin`: the script reloads the page when
    a streamed plugin has no card, and a card that cannot render must not
    look missing, or the page would keep reloading.
    """
    try:
        return _reading_card(name, reading, snapshot, info)
    except Exception as exc:  # deliberately broad: an escape would trap the guest
        notice = _error_notice(f"Cannot render the {name!r} card: {type(exc).__name__}: {exc}")
        return f'<section class="card" data-plugin="{_esc(name)}">{notice}</section>'


def _page_header(
    state: JsonObject,
    node: str,
    readings: JsonObject,
    plugins: JsonObject,
    snapshot: _Snapshot,
) -> str:
    """Render the page header: node, facts, problem summary, live indicator, LED strip."""
    facts = [
        ("board", _format_value(state.get("board"))),
        ("cycle", _format_value(state.get("cycle"))),
        ("updated", _format_timestamp(state.get("timestamp_ms"))),
        ("interval", f"{_format_number(snapshot.interval_s)} s"),
    ]
    meta = "".join(
        f'<span>{label} <b data-meta="{label}">{_esc(value)}</b></span>' for label, value in facts
    )
    problems = _problems(readings, plugins)
    summary = (
        f'<span class="pill bad" data-summary>{_esc(" · ".join(problems))}</span>'
        if problems
        else '<span class="pill ok" data-summary>all clear</span>'
    )
    # Hidden until the script runs: without it the page is a snapshot, not live.
    live = '<span class="pill off" data-live hidden>connecting…</span>'
    ranges = _range_control() if readings else ""
    swatches = "".join(_swatch(index, _rgb(colour)) for index, colour in enumerate(snapshot.strip))
    strip = f'<div class="strip" aria-label="LED strip">{swatches}</div>' if swatches else ""
    return (
        f'<header class="page-header"><h1>{_esc(node)}</h1>'
        f'<div class="meta">{meta}</div>{strip}{ranges}'
        f'<div class="pills">{summary}{live}</div></header>'
    )


def _range_control() -> str:
    """Render the page's one choice of the long charts' span: a button per range.

    Only the script can act on it, so it is hidden until the script runs (and
    finds a chart to switch). The choice lives in the script's memory: the
    sandboxed frame has no storage, and a reloaded page starts at 24 h again.
    """
    buttons = "".join(
        f'<button type="button" data-range-ms="{span_ms}" title="chart {words}" '
        f'aria-pressed="{"true" if index == 0 else "false"}">{label}</button>'
        for index, (label, span_ms, words) in enumerate(_LONG_RANGES)
    )
    return (
        '<div class="ranges" role="group" aria-labelledby="ranges-label" data-ranges hidden>'
        f'<span class="ranges-label" id="ranges-label">chart span</span>{buttons}</div>'
    )


def _problems(readings: JsonObject, plugins: JsonObject) -> list[str]:
    """List raised alarms and plugins that are not healthy, in the words the script uses."""
    problems = []
    for name, reading in readings.items():
        alarm = _dict(_dict(reading).get("status")).get("alarm")
        if _alarm_raised(alarm):
            title = _plugin_title(name, _dict(plugins.get(name)))
            problems.append(f"{title}: alarm {_format_value(alarm)}")
    for name, info in plugins.items():
        health, word = _health(_dict(info))
        if health != "ok":
            problems.append(f"{_plugin_title(name, _dict(info))}: {word}")
    return problems


def _health(info: JsonObject) -> tuple[str, str]:
    """A plugin's health and the word the page shows for it.

    The host computes ``health`` (ok, failing, unavailable) by the rule /healthz
    uses too; a state without it (an older host) is ok only while running. A
    plugin that is not ok never shows a green "running": failing says so, and an
    unavailable one shows its state (quarantined, backoff, failed...).
    """
    state = _text(info.get("state"))
    health = info.get("health")
    if health not in _HEALTH_CLASSES:
        health = "ok" if state == "running" else "unavailable" if state else ""
    if health == "failing":
        return health, "failing"
    return health, state or _MISSING


def _plugin_title(name: str, info: JsonObject) -> str:
    """The name a person reads: the plugin's own from describe(), else its slug made
    readable ("DHT22", "Pi monitor")."""
    described = _text(_dict(info.get("info")).get("name")).strip()
    return described or _label(name)


def _reading_card(name: str, reading: object, snapshot: _Snapshot, info: JsonObject) -> str:
    """Render one plugin's latest reading as a card, titled by its readable name.

    Badges and the error block are always present (hidden when not needed)
    so the script can show them without creating elements. A plugin that is
    not healthy (`_health`: failing, or not running) says so in a badge.
    """
    data = _dict(reading)
    status = dict(_dict(data.get("status")))
    taken_ms = jsonguard.number(data.get("timestamp_ms"))

    has_alarm = "alarm" in status
    alarm = status.pop("alarm", None)
    alarmed = _alarm_raised(alarm)
    alarm_text = f"alarm {_format_value(alarm)}" if alarmed else "no alarm"
    badges = (
        f'<span class="badge {"alarm" if alarmed else "ok"}" data-alarm'
        f"{'' if has_alarm else ' hidden'}>{_esc(alarm_text)}</span>"
    )
    stale, age_ms = status.pop("stale", None), status.pop("age_ms", None)
    stale_text = _staleness(stale, age_ms, taken_ms, snapshot)
    badges += (
        f'<span class="badge stale" data-stale{"" if stale_text else " hidden"}>'
        f"{_esc(stale_text or 'stale')}</span>"
    )

    health, word = _health(info) if info else ("ok", "")
    badges += (
        f'<span class="badge bad" data-health-badge{"" if health not in ("", "ok") else " hidden"}>'
        f"{_esc(word if health not in ('', 'ok') else 'failing')}</span>"
    )

    accuracy = _accuracy_text(status["iaq_accuracy"]) if "iaq_accuracy" in status else None
    measurements, accuracy_shown = _measurements(_list(data.get("measurements")), accuracy)
    if accuracy_shown:
        del status["iaq_accuracy"]

    title = _plugin_title(name, info)
    slug = f'<span class="world">{_esc(name)}</span>' if title.lower() != name.lower() else ""
    parts = [
        f'<div class="card-title"><h2>{_esc(title)}</h2><div class="badges">{badges}</div>'
        f"{slug}</div>",
        measurements,
    ]
    error = data.get("error")
    parts.append(
        f'<p class="error" role="alert" data-error{" hidden" if error is None else ""}>'
        f"{_esc(_format_value(error)) if error is not None else ''}</p>"
    )
    updated = (
        f"updated {_format_timestamp(taken_ms)}"
        if taken_ms is not None
        else "never polled successfully"
    )
    parts.append(
        f'<div class="card-foot">{_status_list(status) if status else ""}'
        f"{_card_leds(_list(data.get('leds')), snapshot.strip)}"
        f'<span class="updated" data-updated>{_esc(updated)}</span></div>'
    )
    css_class = (
        "card alarmed" if alarmed else "card unhealthy" if health not in ("", "ok") else "card"
    )
    return (
        f'<section class="{css_class}" data-plugin="{_esc(name)}" data-title="{_esc(title)}">'
        f"{''.join(parts)}</section>"
    )


def _staleness(
    stale: object, age_ms: object, taken_ms: float | None, snapshot: _Snapshot
) -> str | None:
    """Describe how stale a reading is, or None while it is current.

    A plugin may flag its own values stale (the DHT22 repeats its last good
    read); otherwise the reading is stale when the host has not replaced it
    for a few poll intervals (the plugin keeps failing or has stopped).
    """
    if stale is True:
        age = jsonguard.number(age_ms)
        return f"stale · {_format_age(age / 1000)} old" if age is not None else "stale"
    if taken_ms is None or snapshot.now_ms is None:
        return None
    age_s = max(0.0, snapshot.now_ms - taken_ms) / 1000
    return f"stale · {_format_age(age_s)} old" if age_s > snapshot.stale_after_s else None


def _measurements(items: list[Any], accuracy: str | None) -> tuple[str, bool]:
    """Render the measurement blocks; return them and whether `accuracy` was placed.

    The IAQ accuracy belongs next to the IAQ value it qualifies, so it is only
    handed back to the status list when there is no IAQ measurement to attach
    it to. The IAQ also leads its card: it is the figure an air-quality sensor
    is read for, and it should not end up below the fold on a wall tablet.
    """
    leading: list[str] = []
    blocks: list[str] = []
    accuracy_shown = False
    for item in items:
        measurement = _dict(item)
        if not measurement:
            continue
        name = _text(measurement.get("name"))
        unit = _text(measurement.get("unit"))
        value = measurement.get("value")
        is_iaq = name.lower() == "iaq" or unit.upper() == "IAQ"
        kind = _unit_kind(unit, measurement.get("device_class"))
        decimals = 0 if is_iaq or kind == "duration" else 1
        number = jsonguard.number(value)
        # float() so that the page and the script (which cannot tell 3 from 3.0) agree.
        shown, shown_unit = (
            _display(float(number), unit, kind, decimals) if number is not None else (None, unit)
        )
        detail = ""
        if is_iaq and number is not None:
            label, css_class = iaq_band(number)
            extras = [f'<span class="{css_class}" data-iaq-band>{_esc(label)}</span>']
            if accuracy is not None:
                extras.append(
                    f'<span class="muted" data-iaq-accuracy>accuracy {_esc(accuracy)}</span>'
                )
                accuracy_shown = True
            detail = f'<div class="iaq-detail">{"".join(extras)}</div>'
        text = shown if shown is not None else _format_value(value)
        label_text = _label(name) or "?"
        (leading if is_iaq else blocks).append(
            f'<div class="measure" data-measure="{_esc(name)}" data-decimals="{decimals}"'
            f' data-unit="{_esc(unit)}" data-kind="{kind}">'
            '<div class="m-head">'
            f'<div><span class="m-label">{_esc(label_text)}</span>{detail}</div>'
            f'<span><span class="value" data-value>{_esc(text)}</span>'
            f'<span class="unit" data-unit-text>{_esc(shown_unit)}</span></span></div>'
            f"{_charts(label_text)}</div>"
        )
    if not leading + blocks:
        return '<p class="muted">No measurements.</p>', accuracy_shown
    return f'<div class="measures">{"".join(leading + blocks)}</div>', accuracy_shown


def _charts(label: str) -> str:
    """Render the empty 1 h and long (24 h by default) chart frames the script draws into.

    The SVG stretches to any width (`preserveAspectRatio="none"`); the script
    fills the two paths from `/api/history` and the stream: the line is the
    value (or each bucket's mean), the area below it, or the band between each
    bucket's minimum and maximum when the history carries statistics. The long
    chart (`data-long`) takes the span the page's range control chooses.

    The axes are text beside the plot, not in the SVG (which would stretch it):
    three y ticks (bottom, middle, top: the script picks round numbers and maps
    the plot onto them, so the three grid lines drawn here are theirs) and three
    x ticks (first point, middle, now). The plot takes the keyboard focus and the
    pointer: a crosshair, a dot and a tooltip with the time and the value (the
    mean and min-max of a statistics bucket).
    """
    y_ticks = "".join("<span data-y-tick></span>" for _ in range(3))
    x_ticks = "".join("<span data-x-tick></span>" for _ in range(3))
    figures = "".join(
        f'<figure class="chart" data-window-ms="{window_ms}" data-label="{span}"'
        f"{' data-long' if index == _LONG_CHART else ''}>"
        f'<figcaption><span data-span title="last {span}">{span}</span>'
        '<span data-range title="minimum – maximum"></span></figcaption>'
        '<div class="chart-body">'
        f'<div class="y-axis" aria-hidden="true">{y_ticks}</div>'
        '<div class="plot" tabindex="0" data-plot>'
        f'<svg viewBox="0 0 300 60" preserveAspectRatio="none" role="img" '
        f'aria-label="{_esc(label)}, last {span}">'
        '<path class="gridlines" d="M0 0.5H300M0 30H300M0 59.5H300"></path>'
        '<path class="area" data-area d=""></path><path class="line" data-line d=""></path>'
        '<path class="cursor" data-cursor d=""></path>'
        '</svg><span class="dot" data-dot hidden></span>'
        '<span class="chart-empty" data-empty>no history yet</span>'
        '<div class="tip" data-tip hidden><span data-tip-time></span>'
        "<span data-tip-value></span></div></div>"
        f'<div class="x-axis" aria-hidden="true">{x_ticks}</div>'
        "</div></figure>"
        for index, (span, window_ms) in enumerate(_CHART_WINDOWS)
    )
    return f'<div class="charts">{figures}</div>'


def _status_list(status: JsonObject) -> str:
    """Render the remaining status values as a compact key/value list."""
    rows = "".join(
        f"<div><dt>{_esc(_label(str(key)))}</dt>"
        f'<dd data-status="{_esc(str(key))}">{_esc(_status_text(str(key), value))}</dd></div>'
        for key, value in status.items()
    )
    return f'<dl class="status">{rows}</dl>'


def _status_text(key: str, value: object) -> str:
    """Format one status value; the IAQ accuracy reads as "n/3"."""
    return _accuracy_text(value) if key == "iaq_accuracy" else _format_value(value)


def _card_leds(indices: list[Any], strip: list[Any]) -> str:
    """Render swatches for the LEDs granted to a plugin, looked up in the strip."""
    swatches = []
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int):
            continue
        colour = _rgb(strip[index]) if 0 <= index < len(strip) else None
        swatches.append(_swatch(index, colour, labelled=True))
    return f'<div class="leds">{"".join(swatches)}</div>' if swatches else ""


def _swatch(index: int, colour: tuple[int, int, int] | None, labelled: bool = False) -> str:
    """Render one LED as a coloured dot, optionally with its index and colour as text.

    The style attribute is built only from validated 0-255 integers, which is
    why it can be written unescaped.
    """
    if colour is None:
        css, text = "background: transparent", "unknown"
    else:
        text = "rgb({}, {}, {})".format(*colour)
        css = f"background: {text}"
    dot = (
        f'<span class="swatch" data-led="{index}" style="{css}" title="LED {index}: {text}"></span>'
    )
    if not labelled:
        return dot
    return f'<span class="led">{dot}LED {index} <code data-led-text>{text}</code></span>'


def _fleet_section(fleet_doc: object) -> str:
    """Render a hub's view of the fleet (`Fleet.to_json()`), one card per node.

    Only a hub's state has a `fleet` key; without it, or before any node has
    been heard, there is no section at all. Everything in it (node ids,
    plugin, field and unit names, status values) arrived over MQTT from any
    client the broker lets publish, so it is as untrusted as plugin output.
    Only a node flagged `online: true` counts as online: a doubtful node is
    shown offline, its values greyed and marked as not live.
    """
    fleet = _dict(fleet_doc)
    nodes = [
        node
        for node in _list(fleet.get("nodes"))
        if isinstance(node, dict) and isinstance(node.get("node"), str)
    ]
    if not nodes:
        return ""
    stale_after = jsonguard.number(fleet.get("offline_after_seconds"))
    online = sum(1 for node in nodes if node.get("online") is True)
    offline = len(nodes) - online
    cards = "".join(_node_card(node, stale_after) for node in nodes)
    rollouts = _guarded("the rollouts", _rollouts, fleet.get("rollouts"), fleet)
    return (
        '<section class="fleet" data-fleet><div class="fleet-head"><h2>Fleet</h2>'
        f'<span class="pill ok" data-fleet-online>{online} online</span>'
        f'<span class="pill bad" data-fleet-offline{"" if offline else " hidden"}>'
        f"{offline} offline</span></div>"
        f'{rollouts}<div class="grid">{cards}</div></section>'
    )


def _rollouts(items: object, fleet: JsonObject) -> str:
    """Render one line per rollout the nodes report on (`Fleet.to_json()["rollouts"]`:
    per plugin and content hash, the nodes counted by state and offline apart),
    each with its progress bar. A rollout stays listed while any node's last
    report names it, so a finished one reads "5/5 healthy" until the next."""
    lines = "".join(_rollout_line(_dict(item)) for item in _list(items) if _rollout_key(item))
    if not lines:
        return ""
    omitted = _count(fleet.get("rollouts_omitted"))
    more = f'<p class="muted">and {omitted:,} more with fewer nodes</p>' if omitted else ""
    return f'<div class="rollouts" data-rollouts><h3>Rollouts</h3>{lines}{more}</div>'


def _rollout_key(item: object) -> tuple[str, str] | None:
    """(plugin, content hash or "") that tags a rollout's line, or None if unusable."""
    data = _dict(item)
    plugin, content_hash = data.get("plugin"), data.get("content_hash")
    if not isinstance(plugin, str) or not (content_hash is None or isinstance(content_hash, str)):
        return None
    return plugin, content_hash or ""


def rollout_counts(rollout: JsonObject) -> tuple[dict[str, int], int]:
    """A rollout's node count per state (usable counts only) and its offline count.
    The script's `rolloutCounts` agrees."""
    states = {}
    for state, count in _dict(rollout.get("states")).items():
        number = _count(count)
        if state in _ROLLOUT_CLASSES and number:
            states[state] = number
    return states, _count(rollout.get("offline"))


def _count(value: object) -> int:
    """A count of nodes, 0 unless it is a number from 1 to _MAX_COUNT."""
    number = jsonguard.number(value)
    return int(number) if number is not None and 1 <= number <= _MAX_COUNT else 0


def rollout_summary(rollout: JsonObject) -> tuple[str, dict[str, float]]:
    """A rollout's line ("3/5 healthy · 1 rolled back · 1 offline") and its bar's
    segments in percent of its nodes. The total is what is counted, never more
    than 100 %, whatever the document's own `nodes` says. The script's
    `rolloutSummary` agrees."""
    states, offline = rollout_counts(rollout)
    total = sum(states.values()) + offline
    words = [f"{states.get('healthy', 0)}/{total} healthy"]
    words += [
        f"{states[state]} {state.replace('-', ' ')}" for state in _ROLLOUT_ORDER if state in states
    ]
    if offline:
        words.append(f"{offline} offline")
    shares = dict.fromkeys(_ROLLOUT_SEGMENTS, 0.0)
    for state, count in states.items():
        shares[_ROLLOUT_CLASSES[state]] += count
    shares["off"] += offline
    percent = {key: (100 * count / total if total else 0.0) for key, count in shares.items()}
    return " · ".join(words), percent


def _rollout_line(rollout: JsonObject) -> str:
    """One rollout: plugin, version, short content hash, the counts and the bar.
    The segments' widths are the only style written, built from numbers."""
    key = _rollout_key(rollout)
    assert key is not None
    plugin, content_hash = key
    version = _text(rollout.get("version"))
    text, percent = rollout_summary(rollout)
    short = content_hash.removeprefix("sha256:")[:12] or "unknown content"
    segments = "".join(
        f'<span class="seg {segment}" data-seg="{segment}" style="width: {percent[segment]:.1f}%">'
        "</span>"
        for segment in _ROLLOUT_SEGMENTS
    )
    return (
        f'<div class="rollout" data-rollout-plugin="{_esc(plugin)}"'
        f' data-rollout-hash="{_esc(content_hash)}">'
        f'<div class="rollout-head"><b>{_esc(plugin)}</b>'
        + (f'<span class="rollout-version">{_esc(version)}</span>' if version else "")
        + f"<code title={_quote(content_hash or 'content unknown')}>{_esc(short)}</code>"
        f'<span class="rollout-text" data-rollout-text>{_esc(text)}</span></div>'
        f'<div class="rollout-bar" role="img" aria-label={_quote(f"{plugin}: {text}")}'
        f" data-rollout-bar>{segments}</div></div>"
    )


def _node_card(node: JsonObject, stale_after: float | None) -> str:
    """Render one node's card, or a card holding only an error notice.

    Like `_card`, the fallback keeps its `data-node`, so the script does not
    take the node for one that appeared since the page was rendered.
    """
    name = node["node"]
    try:
        return _node_card_body(name, node, stale_after)
    except Exception as exc:  # deliberately broad: an escape would trap the guest
        notice = _error_notice(f"Cannot render node {name!r}: {type(exc).__name__}: {exc}")
        return (
            f'<section class="card node-card offline" data-node="{_esc(name)}">{notice}</section>'
        )


def _node_card_body(name: str, node: JsonObject, stale_after: float | None) -> str:
    """Render a node: online badge, last seen, and each plugin's latest values.

    The not-live notice is always present (hidden while online), so the
    script can switch a card between online and offline without markup.
    """
    online = node.get("online") is True
    state = "online" if online else "offline"
    badge = f'<span class="badge node-{state}" data-node-online>{state}</span>'
    seen = _last_seen(node.get("last_seen_age_seconds"), node.get("last_seen_ms"))
    labels = _labels(node.get("labels"))
    plugins = "".join(
        _guarded(f"plugin {plugin!r} of node {name!r}", _node_plugin, plugin, reading, stale_after)
        for plugin, reading in _dict(node.get("plugins")).items()
    )
    return (
        f'<section class="card node-card{"" if online else " offline"}" data-node="{_esc(name)}">'
        f'<div class="card-title"><h3>{_esc(name)}</h3><div class="badges">{badge}</div>'
        f'<span class="node-labels" title="labels" data-node-labels{"" if labels else " hidden"}>'
        f"{_esc(labels)}</span>"
        f'<span class="node-seen" data-node-seen>{_esc(seen)}</span></div>'
        f'<p class="not-live" data-node-not-live{" hidden" if online else ""}>'
        "not live: the last values received</p>"
        + (plugins or '<p class="muted">No readings received.</p>')
        + "</section>"
    )


def _node_plugin(name: str, reading: object, stale_after: float | None) -> str:
    """Render one plugin's latest published values on a node card.

    A plugin not heard from for longer than the hub's offline timeout is
    greyed even on an online node (it stopped publishing while others go on),
    and so is a retained state (see `plugin_age`).
    """
    data = _dict(reading)
    age_text, stale = plugin_age(data, stale_after)
    alarm = _dict(data.get("status")).get("alarm")
    raised = _alarm_raised(alarm)
    alarm_badge = (
        f'<span class="badge alarm" data-node-alarm{"" if raised else " hidden"}>'
        f"{_esc(f'alarm {_format_value(alarm)}' if raised else 'alarm')}</span>"
    )
    rows = []
    for item in _list(data.get("measurements")):
        measurement = _dict(item)
        if not measurement:
            continue
        field = _text(measurement.get("name"))
        unit = _text(measurement.get("unit"))
        decimals = 0 if field.lower() == "iaq" or unit.upper() == "IAQ" else 1
        value = measurement.get("value")
        number = jsonguard.number(value)
        shown = _format_number(float(number), decimals) if number is not None else None
        unit_html = f'<span class="unit">{_esc(unit)}</span>' if unit else ""
        rows.append(
            f'<div data-node-measure="{_esc(field)}" data-decimals="{decimals}">'
            f"<dt>{_esc(_label(field) or '?')}</dt>"
            f'<dd><span class="node-value" data-node-value>'
            f"{_esc(shown if shown is not None else _format_value(value))}</span>{unit_html}</dd>"
            "</div>"
        )
    values = (
        f'<dl class="node-measures">{"".join(rows)}</dl>'
        if rows
        else '<p class="muted">No measurements.</p>'
    )
    version_text, version_title = _plugin_version(data)
    version = (
        f'<span class="node-version" data-node-version title={_quote(version_title)}'
        f"{'' if version_text else ' hidden'}>{_esc(version_text)}</span>"
    )
    rollout = _dict(data.get("rollout"))
    state = _text(rollout.get("state"))
    rollout_pill = (
        f'<span class="pill {_ROLLOUT_CLASSES.get(state, "off")}" data-node-rollout'
        f" title={_quote(rollout_title(rollout))}{'' if state else ' hidden'}>"
        f"{_esc(state.replace('-', ' ') or 'rollout')}</span>"
    )
    return (
        f'<div class="node-plugin{" node-stale" if stale else ""}" data-node-plugin="{_esc(name)}">'
        f'<div class="node-plugin-head"><h4>{_esc(name)}</h4>{version}{rollout_pill}{alarm_badge}'
        f'<span class="node-age" data-node-age>{_esc(age_text)}</span></div>{values}</div>'
    )


def plugin_age(plugin: JsonObject, stale_after: float | None) -> tuple[str, bool]:
    """(text, greyed) of a node's plugin: "3 min ago" since the hub received its
    state, greyed beyond `stale_after`; "retained" for a state the hub has only
    from the broker's retained copy (a null age with a stamp: it says nothing about
    the present, and the node's clock is never compared with the hub's), greyed;
    the placeholder when there is no state. The script's `pluginAge` agrees."""
    age = jsonguard.number(plugin.get("age_seconds"))
    if age is not None:
        return _ago(age), stale_after is not None and age > stale_after
    if jsonguard.number(plugin.get("timestamp_ms")) is not None:
        return "retained", True
    return _MISSING, False


def _labels(value: object) -> str:
    """A node's labels as one line ("greenhouse · north"); only the strings."""
    return " · ".join(label for label in _list(value) if isinstance(label, str))


def _plugin_version(plugin: JsonObject) -> tuple[str, str]:
    """(text, tooltip) of the version a node runs: its version, or "configured"
    for code from the node's own config (a null version with a content hash), the
    content hash in the tooltip; ("", "") when the node has not said. The
    script's `pluginVersion` agrees."""
    version, content_hash = _text(plugin.get("version")), _text(plugin.get("content_hash"))
    if not version and not content_hash:
        return "", ""
    return version or "configured", content_hash or "content unknown"


def rollout_title(rollout: JsonObject) -> str:
    """A rollout pill's tooltip: the reason (why it was refused or rolled back),
    the version it is about and how long ago the hub got the report ("retained
    report" when it has only the broker's retained copy). The
    script's `rolloutTitle` agrees."""
    parts = []
    reason = _text(rollout.get("reason"))
    if reason:
        parts.append(reason)
    version = _text(rollout.get("version"))
    if version:
        parts.append(f"version {version}")
    age = jsonguard.number(rollout.get("age_seconds"))
    if age is not None:
        parts.append(f"reported {_ago(age)}")
    elif jsonguard.number(rollout.get("timestamp_ms")) is not None:
        parts.append("retained report")  # its age is unknown
    return " · ".join(parts)


def _last_seen(age_s: object, seen_ms: object) -> str:
    """Describe when the hub last heard a node live, e.g. "last seen 3 min ago · 12:00:00 UTC"."""
    age = jsonguard.number(age_s)
    if age is None:
        return "not heard live since the hub started"
    seen = jsonguard.number(seen_ms)
    return f"last seen {_ago(age)}" + (f" · {_format_timestamp(seen)}" if seen is not None else "")


def _ago(age_s: float | None) -> str:
    """Format an age in seconds as "3 min ago", or a placeholder when unknown."""
    return _MISSING if age_s is None else f"{_format_age(max(0.0, age_s))} ago"


def _health_table(plugins: JsonObject) -> str:
    """Render the plugin health table, one row per loaded plugin."""
    if not plugins:
        rows = '<tr><td colspan="8" class="muted">No plugins loaded.</td></tr>'
    else:
        rows = "".join(_health_row(name, _dict(info)) for name, info in plugins.items())
    headers = "".join(
        f"<th>{label}</th>"
        for label in (
            "Plugin",
            "State",
            "Polls",
            "Errors",
            "Traps",
            "Last poll",
            "Loaded version",
            "Last error",
        )
    )
    return (
        '<section class="health"><h2>Plugin health</h2><div class="table-wrap">'
        f"<table><thead><tr>{headers}</tr></thead><tbody>{rows}</tbody></table>"
        "</div></section>"
    )


def _health_row(name: str, info: JsonObject) -> str:
    """Render one plugin's health row, highlighting failures and non-zero counters.

    The state cell shows the plugin's health (`_health`): green "running" only
    while it is ok. The loaded version is the hash of the plugin's `.wasm`: the
    script reloads the page when the dashboard plugin's own hash changes. Each
    cell carries its column's name (`data-label`) for the phone layout, where
    every row is a small block of labelled values.
    """
    health, word = _health(info)
    reason = _text(info.get("health_reason"))
    poll_ms = jsonguard.number(info.get("last_poll_ms"))
    poll_text = f"{_format_number(poll_ms, 2)} ms" if poll_ms is not None else _MISSING
    loaded_hash = _format_value(info.get("loaded_hash"))
    last_error = info.get("last_error")
    error_class = ' class="bad"' if last_error is not None else ""
    title = _plugin_title(name, info)
    slug = f' <span class="muted">{_esc(name)}</span>' if title.lower() != name.lower() else ""
    cells = [
        f'<th scope="row" class="plugin-name">{_esc(title)}{slug}</th>',
        f'<td class="{_HEALTH_CLASSES.get(health, "")}" data-col="state" data-label="State"'
        f"{f' title={_quote(reason)}' if reason else ''}>{_esc(word)}</td>",
        _count_cell("polls", info.get("polls"), alert=False),
        _count_cell("errors", info.get("errors"), alert=True),
        _count_cell("traps", info.get("traps"), alert=True),
        f'<td class="num" data-col="last_poll_ms" data-label="Last poll">{_esc(poll_text)}</td>',
        f'<td class="hash" data-label="Loaded version"><code data-col="loaded_hash">'
        f"{_esc(loaded_hash)}</code></td>",
        f'<td{error_class} data-col="last_error" data-label="Last error">'
        f"{_esc(_format_value(last_error))}</td>",
    ]
    world = _esc(_text(info.get("world")))
    return (
        f'<tr data-health="{_esc(name)}" data-title="{_esc(title)}" data-world="{world}">'
        f"{''.join(cells)}</tr>"
    )


def _count_cell(key: str, value: object, alert: bool) -> str:
    """Render a counter cell; with `alert`, a positive count is shown in red."""
    number = jsonguard.number(value)
    css_class = "num bad" if alert and number is not None and number > 0 else "num"
    return (
        f'<td class="{css_class}" data-col="{key}" data-label="{key.capitalize()}">'
        f"{_esc(_format_value(value))}</td>"
    )


def _alarm_raised(alarm: object) -> bool:
    """Whether a status `alarm` value means an active alarm ("none" is quiet)."""
    return alarm not in (None, "none", "", False)


def _accuracy_text(value: object) -> str:
    """Describe the IAQ accuracy on its 0-3 scale, e.g. "2/3"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value}/{_IAQ_ACCURACY_MAX}"
    return _format_value(value)


def _error_notice(message: str) -> str:
    """Render an error message as a highlighted, escaped block."""
    return f'<p class="error" role="alert">{_esc(message)}</p>'


def _format_timestamp(value: object) -> str:
    """Format an epoch-ms value as UTC time of day, or a placeholder if unusable."""
    number = jsonguard.number(value)
    if number is None:
        return _MISSING
    return f"{format_utc_time(int(number))} UTC"


def _format_age(seconds: float) -> str:
    """Format an age compactly: seconds with a decimal, then whole minutes, then hours."""
    if seconds < 60:
        return f"{_format_number(float(seconds))} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{_format_number(seconds / 3600)} h"


def _format_value(value: object) -> str:
    """Turn any JSON scalar into display text (escaping is the caller's job)."""
    if value is None:
        return _MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return _format_number(value)
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _format_number(value: float, decimals: int = 1) -> str:
    """Round a number for display.

    Integers stay integers; values of 10,000 and more (uptimes, gas resistance)
    lose their decimals, which would only be noise at that size, while air
    pressure (about 1013 hPa) keeps its usual one decimal. Non-finite
    values, which JSON from Python can carry, become a placeholder because
    they cannot be rounded. The script's `fmtNumber` follows the same rules.
    """
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return _MISSING
    if decimals == 0 or abs(value) >= 10_000:
        return f"{round(value):,}"
    # Adding 0.0 turns the -0.0 that rounding small negatives produces into 0.0.
    return f"{round(value, decimals) + 0.0:,.{decimals}f}"


def _unit_kind(unit: str, device_class: object) -> str:
    """How a measurement's values are scaled for display: "duration" (seconds as
    "3 h 12 min"), "ohm" (kΩ, MΩ), "bytes" (KB, MB, GB), or "" (as they come).
    The page tags each measurement with it (`data-kind`) for the script."""
    if unit == "s" or (device_class == "duration" and unit in ("", "s")):
        return "duration"
    if unit in ("Ω", "ohm", "ohms", "Ohm"):
        return "ohm"
    if unit in ("B", "bytes"):
        return "bytes"
    return ""


# (kind, factor, unit) from the largest: a value is shown in the first unit it
# reaches at least 1 of. The script's SCALES is the same table.
_SCALES = {
    "ohm": ((1e6, "MΩ"), (1e3, "kΩ")),
    "bytes": ((1024.0**3, "GB"), (1024.0**2, "MB"), (1024.0, "KB")),
}


def _display(value: float, unit: str, kind: str, decimals: int) -> tuple[str, str]:
    """A measurement's value and unit as the card shows them: 108,134 Ω is
    "108.1" "kΩ", 3,636 s is "1 h 0 min" with no unit. The script's `display` agrees."""
    if kind == "duration":
        return _format_duration(value), ""
    for factor, scaled_unit in _SCALES.get(kind, ()):
        if abs(value) >= factor:
            return _format_number(value / factor, 1), scaled_unit
    return _format_number(value, decimals), unit


def _format_duration(seconds: float) -> str:
    """Seconds as a person says them: "42 s", "3 min 12 s", "3 h 12 min", "1 d 2 h"."""
    if not math.isfinite(seconds):
        return _MISSING
    whole = int(max(0.0, seconds))
    steps = ((86_400, "d", 3600, "h"), (3600, "h", 60, "min"), (60, "min", 1, "s"))
    for size, name, smaller, smaller_name in steps:
        if whole >= size:
            rest = (whole % size) // smaller
            return f"{whole // size} {name}" + (f" {rest} {smaller_name}" if rest else "")
    return f"{whole} s"


def _rgb(value: object) -> tuple[int, int, int] | None:
    """Validate an `[r, g, b]` triple, clamping each channel to 0-255."""
    if not isinstance(value, list) or len(value) != 3:
        return None
    channels = []
    for channel in value:
        number = jsonguard.number(channel)
        if number is None:
            return None
        channels.append(min(255, max(0, int(number))))
    return channels[0], channels[1], channels[2]


def _label(key: str) -> str:
    """Turn a snake_case key or a plugin's slug into a label a person reads:
    "gas_resistance" is "Gas resistance", "cpu_temperature" "CPU temperature",
    "pi-monitor" "Pi monitor" and "dht22" "DHT22". The script's `label` agrees."""
    words = key.replace("_", " ").replace("-", " ").split()
    shown = []
    for index, word in enumerate(words):
        lowered = word.lower()
        letters = any(c.isalpha() for c in word)
        if lowered in _ACRONYMS or (letters and any(c.isdigit() for c in word)):
            shown.append(word.upper())
        elif index == 0:
            shown.append(word[:1].upper() + word[1:])
        else:
            shown.append(word)
    return " ".join(shown)


def _quote(value: str) -> str:
    """An attribute value, escaped and in double quotes."""
    return f'"{_esc(value)}"'


def _text(value: object) -> str:
    """Return `value` if it is a string, else an empty string."""
    return value if isinstance(value, str) else ""


def _dict(value: object) -> JsonObject:
    """Return `value` if it is a JSON object, else an empty one."""
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    """Return `value` if it is a JSON array, else an empty one."""
    return value if isinstance(value, list) else []


def _esc(value: str) -> str:
    """Escape text for both element content and quoted attribute values."""
    return html.escape(value, quote=True)
