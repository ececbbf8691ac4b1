"""The SQLite set-up and transaction block shared by history and the outbox.

Connections are opened in autocommit mode (``isolation_level=None``) so
transactions are explicit, in WAL mode so readers never block the writer,
and without the same-thread check: the owner shares one connection between
worker threads under a lock of its own.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
TransactionMode = Literal["DEFERRED", "IMMEDIATE", "EXCLUSIVE"]


def connect(path: Path, *, synchronous: Synchronous, schema: str = "") -> sqlite3.Connection:
    """Open (creating its directory if needed) the database at ``path`` in
    WAL mode with ``synchronous`` and run ``schema``, a script of
    idempotent statements."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    if schema:
        db.executescript(schema)
    return db


@contextmanager
def transaction(db: sqlite3.Connection, mode: TransactionMode = "DEFERRED") -> Iterator[None]:
    """``BEGIN <mode>`` ... ``COMMIT``; on any exception, including a failed
    ``COMMIT``, roll back and re-raise. ``db`` must be in autocommit mode.

    After some errors (``SQLITE_FULL``, ``SQLITE_IOERR``, ``SQLITE_NOMEM``,
    some ``SQLITE_BUSY``) SQLite has already rolled the transaction back by
    itself; a ``ROLLBACK`` then fails with "no transaction is active" and
    would hide the error that matters, so it is only sent while one is open.
    """
    db.execute(f"BEGIN {mode}")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
