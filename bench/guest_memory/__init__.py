"""Guest memory that only grows: a reproduction of which values a
componentize-py guest leaks when it sends them, and what it costs the seed
plugins (docs/GUEST-MEMORY.md). Not part of ``make test`` or ``make bench``."""
