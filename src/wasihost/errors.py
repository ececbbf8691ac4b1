"""The exception tree of wasihost.

Errors from the layers below (wasmtime, TOML, pydantic, the board) are
translated into these at exactly one boundary each, so callers only ever
catch ``WasihostError`` subclasses. Messages say what failed, where, and
what was expected.

    WasihostError
    ├── ConfigError        invalid host.toml (the host refuses to start)
    ├── BuildError         a plugin failed to build with componentize-py
    ├── BoardError         a hardware (or simulated) device failed
    ├── CapabilityError    a capability call was refused or failed; its
    │                      message goes back to the guest as the WIT error
    ├── BundleError        a plugin bundle or a signing key that cannot be used
    └── PluginError        anything about one plugin
        ├── PluginLoadError    bad .wasm, forbidden import, missing export
        ├── GuestError         the guest returned its WIT error case
        └── PluginTrap         the guest trapped; the instance is dead
"""

from __future__ import annotations


class WasihostError(Exception):
    """Base of every error wasihost raises on purpose."""


class ConfigError(WasihostError):
    """The configuration file is missing or invalid."""


class BuildError(WasihostError):
    """A plugin did not build."""


class BoardError(WasihostError):
    """A device on the board failed (read error, bus error, missing device)."""


class CapabilityError(WasihostError):
    """A capability call is refused (outside the grant) or failed on the board."""


class BundleError(WasihostError):
    """A plugin bundle (or a key to sign or check one) that cannot be used; the
    message says which file, which entry or key, and why."""


class PluginError(WasihostError):
    """Base of errors about one plugin; ``plugin`` names it."""

    def __init__(self, plugin: str, message: str) -> None:
        super().__init__(f"{plugin}: {message}")
        self.plugin = plugin
        self.reason = message


class PluginLoadError(PluginError):
    """The component cannot be loaded for this plugin's world and grants."""


class GuestError(PluginError):
    """The guest returned the error case of its ``result``; the instance is fine."""


class PluginTrap(PluginError):
    """The guest trapped (panic, deadline, memory, stack); the instance is unusable."""


class PluginHung(PluginError):
    """The guest is blocked in a host call past its deadline; the host stopped waiting.

    Its thread is still inside the instance, so nothing may touch that
    instance until the call returns.
    """
