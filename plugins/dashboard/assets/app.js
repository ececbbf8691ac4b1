"use strict";
(() => {
  const IAQ = IAQ_TABLE;
  const MISSING = "\u2014";
  const CHART_POINTS = 240;
  const W = 300;
  const H = 60;
  const STATE_CLASSES = ["ok", "warn", "bad"];
  const HEALTH_CLASSES = new Map([["ok", "ok"], ["failing", "bad"], ["unavailable", "bad"]]);
  const IAQ_CLASSES = IAQ.bands.map((band) => band[2]).concat([IAQ.worst[1]]);
  const body = document.body;
  let intervalMs = (Number(body.dataset.interval) || 2) * 1000;
  let nowMs = Number(body.dataset.now) || Date.now();
  let lastEventAt = 0;
  let reloadAskedAt = 0;

  const isObj = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const obj = (v) => (isObj(v) ? v : {});
  const arr = (v) => (Array.isArray(v) ? v : []);
  const num = (v) => (typeof v === "number" && Number.isFinite(v) ? v : null);
  const all = (root, selector) => Array.from(root.querySelectorAll(selector));
  const byData = (root, selector, key) => {
    const found = new Map();
    for (const el of all(root, selector)) found.set(el.dataset[key], el);
    return found;
  };
  const setText = (el, text) => {
    if (el && el.textContent !== text) el.textContent = text;
  };
  const show = (el, visible) => {
    if (el) el.hidden = !visible;
  };
  const setClass = (el, choices, chosen) => {
    if (!el) return;
    for (const name of choices) el.classList.toggle(name, name === chosen);
  };

  function fmtNumber(v, decimals) {
    if (!Number.isFinite(v)) return MISSING;
    const d = Math.abs(v) >= 10000 ? 0 : decimals;
    const rounded = Math.round(v * 10 ** d) / 10 ** d + 0;
    return rounded.toLocaleString("en-US", {
      minimumFractionDigits: d, maximumFractionDigits: d,
    });
  }
  function fmtValue(v) {
    if (v === null || v === undefined) return MISSING;
    if (typeof v === "boolean") return v ? "yes" : "no";
    if (typeof v === "number") {
      return Number.isInteger(v) ? v.toLocaleString("en-US") : fmtNumber(v, 1);
    }
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  const fmtClock = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false });
  const fmtHourMinute = (ms) =>
    new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", hour12: false });
  const fmtDay = (ms) => new Date(ms).toLocaleDateString([], { day: "numeric", month: "short" });
  const fmtTime = (v) => (num(v) === null ? MISSING : fmtClock(v));
  function fmtDuration(seconds) {
    // render.py's _format_duration: "42 s", "3 min 12 s", "3 h 12 min", "1 d 2 h".
    if (!Number.isFinite(seconds)) return MISSING;
    const whole = Math.trunc(Math.max(0, seconds));
    for (const [size, name, smaller, smallerName] of [[86400, "d", 3600, "h"],
      [3600, "h", 60, "min"], [60, "min", 1, "s"]]) {
      if (whole >= size) {
        const rest = Math.floor((whole % size) / smaller);
        return Math.floor(whole / size) + " " + name + (rest ? " " + rest + " " + smallerName : "");
      }
    }
    return whole + " s";
  }
  // render.py's _SCALES: [factor, unit] from the largest, per kind (data-kind).
  const SCALES = new Map([
    ["ohm", [[1e6, "M\u03a9"], [1e3, "k\u03a9"]]],
    ["bytes", [[1024 ** 3, "GB"], [1024 ** 2, "MB"], [1024, "KB"]]],
  ]);
  function display(v, kind, unit, decimals) {
    // [text, unit] as render.py's _display: 108,134 Ω is ["108.1", "kΩ"].
    if (kind === "duration") return [fmtDuration(v), ""];
    for (const [factor, scaled] of SCALES.get(kind) || []) {
      if (Math.abs(v) >= factor) return [fmtNumber(v / factor, 1), scaled];
    }
    return [fmtNumber(v, decimals), unit];
  }
  function health(info) {
    // [health, word] as render.py's _health: green "running" only while ok.
    const state = typeof info.state === "string" ? info.state : "";
    let h = HEALTH_CLASSES.has(info.health) ? info.health : "";
    if (!h) h = state === "running" ? "ok" : state ? "unavailable" : "";
    return [h, h === "failing" ? "failing" : state || MISSING];
  }
  function fmtAge(seconds) {
    if (seconds < 60) return fmtNumber(seconds, 1) + " s";
    if (seconds < 3600) return Math.round(seconds / 60) + " min";
    return fmtNumber(seconds / 3600, 1) + " h";
  }
  function iaqBand(v) {
    const rounded = Math.round(v);
    for (const [upper, label, cls] of IAQ.bands) if (rounded <= upper) return [label, cls];
    return IAQ.worst;
  }
  const alarmRaised = (a) => ![undefined, null, "none", "", false].includes(a);
  const accuracyText = (v) => (Number.isInteger(v) ? v + "/" + IAQ.accuracyMax : fmtValue(v));

  // The shell (the parent window, at this host's origin) relays the stream and history.
  const toShell = (message) => parent.postMessage(message, location.origin);

  function reloadOnce() {
    // A new plugin, measurement or fleet node needs server-rendered markup. The shell
    // reloads this frame at most every 30 s, so a fresh page that still lacks it cannot
    // loop; asking again later is harmless.
    if (Date.now() - reloadAskedAt < 30000) return;
    reloadAskedAt = Date.now();
    toShell({ type: "reload" });
  }

  function paintLed(el, colour) {
    const rgb = arr(colour).length === 3 && arr(colour).every((c) => num(c) !== null)
      ? colour.map((c) => Math.min(255, Math.max(0, Math.trunc(c))))
      : null;
    const text = rgb ? "rgb(" + rgb.join(", ") + ")" : "unknown";
    el.style.backgroundColor = rgb ? text : "transparent";
    el.setAttribute("title", "LED " + el.dataset.led + ": " + text);
    return text;
  }

  // ---- charts ----------------------------------------------------------
  // A chart's points are [t, mean, min, max]: a raw value v is [t, v, v, v]. The
  // 1 h chart and the long one (data-long) at 24 h take live points from the
  // stream; a longer span is drawn from the host's statistics only, reloaded
  // every RELOAD_LONG_MS (a raw value among 5-minute or hourly buckets would mix
  // resolutions).
  const DAY_MS = 86400000;
  const RELOAD_LONG_MS = 5 * 60000;
  // The bucket width of each resolution /api/history answers with ("raw" has none).
  const BUCKET_MS = new Map([["5m", 300000], ["1h", 3600000]]);
  // A chart's values are shown in one unit, chosen by its largest: durations in
  // s, min, h or d; ohms and bytes as on the card.
  const DURATION_SCALES = [[86400 * 2, 86400, "d"], [7200, 3600, "h"], [120, 60, "min"]];
  function chartScale(kind, unit, magnitude) {
    // [divisor, unit, decimals or null (the measurement's own)]
    if (kind === "duration") {
      for (const [from, size, name] of DURATION_SCALES) {
        if (magnitude >= from) return [size, name, 1];
      }
      return [1, "s", 0];
    }
    for (const [factor, scaled] of SCALES.get(kind) || []) {
      if (magnitude >= factor) return [factor, scaled, 1];
    }
    return [1, unit, null];
  }
  const charts = [];
  for (const card of all(document, "[data-plugin]")) {
    for (const measure of all(card, "[data-measure]")) {
      for (const fig of all(measure, "[data-window-ms]")) {
        const nameEl = measure.querySelector(".m-label");
        charts.push({
          plugin: card.dataset.plugin, field: measure.dataset.measure,
          name: nameEl ? nameEl.textContent : measure.dataset.measure,
          decimals: Number(measure.dataset.decimals) || 0,
          unit: measure.dataset.unit || "", kind: measure.dataset.kind || "",
          windowMs: Number(fig.dataset.windowMs), label: fig.dataset.label || "",
          long: "long" in fig.dataset, fig, svg: fig.querySelector("svg"),
          line: fig.querySelector("[data-line]"), area: fig.querySelector("[data-area]"),
          range: fig.querySelector("[data-range]"), span: fig.querySelector("[data-span]"),
          empty: fig.querySelector("[data-empty]"), points: [],
          plot: fig.querySelector("[data-plot]"), cursor: fig.querySelector("[data-cursor]"),
          dot: fig.querySelector("[data-dot]"), tip: fig.querySelector("[data-tip]"),
          yTicks: all(fig, "[data-y-tick]"), xTicks: all(fig, "[data-x-tick]"),
          // banded: the history carried min and max; bucketMs: its resolution's width;
          // generation: bumped when the span changes, so a late answer is dropped.
          banded: false, bucketMs: 0, generation: 0,
          // view: what the last drawing mapped (for the pointer); hover: the pointer's
          // place across the plot (0-1), or the index the keyboard chose.
          view: null, hover: null,
        });
      }
    }
  }
  const chartsFor = (plugin, field) =>
    charts.filter((c) => c.plugin === plugin && c.field === field);
  const takesLive = (chart) => chart.windowMs <= DAY_MS;

  function addPoint(chart, t, v) {
    // One point per 1/CHART_POINTS of the window: a newer value in the same
    // slot replaces the last point, so memory stays bounded for weeks. In a
    // band the slot keeps the lowest and highest values it has seen.
    const pts = chart.points;
    const last = pts[pts.length - 1];
    if (last && t <= last[0]) return;
    const step = chart.windowMs / CHART_POINTS;
    if (last && Math.floor(t / step) === Math.floor(last[0] / step)) {
      pts[pts.length - 1] = chart.banded
        ? [t, v, Math.min(last[2], v), Math.max(last[3], v)]
        : [t, v, v, v];
    } else {
      pts.push([t, v, v, v]);
    }
  }

  function niceStep(raw) {
    // The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least `raw`.
    const power = 10 ** Math.floor(Math.log10(raw));
    for (const m of [1, 2, 2.5, 5]) if (m * power >= raw * (1 - 1e-9)) return m * power;
    return 10 * power;
  }
  function yAxis(lo, hi, decimals) {
    // [bottom, step]: three round ticks (bottom, +step, +2 steps) around lo..hi.
    if (!(hi > lo)) {
      const step = niceStep(Math.max(Math.abs(hi) * 0.01, 10 ** -decimals));
      return [(Math.round(lo / step) - 1) * step, step];
    }
    let step = niceStep((hi - lo) / 2);
    for (let i = 0; i < 20; i += 1) {
      const bottom = Math.floor(lo / step) * step;
      if (bottom + 2 * step >= hi - step * 1e-9) return [bottom, step];
      step = niceStep(step * 1.01);
    }
    return [lo, (hi - lo) / 2];
  }
  function decimalsOf(step) {
    let d = 0;
    while (d < 6 && Math.abs(Math.round(step * 10 ** d) - step * 10 ** d) > 1e-6) d += 1;
    return d;
  }
  function fmtSpan(ms) {
    // How long the host has drawn for, roughly: "40 s", "12 min", "5 h", "3 d".
    const minutes = ms / 60000;
    if (minutes < 1) return Math.max(1, Math.round(ms / 1000)) + " s";
    if (minutes < 90) return Math.max(1, Math.round(minutes)) + " min";
    if (minutes < 48 * 60) return Math.round(minutes / 60) + " h";
    return Math.round(minutes / 1440) + " d";
  }
  function fmtAxisTime(t, spanMs) {
    // Times of day, or dates beyond a day and a half; a span of minutes counts back
    // from now ("-12 min"), which minutes of a clock would repeat.
    if (spanMs < 20 * 60000) {
      const ago = (nowMs - t) / 1000;
      return "\u2212" + (ago < 90 ? Math.round(ago) + " s" : Math.round(ago / 60) + " min");
    }
    return spanMs <= 1.5 * DAY_MS ? fmtHourMinute(t) : fmtDay(t);
  }

  function drawChart(chart) {
    const from = nowMs - chart.windowMs;
    // A statistics bucket is stamped with its start: the one holding `from` is kept.
    chart.points = chart.points.filter((p) => p[0] >= from - chart.bucketMs);
    const pts = chart.points;
    // One point is drawn (a dot): a fresh host's long chart holds a single bucket.
    show(chart.empty, pts.length === 0);
    chart.area.classList.toggle("band", chart.banded);
    if (pts.length === 0) {
      chart.line.setAttribute("d", "");
      chart.area.setAttribute("d", "");
      setText(chart.range, "");
      setText(chart.span, chart.label);
      for (const el of chart.yTicks.concat(chart.xTicks)) setText(el, "");
      chart.view = null;
      showCursor(chart);
      return;
    }
    const t0 = pts[0][0];
    const t1 = Math.max(nowMs, pts[pts.length - 1][0]);
    let lo = Infinity;
    let hi = -Infinity;
    for (const p of pts) {
      lo = Math.min(lo, p[2]);
      hi = Math.max(hi, p[3]);
    }
    // The y axis: the chart's unit (kΩ, h...), then three round ticks the plot spans.
    const [div, unit, scaledDecimals] = chartScale(chart.kind, chart.unit,
      Math.max(Math.abs(lo), Math.abs(hi)));
    const decimals = scaledDecimals === null ? chart.decimals : scaledDecimals;
    const [bottom, step] = yAxis(lo / div, hi / div, decimals);
    const tickDecimals = decimalsOf(step);
    chart.yTicks.forEach((el, i) => {
      // Top first, as on the page.
      setText(el, fmtNumber(bottom + (2 - i) * step, tickDecimals));
    });
    const y = (v) => (H - ((v / div - bottom) / (2 * step)) * H).toFixed(1);
    const x = (t) => (((t - t0) / Math.max(t1 - t0, 1)) * W).toFixed(1);
    // A gap much longer than a poll interval (host down) or than a statistics
    // bucket breaks the line; adjacent buckets are one line, not dots.
    const gap = Math.max(3 * Math.max(chart.windowMs / CHART_POINTS, chart.bucketMs),
      5 * intervalMs);
    const segments = [];
    pts.forEach((p, i) => {
      if (i === 0 || p[0] - pts[i - 1][0] > gap) segments.push([]);
      segments[segments.length - 1].push(p);
    });
    const trace = (seg, k) => seg.map((p) => x(p[0]) + " " + y(p[k])).join("L");
    // A lone point is a zero-length line: its round caps draw it as a dot.
    const line = segments.map((seg) => "M" + trace(seg, 1) + (seg.length === 1 ? "l0 0" : ""));
    // The band runs along the maxima and back along the minima; without statistics
    // the area fills below the line.
    const area = segments.map((seg) => (chart.banded
      ? "M" + trace(seg, 3) + "L" + trace(seg.slice().reverse(), 2) + "Z"
      : "M" + trace(seg, 1) + "L" + x(seg[seg.length - 1][0]) + " " + H +
        "L" + x(seg[0][0]) + " " + H + "Z"));
    chart.line.setAttribute("d", line.join(""));
    chart.area.setAttribute("d", area.join(""));
    const unitText = unit ? " " + unit : "";
    const range = fmtNumber(lo / div, decimals) + "\u2013" + fmtNumber(hi / div, decimals);
    setText(chart.range, range + unitText);
    // Until the host has run for a whole window the x axis starts at the first
    // point, and the caption says how long that is.
    const partial = t0 - from > Math.max(chart.windowMs / CHART_POINTS, chart.bucketMs);
    setText(chart.span, partial ? "last " + fmtSpan(t1 - t0) : chart.label);
    const spanMs = t1 - t0;
    setText(chart.xTicks[0], fmtAxisTime(t0, spanMs));
    setText(chart.xTicks[1], spanMs > 0 ? fmtAxisTime(t0 + spanMs / 2, spanMs) : "");
    setText(chart.xTicks[2], "now");
    chart.view = { t0, t1, div, unit: unitText, decimals, bottom, step };
    showCursor(chart);
  }

  // ---- the crosshair and tooltip ----------------------------------------
  function nearest(pts, t) {
    let lo = 0;
    let hi = pts.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (pts[mid][0] <= t) lo = mid;
      else hi = mid;
    }
    return Math.abs(pts[hi][0] - t) < Math.abs(pts[lo][0] - t) ? hi : lo;
  }
  function fmtWhen(chart, t) {
    const v = chart.view;
    if (chart.bucketMs >= 3600000 || v.t1 - v.t0 > 1.5 * DAY_MS) {
      return fmtDay(t) + " " + fmtHourMinute(t);
    }
    return chart.windowMs <= 3600000 ? fmtClock(t) : fmtHourMinute(t);
  }
  function showCursor(chart) {
    const v = chart.view;
    const pts = chart.points;
    const on = chart.hover !== null && v !== null && pts.length > 0;
    show(chart.tip, on);
    show(chart.dot, on);
    if (!on) {
      chart.cursor.setAttribute("d", "");
      return;
    }
    const index = chart.hover.index !== undefined
      ? Math.min(Math.max(chart.hover.index, 0), pts.length - 1)
      : nearest(pts, v.t0 + chart.hover.at * (v.t1 - v.t0));
    chart.hover.shown = index;
    const p = pts[index];
    const fx = (p[0] - v.t0) / Math.max(v.t1 - v.t0, 1);
    const fy = 1 - (p[1] / v.div - v.bottom) / (2 * v.step);
    chart.cursor.setAttribute("d", "M" + (fx * W).toFixed(1) + " 0V" + H);
    chart.dot.style.left = (fx * 100).toFixed(2) + "%";
    chart.dot.style.top = (fy * 100).toFixed(2) + "%";
    const fmt = (value) => fmtNumber(value / v.div, v.decimals);
    const band = chart.banded && p[2] !== p[3]
      ? " (" + fmt(p[2]) + "\u2013" + fmt(p[3]) + ")" : "";
    setText(chart.tip.querySelector("[data-tip-time]"), fmtWhen(chart, p[0]));
    setText(chart.tip.querySelector("[data-tip-value]"),
      (band ? "mean " : "") + fmt(p[1]) + band + v.unit);
    // Above the point, slid along so that it never leaves the plot: its left edge
    // at the left end, its right edge at the right end (no layout is measured).
    chart.tip.style.left = (fx * 100).toFixed(2) + "%";
    chart.tip.style.transform = "translate(" + (-fx * 100).toFixed(2) + "%, -100%)";
  }
  for (const chart of charts) {
    const plot = chart.plot;
    const at = (event) => {
      const box = plot.getBoundingClientRect();
      return Math.min(Math.max((event.clientX - box.left) / Math.max(box.width, 1), 0), 1);
    };
    plot.addEventListener("pointermove", (event) => {
      chart.hover = { at: at(event) };
      showCursor(chart);
    });
    plot.addEventListener("pointerdown", (event) => {
      chart.hover = { at: at(event) };
      showCursor(chart);
    });
    plot.addEventListener("pointerleave", () => {
      if (document.activeElement === plot) return;
      chart.hover = null;
      showCursor(chart);
    });
    plot.addEventListener("focus", () => {
      chart.hover = { index: chart.points.length - 1 };
      showCursor(chart);
    });
    plot.addEventListener("blur", () => {
      chart.hover = null;
      showCursor(chart);
    });
    plot.addEventListener("keydown", (event) => {
      const moves = { ArrowLeft: -1, ArrowRight: 1, PageUp: -10, PageDown: 10 };
      const from = chart.hover && chart.hover.shown !== undefined
        ? chart.hover.shown : chart.points.length - 1;
      let index = null;
      if (event.key in moves) index = from + moves[event.key];
      else if (event.key === "Home") index = 0;
      else if (event.key === "End") index = chart.points.length - 1;
      else if (event.key === "Escape") {
        chart.hover = null;
        showCursor(chart);
        return;
      }
      if (index === null) return;
      event.preventDefault();
      chart.hover = { index };
      showCursor(chart);
    });
  }

  const historyWaiting = new Map();
  let historyId = 0;
  function askHistory(request) {
    // Resolves with the shell's answer, { points, resolution }, or null (none within 30 s).
    return new Promise((resolve) => {
      historyId += 1;
      const id = historyId;
      historyWaiting.set(id, resolve);
      toShell({ type: "history", id, ...request });
      setTimeout(() => {
        if (historyWaiting.delete(id)) resolve(null);
      }, 30000);
    });
  }

  function historyPoint(p) {
    // [t, v] or [t, mean, min, max] as numbers, else null; a band always holds its mean.
    if (!Array.isArray(p) || num(p[0]) === null || num(p[1]) === null) return null;
    if (p.length < 4 || num(p[2]) === null || num(p[3]) === null) return [p[0], p[1], p[1], p[1]];
    return [p[0], p[1], Math.min(p[1], p[2]), Math.max(p[1], p[3])];
  }

  async function loadHistory(chart) {
    const { generation, windowMs } = chart;
    const answer = await askHistory({
      plugin: chart.plugin, field: chart.field,
      since: Math.max(0, Math.round(nowMs - windowMs)), until: Math.round(nowMs),
      points: CHART_POINTS,
    });
    if (chart.generation !== generation) return;  // another span was chosen meanwhile
    setText(chart.empty, "no history yet");
    // No history (yet) or the host is restarting: the chart keeps its
    // placeholder and fills from the stream instead.
    if (answer === null) {
      drawChart(chart);
      return;
    }
    const raw = answer.points;
    const points = raw.map(historyPoint).filter((p) => p !== null).sort((a, b) => a[0] - b[0]);
    chart.banded = raw.some((p) => Array.isArray(p) && p.length >= 4);
    chart.bucketMs = BUCKET_MS.get(answer.resolution) || 0;
    if (takesLive(chart)) {
      const newest = points.length ? points[points.length - 1][0] : -Infinity;
      chart.points = points.concat(chart.points.filter((p) => p[0] > newest));
    } else {
      chart.points = points;
    }
    drawChart(chart);
  }
  const loadAllHistory = () => charts.forEach(loadHistory);

  // ---- the long charts' span ----------------------------------------------
  const rangeControl = document.querySelector("[data-ranges]");
  const rangeButtons = all(document, "[data-range-ms]");
  function chooseRange(chosen) {
    const windowMs = Number(chosen.dataset.rangeMs);
    const label = chosen.textContent;
    for (const button of rangeButtons) button.ariaPressed = String(button === chosen);
    for (const chart of charts) {
      if (!chart.long || chart.windowMs === windowMs) continue;
      chart.windowMs = windowMs;
      chart.label = label;
      chart.fig.dataset.windowMs = String(windowMs);
      chart.fig.dataset.label = label;
      chart.span.setAttribute("title", "last " + label);
      chart.svg.ariaLabel = chart.name + ", last " + label;
      chart.generation += 1;
      chart.points = [];
      chart.banded = false;
      chart.bucketMs = 0;
      setText(chart.empty, "loading\u2026");
      drawChart(chart);
      loadHistory(chart);
    }
  }
  for (const button of rangeButtons) {
    button.addEventListener("click", () => chooseRange(button));
  }
  show(rangeControl, charts.some((chart) => chart.long));
  setInterval(() => {
    for (const chart of charts) if (!takesLive(chart)) loadHistory(chart);
  }, RELOAD_LONG_MS);

  // ---- applying one streamed state --------------------------------------
  function updateCard(name, card, reading, context) {
    const status = obj(reading.status);
    const alarm = status.alarm;
    const raised = alarmRaised(alarm);
    const alarmEl = card.querySelector("[data-alarm]");
    show(alarmEl, "alarm" in status);
    setText(alarmEl, raised ? "alarm " + fmtValue(alarm) : "no alarm");
    setClass(alarmEl, ["alarm", "ok"], raised ? "alarm" : "ok");
    card.classList.toggle("alarmed", raised);
    const title = card.dataset.title || name;
    if (raised) context.problems.push(title + ": alarm " + fmtValue(alarm));
    const [h, word] = health(obj(context.plugins[name]));
    const unhealthy = h !== "" && h !== "ok";
    const healthEl = card.querySelector("[data-health-badge]");
    show(healthEl, unhealthy);
    if (unhealthy) setText(healthEl, word);
    card.classList.toggle("unhealthy", unhealthy && !raised);

    const taken = num(reading.timestamp_ms);
    const hostAge = taken === null ? null : Math.max(0, nowMs - taken) / 1000;
    const pluginStale = status.stale === true;
    const stale = pluginStale || (hostAge !== null && hostAge > context.staleAfter);
    const ageMs = pluginStale ? num(status.age_ms) : hostAge === null ? null : hostAge * 1000;
    const staleEl = card.querySelector("[data-stale]");
    show(staleEl, stale);
    setText(staleEl, "stale" + (ageMs === null ? "" : " \u00b7 " + fmtAge(ageMs / 1000) + " old"));

    const measures = byData(card, "[data-measure]", "measure");
    for (const item of arr(reading.measurements)) {
      const m = obj(item);
      if (typeof m.name !== "string") continue;
      const el = measures.get(m.name);
      if (!el) {
        context.missing = true;
        continue;
      }
      const value = num(m.value);
      const decimals = Number(el.dataset.decimals) || 0;
      const [text, unit] = value === null
        ? [fmtValue(m.value), el.dataset.unit || ""]
        : display(value, el.dataset.kind || "", el.dataset.unit || "", decimals);
      setText(el.querySelector("[data-value]"), text);
      setText(el.querySelector("[data-unit-text]"), unit);
      const bandEl = el.querySelector("[data-iaq-band]");
      if (bandEl && value !== null) {
        const [label, cls] = iaqBand(value);
        setText(bandEl, label);
        setClass(bandEl, IAQ_CLASSES, cls);
      }
      if ("iaq_accuracy" in status) {
        const accuracy = "accuracy " + accuracyText(status.iaq_accuracy);
        setText(el.querySelector("[data-iaq-accuracy]"), accuracy);
      }
      if (value !== null && taken !== null) {
        for (const chart of chartsFor(name, m.name)) {
          if (takesLive(chart)) addPoint(chart, taken, value);
        }
      }
    }
    for (const el of all(card, "[data-status]")) {
      const key = el.dataset.status;
      if (!(key in status)) continue;
      setText(el, key === "iaq_accuracy" ? accuracyText(status[key]) : fmtValue(status[key]));
    }
    const errorEl = card.querySelector("[data-error]");
    const error = reading.error;
    show(errorEl, error !== null && error !== undefined);
    if (error !== null && error !== undefined) setText(errorEl, fmtValue(error));
    setText(card.querySelector("[data-updated]"),
      taken === null ? "never polled successfully" : "updated " + fmtClock(taken));
  }

  function updateHealthRow(row, info, context) {
    const cells = byData(row, "[data-col]", "col");
    const [h, word] = health(info);
    const stateCell = cells.get("state");
    setText(stateCell, word);
    setClass(stateCell, STATE_CLASSES, HEALTH_CLASSES.get(h) || "");
    if (stateCell) {
      const reason = typeof info.health_reason === "string" ? info.health_reason : "";
      stateCell.setAttribute("title", reason);
    }
    if (h !== "" && h !== "ok") {
      context.problems.push((row.dataset.title || row.dataset.health) + ": " + word);
    }
    for (const [key, alert] of [["polls", false], ["errors", true], ["traps", true]]) {
      const cell = cells.get(key);
      setText(cell, fmtValue(info[key]));
      if (cell) cell.classList.toggle("bad", alert && num(info[key]) !== null && info[key] > 0);
    }
    const pollMs = num(info.last_poll_ms);
    setText(cells.get("last_poll_ms"), pollMs === null ? MISSING : fmtNumber(pollMs, 2) + " ms");
    const hashCell = cells.get("loaded_hash");
    const hash = fmtValue(info.loaded_hash);
    // A new dashboard build is only picked up by reloading the page itself.
    if (hashCell && row.dataset.world === "dashboard-plugin" && hashCell.textContent !== hash) {
      context.missing = true;
    }
    setText(hashCell, hash);
    const lastError = cells.get("last_error");
    const hasError = info.last_error !== null && info.last_error !== undefined;
    setText(lastError, fmtValue(info.last_error));
    if (lastError) lastError.classList.toggle("bad", hasError);
  }

  // ---- the fleet (hubs only) ---------------------------------------------
  const ago = (age) => (age === null ? MISSING : fmtAge(Math.max(0, age)) + " ago");
  const str = (v) => (typeof v === "string" ? v : "");
  // render.py's _ROLLOUT_CLASSES, _ROLLOUT_ORDER and _ROLLOUT_SEGMENTS: a rollout
  // state's class, the order a summary names them in, a progress bar's segments.
  const ROLLOUT_CLASSES = new Map([
    ["healthy", "ok"], ["received", "warn"], ["staging", "warn"], ["live", "warn"],
    ["rolled-back", "bad"], ["failed", "bad"], ["refused", "bad"], ["needs-grants", "bad"],
  ]);
  const ROLLOUT_ORDER = ["live", "staging", "received", "rolled-back", "failed", "refused",
    "needs-grants"];
  const SEGMENTS = ["ok", "warn", "bad", "off"];
  const MAX_COUNT = 1e9;
  // render.py's _count: a count of nodes, 0 unless a number from 1 to MAX_COUNT.
  const count = (v) => (num(v) !== null && v >= 1 && v <= MAX_COUNT ? Math.trunc(v) : 0);
  function pluginVersion(plugin) {
    // [text, tooltip] as render.py's _plugin_version.
    const version = str(plugin.version);
    const hash = str(plugin.content_hash);
    if (!version && !hash) return ["", ""];
    return [version || "configured", hash || "content unknown"];
  }
  function rolloutTitle(rollout) {
    // render.py's rollout_title: the reason, the version, how long ago it was reported.
    const parts = [];
    if (str(rollout.reason)) parts.push(rollout.reason);
    if (str(rollout.version)) parts.push("version " + rollout.version);
    const age = num(rollout.age_seconds);
    if (age !== null) parts.push("reported " + ago(age));
    else if (num(rollout.timestamp_ms) !== null) parts.push("retained report");
    return parts.join(" \u00b7 ");
  }
  function pluginAge(plugin, staleAfter) {
    // [text, greyed] as render.py's plugin_age: a null age with a stamp is a
    // retained state, whose age is unknown.
    const age = num(plugin.age_seconds);
    if (age !== null) return [ago(age), staleAfter !== null && age > staleAfter];
    if (num(plugin.timestamp_ms) !== null) return ["retained", true];
    return [MISSING, false];
  }
  function rolloutSummary(rollout) {
    // [text, Map(segment -> percent)] as render.py's rollout_summary: offline nodes
    // apart, the total what is counted.
    const states = new Map();
    for (const [state, value] of Object.entries(obj(rollout.states))) {
      const n = count(value);
      if (ROLLOUT_CLASSES.has(state) && n) states.set(state, n);
    }
    const offline = count(rollout.offline);
    const shares = new Map(SEGMENTS.map((segment) => [segment, 0]));
    for (const [state, n] of states) {
      const segment = ROLLOUT_CLASSES.get(state);
      shares.set(segment, shares.get(segment) + n);
    }
    shares.set("off", shares.get("off") + offline);
    let total = 0;
    for (const n of shares.values()) total += n;
    const words = [(states.get("healthy") || 0) + "/" + total + " healthy"];
    for (const state of ROLLOUT_ORDER) {
      if (states.has(state)) words.push(states.get(state) + " " + state.replaceAll("-", " "));
    }
    if (offline) words.push(offline + " offline");
    const percent = new Map();
    for (const [segment, n] of shares) percent.set(segment, total ? (100 * n) / total : 0);
    return [words.join(" \u00b7 "), percent];
  }
  function lastSeen(age, seenMs) {
    if (age === null) return "not heard live since the hub started";
    return "last seen " + ago(age) + (seenMs === null ? "" : " · " + fmtClock(seenMs));
  }

  function updateNode(card, node, staleAfter, context) {
    // Only an explicit `online: true` is online, as in render.py.
    const online = node.online === true;
    card.classList.toggle("offline", !online);
    const badge = card.querySelector("[data-node-online]");
    setText(badge, online ? "online" : "offline");
    setClass(badge, ["node-online", "node-offline"], online ? "node-online" : "node-offline");
    show(card.querySelector("[data-node-not-live]"), !online);
    setText(card.querySelector("[data-node-seen]"),
      lastSeen(num(node.last_seen_age_seconds), num(node.last_seen_ms)));
    const labels = arr(node.labels).filter((label) => typeof label === "string").join(" \u00b7 ");
    const labelsEl = card.querySelector("[data-node-labels]");
    show(labelsEl, labels !== "");
    setText(labelsEl, labels);
    const plugins = byData(card, "[data-node-plugin]", "nodePlugin");
    for (const [name, item] of Object.entries(obj(node.plugins))) {
      const el = plugins.get(name);
      if (!el) {
        context.missing = true;
        continue;
      }
      const reading = obj(item);
      const [ageText, stale] = pluginAge(reading, staleAfter);
      el.classList.toggle("node-stale", stale);
      setText(el.querySelector("[data-node-age]"), ageText);
      const alarm = obj(reading.status).alarm;
      const alarmEl = el.querySelector("[data-node-alarm]");
      show(alarmEl, alarmRaised(alarm));
      if (alarmRaised(alarm)) setText(alarmEl, "alarm " + fmtValue(alarm));
      const [versionText, versionTitle] = pluginVersion(reading);
      const versionEl = el.querySelector("[data-node-version]");
      show(versionEl, versionText !== "");
      setText(versionEl, versionText);
      if (versionEl) versionEl.setAttribute("title", versionTitle);
      const rollout = obj(reading.rollout);
      const state = str(rollout.state);
      const pill = el.querySelector("[data-node-rollout]");
      show(pill, state !== "");
      setText(pill, state.replaceAll("-", " ") || "rollout");
      setClass(pill, SEGMENTS, ROLLOUT_CLASSES.get(state) || "off");
      if (pill) pill.setAttribute("title", rolloutTitle(rollout));
      const measures = byData(el, "[data-node-measure]", "nodeMeasure");
      for (const entry of arr(reading.measurements)) {
        const m = obj(entry);
        if (typeof m.name !== "string") continue;
        const measure = measures.get(m.name);
        if (!measure) {
          context.missing = true;
          continue;
        }
        const value = num(m.value);
        const decimals = Number(measure.dataset.decimals) || 0;
        setText(measure.querySelector("[data-node-value]"),
          value === null ? fmtValue(m.value) : fmtNumber(value, decimals));
      }
    }
  }

  function updateRollouts(section, rollouts, context) {
    // A line per rollout, found by its plugin and content hash; a new one needs markup,
    // one no node reports on any more is hidden.
    const box = section.querySelector("[data-rollouts]");
    const lines = box ? all(box, "[data-rollout-plugin]") : [];
    const shown = new Set();
    for (const item of rollouts) {
      const rollout = obj(item);
      const hash = rollout.content_hash;
      if (typeof rollout.plugin !== "string") continue;
      if (!(hash === null || hash === undefined || typeof hash === "string")) continue;
      const line = lines.find((el) => el.dataset.rolloutPlugin === rollout.plugin &&
        el.dataset.rolloutHash === (hash || ""));
      if (!line) {
        context.missing = true;
        continue;
      }
      shown.add(line);
      const [text, percent] = rolloutSummary(rollout);
      setText(line.querySelector("[data-rollout-text]"), text);
      const bar = line.querySelector("[data-rollout-bar]");
      if (bar) bar.ariaLabel = rollout.plugin + ": " + text;
      for (const seg of all(line, "[data-seg]")) {
        seg.style.width = (percent.get(seg.dataset.seg) || 0).toFixed(1) + "%";
      }
    }
    for (const line of lines) show(line, shown.has(line));
  }

  function updateFleet(fleet, context) {
    // A hub's state carries the fleet; a node appearing needs a new card.
    const nodes = arr(obj(fleet).nodes).filter((n) => isObj(n) && typeof n.node === "string");
    if (!nodes.length) return;
    const section = document.querySelector("[data-fleet]");
    if (!section) {
      context.missing = true;
      return;
    }
    const staleAfter = num(obj(fleet).offline_after_seconds);
    const cards = byData(section, "[data-node]", "node");
    let online = 0;
    for (const node of nodes) {
      if (node.online === true) online += 1;
      const card = cards.get(node.node);
      if (card) updateNode(card, node, staleAfter, context);
      else context.missing = true;
    }
    updateRollouts(section, arr(obj(fleet).rollouts), context);
    setText(section.querySelector("[data-fleet-online]"), online + " online");
    const offlineEl = section.querySelector("[data-fleet-offline]");
    show(offlineEl, nodes.length > online);
    setText(offlineEl, nodes.length - online + " offline");
  }

  function apply(state) {
    if (!isObj(state)) return;
    nowMs = num(state.timestamp_ms) ?? Date.now();
    const interval = num(state.interval_seconds);
    if (interval !== null && interval > 0) intervalMs = interval * 1000;
    const meta = byData(document, "[data-meta]", "meta");
    setText(meta.get("cycle"), fmtValue(state.cycle));
    setText(meta.get("updated"), fmtTime(state.timestamp_ms));
    if (interval !== null) setText(meta.get("interval"), fmtNumber(interval, 1) + " s");

    const strip = arr(state.leds);
    for (const el of all(document, "[data-led]")) {
      const text = paintLed(el, strip[Number(el.dataset.led)]);
      const label = el.parentElement && el.parentElement.querySelector("[data-led-text]");
      setText(label, text);
    }

    // Stale after 3 intervals but at least 5 s: the rule of render.py's _Snapshot.
    const context = {
      problems: [], missing: false, plugins: obj(state.plugins),
      staleAfter: Math.max(3 * intervalMs, 5000) / 1000,
    };
    const cards = byData(document, "[data-plugin]", "plugin");
    for (const [name, reading] of Object.entries(obj(state.readings))) {
      const card = cards.get(name);
      if (card) updateCard(name, card, obj(reading), context);
      else context.missing = true;
    }
    const rows = byData(document, "[data-health]", "health");
    for (const [name, info] of Object.entries(obj(state.plugins))) {
      const row = rows.get(name);
      if (row) updateHealthRow(row, obj(info), context);
      else context.missing = true;
    }
    updateFleet(state.fleet, context);
    const summary = document.querySelector("[data-summary]");
    setText(summary, context.problems.length ? context.problems.join(" \u00b7 ") : "all clear");
    setClass(summary, ["ok", "bad"], context.problems.length ? "bad" : "ok");
    charts.forEach(drawChart);
    if (context.missing) reloadOnce();
  }

  // ---- the stream ---------------------------------------------------------
  const live = document.querySelector("[data-live]");
  const setLive = (mode, text) => {
    show(live, true);
    setClass(live, ["on", "off"], mode);
    setText(live, text);
  };
  let dropped = false;
  function onState(text) {
    lastEventAt = Date.now();
    setLive("on", "live");
    if (dropped) {
      dropped = false;
      loadAllHistory();
    }
    let state;
    try { state = JSON.parse(text); } catch { return; }
    apply(state);
  }
  addEventListener("message", (event) => {
    // Only the shell speaks to this page; anything else (this page itself,
    // a frame it made) is ignored.
    if (event.source !== parent || parent === window) return;
    const message = obj(event.data);
    if (message.type === "state" && typeof message.data === "string") {
      onState(message.data);
    } else if (message.type === "live" && message.live === false && lastEventAt) {
      // The shell lost the stream; it reconnects on its own.
      dropped = true;
      setLive("off", "reconnecting\u2026");
    } else if (message.type === "history" && historyWaiting.has(message.id)) {
      const resolve = historyWaiting.get(message.id);
      historyWaiting.delete(message.id);
      const resolution = typeof message.resolution === "string" ? message.resolution : "";
      resolve(message.points === null ? null : { points: arr(message.points), resolution });
    }
  });
  setInterval(() => {
    const quiet = Date.now() - lastEventAt > Math.max(3 * intervalMs, 10000);
    if (lastEventAt && quiet && live.classList.contains("on")) {
      setLive("off", "no updates");
    }
  }, 1000);
  setLive("off", "connecting\u2026");
  charts.forEach(drawChart);
  loadAllHistory();
})();
