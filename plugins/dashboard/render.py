"""Pure HTML rendering of the wasihost dashboard.

This module is the whole dashboard except the WIT binding: it turns the host's
app state (the `GET /api/readings` JSON) into one self-contained HTML5 page.
It deliberately imports nothing but the standard library (and never
`wit_world`), so it runs unchanged inside the WebAssembly guest and under
pytest on the development machine.

Two rules shape the code:

* Every string in the state may come from an untrusted plugin (names, units,
  status keys, error messages), so every value reaches the page through
  `html.escape`; only markup built here from validated integers (LED colours,
  CSS classes from fixed tables) is written unescaped.
* An exception escaping the guest traps the plugin and blanks the dashboard,
  so every field is type-checked before use, each card is rendered behind its
  own guard, and `render_json` turns any remaining failure into an error page.
"""

import html
import json
import math
import re
from collections.abc import Callable
from typing import Any

JsonObject = dict[str, Any]

_MISSING = "—"

# The real state is about 5 levels deep. The guest's C stack is exhausted (a trap,
# not a RecursionError) somewhere between 1,000 and 2,000 levels of JSON nesting,
# so deeper input is refused before `json.loads` ever sees it.
_MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]")

# (upper bound of the rounded IAQ value, label, CSS class); the last band is open-ended.
_IAQ_BANDS: tuple[tuple[int, str, str], ...] = (
    (50, "good", "iaq-good"),
    (100, "moderate", "iaq-moderate"),
    (150, "unhealthy for sensitive groups", "iaq-sensitive"),
    (200, "unhealthy", "iaq-unhealthy"),
    (300, "very unhealthy", "iaq-very-unhealthy"),
)
_IAQ_WORST = ("hazardous", "iaq-hazardous")

# The BME680 IAQ accuracy scale tops out at 3 (baseline settled).
_IAQ_ACCURACY_MAX = 3

_CSS = """
:root {
  color-scheme: dark light;
  --bg: #0f1419; --card: #1a2129; --border: #2c3640; --text: #e6edf3;
  --muted: #8b98a5; --ok: #3fb950; --warn: #d29922; --bad: #f85149;
}
@media (prefers-color-scheme: light) {
  :root {
    --bg: #f4f6f8; --card: #ffffff; --border: #d0d7de; --text: #1f2328;
    --muted: #59636e; --ok: #1a7f37; --warn: #9a6700; --bad: #cf222e;
  }
}
* { box-sizing: border-box; }
body {
  margin: 0; padding: clamp(0.75rem, 2vw, 2rem);
  background: var(--bg); color: var(--text);
  font: 16px/1.4 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  overflow-wrap: anywhere;
}
h1 { margin: 0; font-size: clamp(1.4rem, 4vw, 2.2rem); }
h2 { margin: 0; font-size: 1.25rem; }
.page-header {
  display: flex; flex-wrap: wrap; gap: 0.5rem 2rem; align-items: baseline;
  margin-bottom: 1rem;
}
.meta { display: flex; flex-wrap: wrap; gap: 0.25rem 1.5rem; color: var(--muted); }
.meta b { color: var(--text); font-weight: 600; }
.grid {
  display: grid; gap: 1rem;
  grid-template-columns: repeat(auto-fit, minmax(min(100%, 19rem), 1fr));
}
.card {
  background: var(--card); border: 1px solid var(--border);
  border-radius: 12px; padding: 1rem 1.25rem;
  display: flex; flex-direction: column; gap: 0.75rem;
}
.card.alarmed { border-color: var(--bad); box-shadow: 0 0 0 2px var(--bad); }
.card-title { display: flex; justify-content: space-between; gap: 1rem; align-items: baseline; }
.world, .updated, .muted { color: var(--muted); font-size: 0.85rem; }
.badges { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.badge {
  display: inline-block; padding: 0.15rem 0.6rem; border-radius: 999px;
  font-size: 0.85rem; font-weight: 600; border: 1px solid currentColor;
}
.alarm { color: #fff; background: var(--bad); border-color: var(--bad);
  font-size: 1.1rem; text-transform: uppercase; letter-spacing: 0.05em; }
.stale { color: var(--warn); }
.measurements { display: grid; gap: 0.75rem; margin: 0;
  grid-template-columns: repeat(auto-fill, minmax(8.5rem, 1fr)); }
.measurements dt { color: var(--muted); font-size: 0.85rem; }
.measurements dd { margin: 0; }
.value { font-size: clamp(1.8rem, 6vw, 2.6rem); font-weight: 700;
  font-variant-numeric: tabular-nums; }
.unit { color: var(--muted); margin-left: 0.2rem; }
.iaq-detail { display: flex; flex-wrap: wrap; gap: 0.25rem 0.5rem; margin-top: 0.25rem;
  font-size: 0.85rem; }
.iaq-good { color: #2ea043; }
.iaq-moderate { color: #d4a72c; }
.iaq-sensitive { color: #e3831c; }
.iaq-unhealthy { color: #f85149; }
.iaq-very-unhealthy { color: #a371f7; }
.iaq-hazardous { color: #b62324; }
.status { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; margin: 0; font-size: 0.9rem; }
.status div { display: flex; gap: 0.35rem; }
.status dt { color: var(--muted); }
.status dd { margin: 0; }
.error {
  margin: 0; padding: 0.5rem 0.75rem; border-radius: 8px;
  border-left: 4px solid var(--bad); background: rgba(248, 81, 73, 0.12);
  white-space: pre-wrap;
}
.leds { display: flex; flex-wrap: wrap; gap: 0.5rem 1rem; align-items: center;
  font-size: 0.85rem; }
.led { display: inline-flex; gap: 0.4rem; align-items: center; }
.swatch {
  display: inline-block; width: 1.4rem; height: 1.4rem; border-radius: 50%;
  border: 2px solid var(--border);
}
.strip { display: flex; flex-wrap: wrap; gap: 0.35rem; }
.strip .swatch { width: 1.1rem; height: 1.1rem; }
.health { margin-top: 1.5rem; }
.health h2 { margin-bottom: 0.5rem; }
.table-wrap { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; background: var(--card);
  border: 1px solid var(--border); border-radius: 12px; }
th, td { text-align: left; padding: 0.5rem 0.75rem; border-bottom: 1px solid var(--border);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 0.85rem; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.ok { color: var(--ok); }
.warn { color: var(--warn); }
.bad { color: var(--bad); font-weight: 600; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.85rem; }
"""


