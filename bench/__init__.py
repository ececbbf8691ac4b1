"""The wasihost benchmark suite: ``make bench`` (see docs/PERFORMANCE.md)."""
