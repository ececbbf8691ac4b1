"""wasihost_guest: what the seed plugins share, in one place.

Plugins import it like any module of their own (``from wasihost_guest import
settings``). It lives in ``plugins/_shared/`` and ``wasihost build`` puts that
folder on the import path of every plugin that imports it, so the built
component carries its own copy; the files are part of the plugin's input hash,
so a change here rebuilds every plugin that uses it. Natively (pytest,
``wasihost.testing``) the folder is put on ``sys.path`` instead.

Its rules, which make it safe to share between guests and with the tests:

- The standard library only, and never the generated bindings (``wit_world``,
  ``componentize_py_types``): each world has bindings of its own, so a module
  shared between plugins cannot hold one of theirs.
- Refusals are ``ValueError``s with a message for the operator; the plugin's
  export turns them into its ``Err`` (anything else would trap the guest).
- No state in module globals: natively one imported copy serves every plugin.

Modules: ``settings`` (the JSON object ``configure`` receives, checked key by
key), ``jsonguard`` (untrusted JSON parsed without trapping the guest, and
JSON values checked before use), ``iaq`` (the IAQ band scale) and ``assets``
(a plugin's ``assets/`` files as text).
"""
