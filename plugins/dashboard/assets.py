"""The dashboard's inline style sheet and live-update script, as string constants.

They are real files, ``assets/style.css`` and ``assets/app.js``, so that
their linter sees them (``make lint``); ``wasihost build`` embeds them in the
component, as the guest has no files at run time (``wasihost_guest.assets``).
They live apart from `render.py` so the renderer stays readable, and they are
inlined into every page because the host's Content-Security-Policy (and a wall
tablet without internet) rule out anything loaded from elsewhere.

The page runs in the host's shell, in a frame sandboxed without
`allow-same-origin`: it cannot open `/api/stream` or fetch anything (its CSP
allows no connections). The shell posts it every streamed state, and answers
its requests for chart history and for a reload (see the host's
`web/shell.py`); messages are taken only from the parent window and sent only
to this host's origin.

The script treats everything it receives (the streamed state and the history
points) as untrusted, like the renderer does: it finds elements
by comparing `data-*` attribute values (never by building selectors from
data), writes text only through `textContent`, sets only fixed attributes,
classes from fixed tables, and SVG path data built from numbers. It never
parses markup. `IAQ_TABLE` is a placeholder that `render.py` replaces with the
IAQ band table, so the bands are defined once, in Python.
"""

from wasihost_guest.assets import read

IAQ_PLACEHOLDER = "IAQ_TABLE"

_FILES = read(__file__)
# Each starts on the line after its <style> or <script> tag.
STYLE = "\n" + _FILES["style.css"]
SCRIPT = "\n" + _FILES["app.js"]