def render_json(state_json: str) -> str:
    """Render the dashboard from the raw JSON the host passes to the guest.

    This is the guest's only entry point and it never raises: a trap would
    mark the dashboard plugin failed and leave the user with no page at all,
    whereas an error page at least says what went wrong. Malformed JSON, a
    non-object state and any unexpected rendering bug all become error pages.
    """
    try:
        depth = _json_depth(state_json)
        if depth > _MAX_JSON_DEPTH:
            return render_error_page(
                f"the app state is nested {depth} levels deep, more than {_MAX_JSON_DEPTH}"
            )
        state = json.loads(state_json)
        if not isinstance(state, dict):
            return render_error_page(
                f"the app state is a JSON {type(state).__name__}, expected an object"
            )
        return render_page(state)
    except Exception as exc:  # deliberately broad: an escape would trap the guest
        return render_error_page(f"{type(exc).__name__}: {exc}")


def render_page(state: JsonObject) -> str:
    """Render the full dashboard page for one snapshot of the host's app state.

    Any key may be missing, null or of the wrong type (the host is being
    written in parallel and plugins supply most of the content), so each
    section renders whatever is usable and falls back to a placeholder.
    """
    node = _text(state.get("node")) or "wasihost"
    readings = _dict(state.get("readings"))
    strip = _list(state.get("leds"))
    if readings:
        cards = "".join(
            _guarded(f"the {name!r} card", _reading_card, name, reading, strip)
            for name, reading in readings.items()
        )
    else:
        cards = '<p class="muted">No readings yet.</p>'
    body = (
        _guarded("the header", _page_header, state, node, strip)
        + f'<main class="grid">{cards}</main>'
        + _guarded("the plugin table", _health_table, _dict(state.get("plugins")))
    )
    return _document(f"{node} · wasihost", body)


def render_error_page(message: str) -> str:
    """Render a complete page that only reports `message`.

    Used when the state cannot be rendered at all, so that the browser still
    gets a valid, styled document instead of an empty response.
    """
    body = (
        '<header class="page-header"><h1>wasihost dashboard</h1></header>'
        f"{_error_notice(f'Cannot render the dashboard: {message}')}"
    )
    return _document("wasihost dashboard", body)


def iaq_band(iaq: float) -> tuple[str, str]:
    """Return the (label, CSS class) of the air-quality band for an IAQ value.

    Bands follow the BME680 IAQ scale (0-50 good ... 301+ hazardous). The value
    is rounded first so the band always agrees with the integer on the page.
    """
    rounded = round(iaq)
    for upper, label, css_class in _IAQ_BANDS:
        if rounded <= upper:
            return label, css_class
    return _IAQ_WORST


