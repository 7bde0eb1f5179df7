"""Alembic's environment for the store. aire.store.migrate runs it in code, handing over the
connection (in ``config.attributes``) so the migration runs inside its transaction and lock.

A store is migrated by ``aire db upgrade`` or ``aire.store.upgrade(url)``. A developer writes a new
revision with Alembic's own command and an ini file naming ``script_location = aire/store/migrations``
(``alembic -c that.ini revision -m "..."``), then sets ``HEAD`` in aire/store/migrate.py.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from aire.store.engine import engine_for
from aire.store.schema import Base


def _configure(connection: Connection) -> None:
    # Batch mode: SQLite changes most columns and constraints only by copying the table.
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():  # a no-op inside the caller's transaction
        context.run_migrations()


if context.is_offline_mode():  # `--sql`: print the SQL for a DBA instead of running it
    context.configure(url=context.config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := context.config.attributes.get("connection")) is not None:
    _configure(shared)
else:
    with engine_for(context.config.get_main_option("sqlalchemy.url") or "").begin() as conn:
        _configure(conn)
