"""The store's queries on gateway API keys (``api_keys``): created with a salted hash of the secret,
listed, revoked. The secret never reaches the database."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from aire.store.schema import ApiKey
from aire.store.store import Store

PREFIX = "aire"


def digest_of(salt: str, secret: str) -> str:
    return hashlib.sha256(f"{salt}:{secret}".encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    """(id, secret) of ``aire-<id>-<secret>``; None for anything else."""
    parts = key.split("-", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def matches(row: ApiKey, secret: str) -> bool:
    return hmac.compare_digest(row.digest, digest_of(row.salt, secret))


@dataclass(frozen=True)
class NewKey:
    row: ApiKey
    key: str  # shown once


class ApiKeys:
    def __init__(self, store: Store) -> None:
        self.store = store

    def _session(self) -> Session:
        return Session(self.store.engine, expire_on_commit=False)

    def create(
        self, name: str, *, requests_per_minute: int | None = None, tokens_per_minute: int | None = None
    ) -> NewKey:
        key_id = secrets.token_hex(4)
        secret = secrets.token_urlsafe(24).replace("-", "_")  # no "-": it separates the key's parts
        salt = secrets.token_hex(16)
        row = ApiKey(
            id=key_id,
            name=name,
            salt=salt,
            digest=digest_of(salt, secret),
            requests_per_minute=requests_per_minute,
            tokens_per_minute=tokens_per_minute,
            created_at=datetime.now(UTC),
        )
        with self._session() as session, session.begin():
            session.add(row)
        return NewKey(row, f"{PREFIX}-{key_id}-{secret}")

    def all(self) -> list[ApiKey]:
        with self._session() as session:
            return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))

    def revoke(self, key_id: str) -> ApiKey | None:
        with self._session() as session, session.begin():
            row = session.get(ApiKey, key_id)
            if row is not None and row.revoked_at is None:
                row.revoked_at = datetime.now(UTC)
            return row
