"""`aire keys create|list|revoke`: the gateway's API keys (stored as salted hashes; a key is shown once)."""

from __future__ import annotations

from typing import Annotated

import typer

from aire.core.settings import get_settings


def _keys():  # type: ignore[no-untyped-def]
    from aire.store.api_keys import ApiKeys
    from aire.store.store import Store

    return ApiKeys(Store(get_settings().resolved_store_url))


def keys_create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    rpm: Annotated[int | None, typer.Option(min=1, help="Requests per minute (default: unlimited).")] = None,
    tpm: Annotated[int | None, typer.Option(min=1, help="Tokens per minute, prompt + output.")] = None,
) -> None:
    """Create a key; it is printed once and only its salted hash is stored."""
    new = _keys().create(name, requests_per_minute=rpm, tokens_per_minute=tpm)
    typer.echo(new.key)
    typer.echo(f"key {new.row.id} ({name}): keep it now, it cannot be shown again", err=True)


def keys_list() -> None:
    """The keys: id, name, limits, created, revoked (never the key)."""
    rows = _keys().all()
    for k in rows:
        limits = f"rpm={k.requests_per_minute or '-'} tpm={k.tokens_per_minute or '-'}"
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        typer.echo(f"{k.id}  {k.name:<24} {limits:<24} created {k.created_at:%Y-%m-%d %H:%M}  {state}")
    if not rows:
        typer.echo("no keys; create one with: aire keys create NAME")


def keys_revoke(key_id: Annotated[str, typer.Argument(help="The key's id (aire keys list).")]) -> None:
    """Revoke a key: the gateway refuses it from its next refresh (a few seconds)."""
    from aire.core.errors import InputError

    row = _keys().revoke(key_id)
    if row is None:
        raise InputError(f"no key with id {key_id!r}", field="key_id")
    typer.echo(f"revoked {row.id} ({row.name})")
