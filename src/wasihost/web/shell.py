"""The dashboard's shell: a host-written page that frames the plugin's page in a sandbox.

The dashboard plugin writes the page, so the page is untrusted, and a
Content-Security-Policy on it alone cannot stop a top-level navigation: the
page could send all it reads to any host with ``location = ...`` or replace
the dashboard with a page of its own. So ``/`` serves this shell instead. It
embeds the plugin's page (``/dashboard``) in ``<iframe sandbox="allow-scripts">``:

* no ``allow-same-origin``: the frame has an opaque origin, so it can neither
  script the shell nor read the API (its CSP also allows no connections);
* no ``allow-top-navigation``, ``allow-popups`` or ``allow-forms``: it cannot
  replace the shell, open windows or post forms;
* the shell's ``frame-src 'self'``: Chromium checks the *parent's* frame-src
  on every navigation of a child frame, including ones the child starts itself
  (``location``, meta refresh, a clicked link), so the frame can only ever
  show pages of this host.

The frame cannot open ``/api/stream`` itself, so the shell reads the stream
and hands every state to the frame with ``postMessage``; the frame asks the
shell for chart history (relayed with the host's points unchanged, raw
``[t, v]`` or ``[t, mean, min, max]`` statistics, and their resolution) and
for a reload (both checked and rate limited here), and the shell answers
nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

FRAME_PATH = "/dashboard"
# The shell's frame carries this key, new at every start. A browser that does
# not say where a page goes (no ``Sec-Fetch-Dest``: plain HTTP to a LAN address)
# and asks for the plugin's page without it is a person opening it on its own:
# it gets the shell, so the page never runs as a top-level document.
FRAME_KEY = secrets.token_urlsafe(12)
FRAME_URL = f"{FRAME_PATH}?key={FRAME_KEY}"


def _sha256(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


SHELL_STYLE = """
html, body { margin: 0; height: 100%; background: #0f1419; }
@media (prefers-color-scheme: light) { html, body { background: #f4f6f8; } }
iframe { display: block; border: 0; width: 100%; height: 100%; }
"""

# Longest plugin or field name the shell forwards (the server refuses longer too).
MAX_NAME_CHARS = 200

SHELL_SCRIPT = """
"use strict";
(() => {
  const frame = document.getElementById("dashboard");
  const RELOAD_EVERY_MS = 30000;
  const MAX_NAME = MAX_NAME_CHARS_VALUE;
  // A page asks for a few dozen charts at once: they are fetched a few at a
  // time, and a frame asking for more than MAX_QUEUED at once is refused.
  const MAX_IN_FLIGHT = 4;
  const MAX_QUEUED = 256;
  const queue = [];
  let inFlight = 0;
  let latest = null;
  let live = false;
  let lastReload = 0;
  let retryMs = 1000;

  // The frame's origin is opaque, so "*" is the only target origin that reaches
  // it; frame-src 'self' guarantees the frame only ever holds this host's pages.
  const send = (message) => {
    if (frame.contentWindow) frame.contentWindow.postMessage(message, "*");
  };
  frame.addEventListener("load", () => {
    send({ type: "live", live });
    if (latest !== null) send({ type: "state", data: latest });
  });

  function connect() {
    const source = new EventSource("/api/stream");
    source.addEventListener("state", (event) => {
      latest = event.data;
      live = true;
      retryMs = 1000;
      send({ type: "state", data: latest });
    });
    source.addEventListener("error", () => {
      live = false;
      send({ type: "live", live });
      // EventSource retries network errors itself but gives up for good on an
      // HTTP error (e.g. 503 while the host restarts): start over then.
      if (source.readyState === EventSource.CLOSED) {
        source.close();
        setTimeout(connect, retryMs);
        retryMs = Math.min(retryMs * 2, 30000);
      }
    });
  }

  const isName = (v) => typeof v === "string" && v.length > 0 && v.length <= MAX_NAME;
  const isTime = (v) => Number.isSafeInteger(v) && v >= 0;

  function history(request) {
    const { id, plugin, field, since, until, points } = request;
    if (!Number.isSafeInteger(id) || !isName(plugin) || !isName(field)) return;
    if (!isTime(since) || !isTime(until) || !Number.isSafeInteger(points)) return;
    if (queue.length >= MAX_QUEUED) {
      send({ type: "history", id, points: null });
      return;
    }
    queue.push({ id, plugin, field, since, until, points });
    pump();
  }

  function pump() {
    while (inFlight < MAX_IN_FLIGHT && queue.length) {
      inFlight += 1;
      fetchHistory(queue.shift()).finally(() => {
        inFlight -= 1;
        pump();
      });
    }
  }

  async function fetchHistory({ id, plugin, field, since, until, points }) {
    const query = new URLSearchParams({
      plugin, field, since: String(since), until: String(until), points: String(points),
    });
    let body = null;
    try {
      const response = await fetch("/api/history?" + query);
      if (response.ok) body = await response.json();
    } catch {
      body = null;
    }
    // The points go on as the host sent them ([t, v], or [t, mean, min, max] for
    // statistics and downsampled series), with the resolution ("raw", "5m", "1h")
    // that says how wide a bucket is; the frame checks both.
    const ok = body !== null && typeof body === "object" && Array.isArray(body.points);
    const resolution = ok && typeof body.resolution === "string" ? body.resolution : null;
    send({ type: "history", id, points: ok ? body.points : null, resolution });
  }

  addEventListener("message", (event) => {
    // Only the framed dashboard may ask, and only for these two things.
    if (event.source !== frame.contentWindow) return;
    const message = event.data;
    if (message === null || typeof message !== "object") return;
    if (message.type === "history") {
      history(message);
    } else if (message.type === "reload" && Date.now() - lastReload > RELOAD_EVERY_MS) {
      lastReload = Date.now();
      frame.src = frame.getAttribute("src");
    }
  });
  connect();
})();
""".replace("MAX_NAME_CHARS_VALUE", str(MAX_NAME_CHARS))

SHELL = (
    "<!doctype html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
    "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
    "<title>wasihost dashboard</title>\n"
    f"<style>{SHELL_STYLE}</style>\n</head>\n<body>\n"
    f'<iframe id="dashboard" src="{FRAME_URL}" sandbox="allow-scripts" '
    'title="dashboard" referrerpolicy="no-referrer"></iframe>\n'
    f"<script>{SHELL_SCRIPT}</script>\n</body>\n</html>\n"
)

# The shell runs only its own script and style (by hash), talks only to this
# host, frames only this host's pages, and may not itself be framed (so a
# framed page cannot nest a shell that opens more streams).
SHELL_CSP = (
    f"default-src 'none'; script-src {_sha256(SHELL_SCRIPT)}; "
    f"style-src {_sha256(SHELL_STYLE)}; connect-src 'self'; frame-src 'self'; "
    "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

# The plugin's page: sandboxed even if opened on its own, inline script and
# style only, no connections, frames, forms, fonts, media or workers, images
# only as data: URLs, and framed only by this host.
PAGE_CSP = (
    "sandbox allow-scripts; default-src 'none'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; img-src data:; form-action 'none'; frame-src 'none'; "
    "child-src 'none'; worker-src 'none'; connect-src 'none'; base-uri 'none'; "
    "frame-ancestors 'self'"
)

# Sent with both: no DNS prefetching of names in the page, no referrer, no
# MIME sniffing, and the same framing rule for browsers without CSP 2.
COMMON_HEADERS = {
    "X-DNS-Prefetch-Control": "off",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}
SHELL_HEADERS = {**COMMON_HEADERS, "Content-Security-Policy": SHELL_CSP, "X-Frame-Options": "DENY"}
PAGE_HEADERS = {
    **COMMON_HEADERS,
    "Content-Security-Policy": PAGE_CSP,
    "X-Frame-Options": "SAMEORIGIN",
    "Cache-Control": "no-store",
}
