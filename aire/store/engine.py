"""One SQLAlchemy engine per store URL per process, with SQLite in WAL mode.

Every ``Store(url)`` of a process shares the engine (and its connection pool) of its URL, so building
a Store where it is needed costs nothing after the first; a forked child drops the parent's engines
(their pooled connections belong to the parent) and builds its own on first use.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url

_ENGINES: dict[str, Engine] = {}
_LOCK = threading.Lock()


def _wal(cur: Any, timeout_s: float = 30.0) -> None:
    """Switch the file to WAL (it stays so). The switch takes a lock without waiting on the busy
    timeout: a second process opening a new store while the first migrates it would fail at once
    with "database is locked", so it waits here, and skips the switch once the file is in WAL."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA busy_timeout=30000")
    # WAL lets readers (the MLflow logger, `aire` status commands) run while the writer commits;
    # NORMAL is durable across process crashes, which is the failure resume is built for.
    _wal(cur)
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another backend or an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def engine_for(url: str) -> Engine:
    """The engine of ``url`` in this process (created on first use)."""
    with _LOCK:
        engine = _ENGINES.get(url)
        if engine is None:
            if (path := sqlite_path(url)) is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url)
            if engine.dialect.name == "sqlite":
                event.listen(engine, "connect", _sqlite_pragmas)
            _ENGINES[url] = engine
        return engine


def dispose(url: str) -> None:
    """Close the pooled connections of ``url``; the next ``engine_for`` builds a new engine."""
    with _LOCK:
        engine = _ENGINES.pop(url, None)
    if engine is not None:
        engine.dispose()


def _after_fork() -> None:
    global _LOCK
    _LOCK = threading.Lock()  # the parent may have held it while forking
    for engine in _ENGINES.values():
        engine.dispose(close=False)  # leave the parent's connections open, for the parent
    _ENGINES.clear()


os.register_at_fork(after_in_child=_after_fork)
