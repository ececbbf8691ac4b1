"""Tools for plugin authors, apart from the running node: building plugins
(``build``, ``bindings``), checking them (``check``, ``typecheck``), starting
one (``scaffold``), the capability reference (``reference``), ``--dev``
rebuilds (``devloop``) and running a plugin in tests (``testing``, also
importable as ``wasihost.testing``)."""
