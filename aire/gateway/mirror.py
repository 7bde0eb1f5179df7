"""The shadow mirror: a share of the requests copied, after the client has its answer, to the version
holding ``challenger``; its answer is logged next to the served one under the same request id, for
``aire gate --mirrored``.

The client never waits for or sees the mirror: a copy is queued without blocking (a full queue drops
it and counts the drop), and a few workers send the copies. The copy is always streamed, so its TTFT
and time per output token are measured like the served request's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp

from aire.gateway.config import GatewayConfig
from aire.gateway.requests import CHAT
from aire.gateway.routes import Upstream
from aire.gateway.upstream import Outcome, UpstreamUnavailable, open_upstream, read_body, relay_stream

log = logging.getLogger("aire.gateway")


@dataclass(frozen=True)
class Copy:
    request_id: str
    at: datetime
    upstream: Upstream
    api: str
    body: dict[str, Any]
    row: dict[str, Any]  # the served row's fields that the mirrored row shares (route, prompt, params)


@dataclass
class Mirror:
    config: GatewayConfig
    record: Callable[[dict[str, Any]], None]  # the traffic log's
    queue: asyncio.Queue[Copy] = field(init=False)
    sent: int = 0
    dropped: int = 0
    failed: int = 0

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.config.mirror.queue)

    def submit(self, copy: Copy) -> None:
        try:
            self.queue.put_nowait(copy)
        except asyncio.QueueFull:
            self.dropped += 1

    async def _send(self, session: aiohttp.ClientSession, copy: Copy) -> None:
        outcome = Outcome()
        body = {**copy.body, "stream": True, "stream_options": {"include_usage": True}}
        try:
            resp = await open_upstream(
                session,
                copy.upstream,
                copy.api,
                body,
                attempts=1,  # a shadow copy is evidence, not service: no retries
                timeout_s=self.config.upstream_timeout_s,
                outcome=outcome,
            )
            async with resp:
                outcome.status = resp.status
                if resp.status < 400 and resp.content_type == "text/event-stream":
                    await relay_stream(resp, None, chat=copy.api == CHAT, strip_usage=False, outcome=outcome)
                else:
                    await read_body(resp, chat=copy.api == CHAT, outcome=outcome)
        except UpstreamUnavailable as exc:
            outcome.status, outcome.error = exc.status, str(exc)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome.status, outcome.error = outcome.status or 502, f"{type(exc).__name__}: {exc}"
        if outcome.error:
            self.failed += 1
        self.sent += 1
        self.record(
            {
                **copy.row,
                **outcome.row_fields(),
                "request_id": copy.request_id,
                "kind": "mirrored",
                "at": copy.at,
                "model": copy.upstream.model,
                "version": copy.upstream.version,
                "served_model": copy.upstream.served_model,
                "endpoint": copy.upstream.endpoint,
                "stream": True,
            }
        )

    async def run(self, session: aiohttp.ClientSession, stop: asyncio.Event) -> None:
        """Workers send copies until ``stop``; what is still queued then is dropped (and counted)."""

        async def worker() -> None:
            while not stop.is_set():
                try:
                    copy = await asyncio.wait_for(self.queue.get(), 0.5)
                except TimeoutError:
                    continue
                try:
                    await self._send(session, copy)
                except Exception:  # a mirror failure must never reach the gateway
                    self.failed += 1
                    log.exception("mirror: copy of %s failed", copy.request_id)

        workers = [asyncio.create_task(worker()) for _ in range(self.config.mirror.concurrency)]
        try:
            await stop.wait()
        finally:
            for w in workers:
                w.cancel()
            for w in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await w
            self.dropped += self.queue.qsize()
