"""pytest for the whole checkout: plugin code run natively finds the shared guest library.

Plugins import ``wasihost_guest`` from ``plugins/_shared/``, which ``wasihost
build`` puts on each component's import path. Tests that import plugin
modules in this process (``wasihost.testing``'s native mode, the dashboard's
renderer, the bme680 app against fake bindings) need the folder on
``sys.path`` too; it holds nothing else, so it shadows nothing.
"""

import sys
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parent / "plugins" / "_shared"))
