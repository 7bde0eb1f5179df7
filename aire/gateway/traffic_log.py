"""The gateway's traffic log, written off the request path: a handler drops a record into a bounded
queue and returns; one background task redacts and inserts the records in batches (in a thread: the
store is synchronous), and deletes rows past the retention age once an hour.

A full queue drops the record and counts it: a slow database must never slow the client down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aire.core.sensitive import redact
from aire.gateway.config import LogConfig
from aire.store.gateway_log import GatewayLog

if TYPE_CHECKING:
    from aire.gateway.tracing import RequestTracer

log = logging.getLogger("aire.gateway")
RETENTION_EVERY_S = 3600.0
REDACTED_FIELDS = ("prompt", "response", "error")


@dataclass
class TrafficLog:
    config: LogConfig
    sink: GatewayLog
    # Spans are built from the redacted rows, here, off the request path (aire.gateway.tracing).
    tracer: RequestTracer | None = None
    queue: asyncio.Queue[dict[str, Any]] = field(init=False)
    written: int = 0
    dropped: int = 0
    failed: int = 0
    deleted: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.config.queue)

    def record(self, row: dict[str, Any]) -> None:
        """Queue one request's row; never blocks, never raises."""
        if not self.config.enabled and self.tracer is None:
            return
        try:
            self.queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self.config.redact:
            for row in rows:
                for key in REDACTED_FIELDS:
                    if row.get(key):
                        row[key] = redact(row[key])
        if self.config.enabled:
            self.written += self.sink.insert(rows)
        if self.tracer is not None:
            self.tracer.spans(rows)

    def sweep(self) -> int:
        """Delete the rows past retention; returns how many."""
        cutoff = datetime.now(UTC) - timedelta(days=self.config.retention_days)
        n = self.sink.delete_before(cutoff)
        self.deleted += n
        return n

    async def run(self, stop: asyncio.Event) -> None:
        """Write batches until ``stop`` is set and the queue is empty (a drained shutdown loses nothing)."""
        last_sweep = -RETENTION_EVERY_S
        loop = asyncio.get_running_loop()
        while not (stop.is_set() and self.queue.empty()):
            if self.config.enabled and loop.time() - last_sweep >= RETENTION_EVERY_S:
                last_sweep = loop.time()
                with contextlib.suppress(Exception):
                    await asyncio.to_thread(self.sweep)
            try:
                first = await asyncio.wait_for(self.queue.get(), 0.5)
            except TimeoutError:
                continue
            rows = [first]
            while len(rows) < self.config.batch and not self.queue.empty():
                rows.append(self.queue.get_nowait())
            try:
                await asyncio.to_thread(self._write, rows)
            except Exception:
                self.failed += len(rows)
                log.exception("traffic log: %d rows not written", len(rows))