def format_utc_time(timestamp_ms: int) -> str:
    """Format epoch milliseconds as `HH:MM:SS` in UTC.

    Plain arithmetic keeps this independent of the guest's clock and time-zone
    support; the wall tablet only needs the time of day to spot a stalled host.
    """
    seconds_of_day = (timestamp_ms // 1000) % 86_400
    hours, rest = divmod(seconds_of_day, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}"


def _json_depth(text: str) -> int:
    """Return the deepest array/object nesting of JSON text without parsing it.

    Brackets inside string literals are dropped first; what remains is a short
    run of brackets, so the Python loop stays cheap even for a large state.
    Malformed text only needs a plausible answer: `json.loads` rejects it next.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        depth += 1 if char in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _document(title: str, body: str) -> str:
    """Wrap `body` in the HTML5 skeleton with the inline style sheet."""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n'
        '<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(title)}</title>\n"
        f"<style>{_CSS}</style>\n"
        f"</head>\n<body>\n{body}\n</body>\n</html>\n"
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


def _page_header(state: JsonObject, node: str, strip: list[Any]) -> str:
    """Render the page header: node, board, cycle, update time and LED strip."""
    facts = [
        ("board", _format_value(state.get("board"))),
        ("cycle", _format_value(state.get("cycle"))),
        ("updated", _format_timestamp(state.get("timestamp_ms"))),
    ]
    interval = _number(state.get("interval_seconds"))
    if interval is not None:
        facts.append(("interval", f"{_format_number(interval)} s"))
    meta = "".join(f"<span>{_esc(label)} <b>{_esc(value)}</b></span>" for label, value in facts)
    swatches = "".join(_swatch(index, _rgb(colour)) for index, colour in enumerate(strip))
    strip_html = f'<div class="strip" aria-label="LED strip">{swatches}</div>' if strip else ""
    return (
        f'<header class="page-header"><h1>{_esc(node)}</h1>'
        f'<div class="meta">{meta}</div>{strip_html}</header>'
    )


def _reading_card(name: str, reading: object, strip: list[Any]) -> str:
    """Render one plugin's latest reading as a card."""
    data = _dict(reading)
    status = dict(_dict(data.get("status")))
    badges: list[str] = []

    # A quiet alarm ("none") stays in the status list; a raised one becomes the banner.
    alarm = status.get("alarm")
    alarmed = alarm not in (None, "none", "", False)
    if alarmed:
        del status["alarm"]
        badges.append(f'<span class="badge alarm">alarm {_esc(_format_value(alarm))}</span>')

    if "stale" in status:
        stale = status.pop("stale")
        age_ms = _number(status.pop("age_ms", None))
        if stale is True:
            age = f" · {_format_number(age_ms / 1000)} s old" if age_ms is not None else ""
            badges.append(f'<span class="badge stale">stale{age}</span>')

    accuracy = _accuracy_text(status["iaq_accuracy"]) if "iaq_accuracy" in status else None
    measurements, accuracy_shown = _measurements(_list(data.get("measurements")), accuracy)
    if accuracy_shown:
        del status["iaq_accuracy"]
    elif accuracy is not None:
        status["iaq_accuracy"] = accuracy

    world = _text(data.get("world"))
    parts = [
        '<div class="card-title">'
        f"<h2>{_esc(name)}</h2>"
        + (f'<span class="world">{_esc(world)}</span>' if world else "")
        + "</div>"
    ]
    if badges:
        parts.append(f'<div class="badges">{"".join(badges)}</div>')
    parts.append(measurements)
    if status:
        parts.append(_status_list(status))
    error = data.get("error")
    if error is not None:
        parts.append(_error_notice(_format_value(error)))
    parts.append(_card_leds(_list(data.get("leds")), strip))
    parts.append(
        f'<div class="updated">updated {_esc(_format_timestamp(data.get("timestamp_ms")))}</div>'
        if data.get("timestamp_ms") is not None
        else '<div class="updated">never polled successfully</div>'
    )
    css_class = "card alarmed" if alarmed else "card"
    return f'<section class="{css_class}">{"".join(parts)}</section>'


def _measurements(items: list[Any], accuracy: str | None) -> tuple[str, bool]:
    """Render the measurement list; return it and whether `accuracy` was placed.

    The IAQ accuracy belongs next to the IAQ value it qualifies, so it is only
    handed back to the status list when there is no IAQ measurement to attach
    it to.
    """
    rows: list[str] = []
    accuracy_shown = False
    for item in items:
        measurement = _dict(item)
        if not measurement:
            continue
        name = _text(measurement.get("name")) or "?"
        unit = _text(measurement.get("unit"))
        value = measurement.get("value")
        is_iaq = name.lower() == "iaq" or unit.upper() == "IAQ"
        number = _number(value)
        shown = _format_number(number, 0 if is_iaq else 1) if number is not None else None
        detail = ""
        if is_iaq and number is not None:
            label, css_class = iaq_band(number)
            extras = [f'<span class="{css_class}">{_esc(label)}</span>']
            if accuracy is not None:
                extras.append(f'<span class="muted">accuracy {_esc(accuracy)}</span>')
                accuracy_shown = True
            detail = f'<div class="iaq-detail">{"".join(extras)}</div>'
        unit_html = f'<span class="unit">{_esc(unit)}</span>' if unit else ""
        rows.append(
            f"<div><dt>{_esc(_label(name))}</dt><dd>"
            f'<span class="value">{_esc(shown if shown is not None else _format_value(value))}'
            f"</span>{unit_html}{detail}</dd></div>"
        )
    if not rows:
        return '<p class="muted">No measurements.</p>', accuracy_shown
    return f'<dl class="measurements">{"".join(rows)}</dl>', accuracy_shown


def _status_list(status: JsonObject) -> str:
    """Render the remaining status values as a compact key/value list."""
    rows = "".join(
        f"<div><dt>{_esc(_label(str(key)))}</dt><dd>{_esc(_format_value(value))}</dd></div>"
        for key, value in status.items()
    )
    return f'<dl class="status">{rows}</dl>'


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
    dot = f'<span class="swatch" style="{css}" title="LED {index}: {text}"></span>'
    if not labelled:
        return dot
    return f'<span class="led">{dot}LED {index} <code>{text}</code></span>'


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
            "Loaded hash",
            "Last error",
        )
    )
    return (
        '<section class="health"><h2>Plugin health</h2><div class="table-wrap">'
        f"<table><thead><tr>{headers}</tr></thead><tbody>{rows}</tbody></table>"
        "</div></section>"
    )


