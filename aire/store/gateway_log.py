"""The store's queries on the gateway's traffic log (``gateway_requests``): batch inserts, windows by
time, mirrored pairs by request id, deletion by age."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session, aliased

from aire.store.schema import GatewayRequest
from aire.store.store import Store

SERVED, MIRRORED = "served", "mirrored"


@dataclass(frozen=True)
class MirroredPair:
    served: GatewayRequest
    mirrored: GatewayRequest


class GatewayLog:
    """The traffic log of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _session(self) -> Session:
        return Session(self.store.engine, expire_on_commit=False)

    def insert(self, rows: Sequence[dict[str, Any]]) -> int:
        """One transaction for the batch (a request's row per dict); returns the rows written."""
        if not rows:
            return 0
        with self._session() as session, session.begin():
            session.execute(insert(GatewayRequest), list(rows))
        return len(rows)

    def window(
        self,
        since: datetime,
        until: datetime | None = None,
        *,
        route: str | None = None,
        kind: str = SERVED,
        batch: int = 1000,
    ) -> Iterator[GatewayRequest]:
        """The requests in [since, until), oldest first, read in batches (a window may be large)."""
        query = select(GatewayRequest).where(GatewayRequest.kind == kind, GatewayRequest.at >= since)
        if until is not None:
            query = query.where(GatewayRequest.at < until)
        if route is not None:
            query = query.where(GatewayRequest.route == route)
        last = 0
        while True:
            with self._session() as session:
                page = list(
                    session.scalars(query.where(GatewayRequest.id > last).order_by(GatewayRequest.id).limit(batch))
                )
            yield from page
            if len(page) < batch:
                return
            last = page[-1].id

    def mirrored_pairs(self, since: datetime, *, route: str | None = None) -> list[MirroredPair]:
        """Every served request since ``since`` whose mirrored copy was logged too, oldest first."""
        mirror = aliased(GatewayRequest)
        query = (
            select(GatewayRequest, mirror)
            .join(mirror, (mirror.request_id == GatewayRequest.request_id) & (mirror.kind == MIRRORED))
            .where(GatewayRequest.kind == SERVED, GatewayRequest.at >= since)
            .order_by(GatewayRequest.id)
        )
        if route is not None:
            query = query.where(GatewayRequest.route == route)
        with self._session() as session:
            return [MirroredPair(s, m) for s, m in session.execute(query).all()]

    def delete_before(self, cutoff: datetime) -> int:
        """Retention: remove every row older than ``cutoff``; returns how many."""
        with self._session() as session, session.begin():
            result = session.execute(delete(GatewayRequest).where(GatewayRequest.at < cutoff))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def count(self, kind: str | None = None) -> int:
        from sqlalchemy import func

        query = select(func.count(GatewayRequest.id))
        if kind is not None:
            query = query.where(GatewayRequest.kind == kind)
        with self._session() as session:
            return int(session.scalar(query) or 0)
