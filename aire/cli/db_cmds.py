"""`aire db upgrade`: migrate the results store (aire.store.migrate) explicitly, e.g. before a deploy.

Every command that opens the store migrates it first anyway; this one does only that, and says what
it did, so a shared PostgreSQL store can be upgraded once by an operator instead of by the first flow.
"""

from __future__ import annotations

import typer

from aire.core.settings import get_settings


def db_upgrade() -> None:
    """Bring the store (AIRE_STORE_URL) to the newest schema revision; a no-op when it is there."""
    from aire.store import current_revision, upgrade
    from aire.store.migrate import display_url

    url = get_settings().resolved_store_url
    before = current_revision(url)
    head = upgrade(url)
    where = display_url(url)
    if before == head:
        typer.echo(f"store {where}: at revision {head}, nothing to do")
    else:
        typer.echo(f"store {where}: revision {before or '(none)'} -> {head}")


def store_revision_line() -> str:
    """'store schema: revision 0001 (newest 0001)' for `aire version`; never creates or migrates a store."""
    from aire.store import current_revision
    from aire.store.migrate import HEAD

    try:
        revision = current_revision(get_settings().resolved_store_url)
    except Exception as exc:  # an unreachable store must not break `aire version`
        return f"store schema: unknown ({type(exc).__name__}) (newest {HEAD})"
    return f"store schema: revision {revision or '(none yet)'} (newest {HEAD})"
