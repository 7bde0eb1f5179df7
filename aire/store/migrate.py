"""Schema migrations (Alembic, in aire/store/migrations), run before a store is first used.

``upgrade(url)`` brings a store to the head revision: a new one is created by revision 0001, and one
created before migrations existed (``create_all``: the tables, no ``alembic_version``) is stamped at
0001, which is the schema it has, then upgraded like any other. Two processes that open a new store
together migrate it once: the migration runs in one transaction that holds a lock (SQLite
``BEGIN IMMEDIATE``; a PostgreSQL advisory lock), and the second one finds it done.

Alembic is configured in code (no alembic.ini) and imported only when a store is behind: a store
already at ``HEAD`` costs one query to check.
"""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from aire.core.errors import AireError
from aire.store.engine import engine_for, sqlite_path

# The newest revision in migrations/versions (tests/unit/test_migrations.py checks it is Alembic's head).
HEAD = "0006"
# The revision a pre-migration store is at: the schema ``create_all`` made before migrations existed.
BASELINE = "0001"
MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x61697265  # "aire": the advisory lock the migrations of one PostgreSQL database share

_DONE: set[str] = set()
_DONE_LOCK = threading.Lock()


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def current_revision(url: str) -> str | None:
    """The store's revision; None for a store without one (new, or from before migrations)."""
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return None  # asking does not create the file
    with engine_for(url).connect() as conn:
        return _revision(conn)


def ensure(url: str) -> None:
    """``upgrade(url)`` once per URL per process (what ``Store(url)`` calls)."""
    if url in _DONE:
        return
    with _DONE_LOCK:
        if url not in _DONE:
            upgrade(url)
            _DONE.add(url)


def forget(url: str) -> None:
    """The next ``ensure(url)`` checks the store again."""
    _DONE.discard(url)


def upgrade(url: str) -> str:
    """Migrate the store at ``url`` to the head revision; returns it."""
    engine = engine_for(url)
    with engine.connect() as conn:
        if _revision(conn) == HEAD:
            return HEAD
    with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            # Takes the write lock now: a second process waits here (busy_timeout), then finds the
            # store migrated. SQLite's DDL is transactional, so a failed migration leaves nothing.
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        elif engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        revision = _revision(conn)
        if revision == HEAD:
            return HEAD
        _run_alembic(conn, url, revision)
    return HEAD


def _run_alembic(conn: Connection, url: str, revision: str | None) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn  # env.py migrates on it, inside this transaction and lock
    known = {s.revision for s in ScriptDirectory.from_config(config).walk_revisions()}
    if revision is not None and revision not in known:
        raise AireError(
            f"the store at {display_url(url)} is at revision {revision}, which this aire does not know "
            f"(its newest is {HEAD}): it was migrated by a newer aire; upgrade aire"
        )
    if revision is None and inspect(conn).has_table("runs"):
        command.stamp(config, BASELINE)  # tables from before migrations: they are the baseline's schema
    command.upgrade(config, "head")


def display_url(url: str) -> str:
    """The URL as safe to print: the password hidden."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
