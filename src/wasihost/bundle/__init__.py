"""Signed plugin bundles: one file that carries a plugin to a node (docs/BUNDLES.md).

A bundle is the plugin (a source plugin's own files, or a ``.wasm``
component), a manifest saying what it is and what it needs, and an Ed25519
signature over that manifest. A node installs only what a key in its
``[trust] keys`` signed, whose files are the ones the manifest names, and
which needs no grant the node's config does not give it.

- ``keys``: Ed25519 keys, key files and key ids (the only module using PyNaCl).
- ``archive``: the file's bytes: packing them deterministically, reading them
  back with every hostile-archive check.
- ``manifest``: the signed manifest's fields, their JSON and their checks.
- ``create``: making a bundle from a plugin folder or component.
- ``verify``: the rules a node applies: signature and trust, content, then
  its own config (world, pin, grants).
"""
