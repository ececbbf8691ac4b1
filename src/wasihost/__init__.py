"""wasihost: run untrusted Python plugins as sandboxed WebAssembly components."""

__version__ = "0.1.0"