def _health_row(name: str, info: JsonObject) -> str:
    """Render one plugin's health row, highlighting failures and non-zero counters."""
    state = _text(info.get("state"))
    poll_ms = _number(info.get("last_poll_ms"))
    poll_text = f"{_format_number(poll_ms, 2)} ms" if poll_ms is not None else _MISSING
    last_error = info.get("last_error")
    cells = [
        f"<td>{_esc(name)}</td>",
        f'<td class="{_state_class(state)}">{_esc(state or _MISSING)}</td>',
        _count_cell(info.get("polls"), alert=False),
        _count_cell(info.get("errors"), alert=True),
        _count_cell(info.get("traps"), alert=True),
        f'<td class="num">{_esc(poll_text)}</td>',
        f"<td><code>{_esc(_format_value(info.get('loaded_hash')))}</code></td>",
        f'<td class="bad">{_esc(_format_value(last_error))}</td>'
        if last_error is not None
        else f"<td>{_MISSING}</td>",
    ]
    return f"<tr>{''.join(cells)}</tr>"


def _count_cell(value: object, alert: bool) -> str:
    """Render a counter cell; with `alert`, a positive count is shown in red."""
    number = _number(value)
    css_class = "num bad" if alert and number is not None and number > 0 else "num"
    return f'<td class="{css_class}">{_esc(_format_value(value))}</td>'


def _state_class(state: str) -> str:
    """Map a plugin state to a CSS class from a fixed set (never from the data)."""
    lowered = state.lower()
    if lowered == "running":
        return "ok"
    if any(word in lowered for word in ("fail", "trap", "error", "crash")):
        return "bad"
    return "warn" if lowered else ""


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
    number = _number(value)
    if number is None:
        return _MISSING
    return f"{format_utc_time(int(number))} UTC"


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
    they cannot be rounded.
    """
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return _MISSING
    if decimals == 0 or abs(value) >= 10_000:
        return f"{round(value):,}"
    # Adding 0.0 turns the -0.0 that rounding small negatives produces into 0.0.
    return f"{round(value, decimals) + 0.0:,.{decimals}f}"


def _number(value: object) -> float | None:
    """Return `value` if it is a usable JSON number (not a bool), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _rgb(value: object) -> tuple[int, int, int] | None:
    """Validate an `[r, g, b]` triple, clamping each channel to 0-255."""
    if not isinstance(value, list) or len(value) != 3:
        return None
    channels = []
    for channel in value:
        number = _number(channel)
        if number is None:
            return None
        channels.append(min(255, max(0, int(number))))
    return channels[0], channels[1], channels[2]


def _label(key: str) -> str:
    """Turn a snake_case key into a readable label."""
    return key.replace("_", " ")


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
