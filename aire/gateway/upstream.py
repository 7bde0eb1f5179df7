"""Sending one request to an upstream version and reading its answer, for the client (streamed back
event by event as it arrives) or for the mirror (read and kept).

A failure before the upstream answered anything (connection refused or reset, 502/503/504 status) is
retried up to ``upstream_attempts`` times: nothing reached the client yet, so a retry is invisible
to it. Once an answer has started, nothing is retried: a stream cut off mid-way ends with an
OpenAI-style error event, a non-streamed one with a 502.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from aire.client.sse import StreamParser, parse_body
from aire.client.transport import AttemptFailed
from aire.core.types import Completion
from aire.gateway.requests import CHAT
from aire.gateway.routes import Upstream

_perf = time.perf_counter
RETRY_STATUS = frozenset({502, 503, 504})
PATHS = {CHAT: "/chat/completions", "completions": "/completions"}
# vLLM's usage-only chunk, sent when stream_options.include_usage is set: no choices.
_USAGE_ONLY = (b'"choices":[]', b'"choices": []')


class UpstreamUnavailable(Exception):
    """No answer from the upstream after every attempt (why: the last failure)."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Outcome:
    """What one request produced, for the traffic log and the metrics."""

    status: int = 0
    attempts: int = 0
    completion: Completion | None = None
    error: str | None = None
    started: float = field(default_factory=_perf)

    def row_fields(self) -> dict[str, Any]:
        c = self.completion
        return {
            "status": self.status,
            "error": self.error,
            "response": c.text if c else "",
            "finish_reason": c.finish_reason if c else None,
            "ttft_ms": c.ttft_s * 1000 if c and c.ttft_s is not None else None,
            "e2e_ms": (c.e2e_s if c and c.e2e_s is not None else _perf() - self.started) * 1000,
            "prompt_tokens": c.prompt_tokens if c else None,
            "completion_tokens": c.output_tokens if c else None,
        }


async def open_upstream(
    session: aiohttp.ClientSession,
    upstream: Upstream,
    api: str,
    body: dict[str, Any],
    *,
    attempts: int,
    timeout_s: float,
    outcome: Outcome,
) -> aiohttp.ClientResponse:
    """The upstream's response, headers read, body not yet; retried while nothing has been answered."""
    url = upstream.base_url + PATHS[api]
    data = orjson.dumps({**body, "model": upstream.served_model})
    headers = {"Content-Type": "application/json"}
    key = _api_key(upstream)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=min(timeout_s, 10.0))
    last = "no attempt made"
    status = 502
    for attempt in range(1, attempts + 1):
        outcome.attempts = attempt
        try:
            resp = await session.post(url, data=data, headers=headers, timeout=timeout)
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            last, status = f"upstream {upstream.label} unreachable: {type(exc).__name__}: {exc}", 502
        except TimeoutError:
            last, status = f"upstream {upstream.label} timed out after {timeout_s:g} s", 504
            break  # the time is spent: a retry would double what the client waits
        else:
            if resp.status not in RETRY_STATUS or attempt == attempts:
                return resp
            last, status = f"upstream {upstream.label} answered {resp.status}", resp.status
            resp.release()
        if attempt < attempts:
            await asyncio.sleep(0.05 * attempt)
    raise UpstreamUnavailable(last, status)


def _api_key(upstream: Upstream) -> str | None:
    import os

    return os.environ.get(upstream.api_key_env) if upstream.api_key_env else None


async def relay_stream(
    resp: aiohttp.ClientResponse,
    write: Callable[[bytes], Awaitable[None]] | None,
    *,
    chat: bool,
    strip_usage: bool,
    outcome: Outcome,
) -> None:
    """Read an SSE answer as it arrives: every complete event of what one read returned goes to
    ``write`` at once (one write per read, not per event: the fake server sends a whole answer in one
    segment, vLLM one event per token), the usage-only event withheld when the client did not ask for
    it; everything is fed to a parser for the log. Only an event cut by the end of a read waits for
    its end."""
    parser = StreamParser(chat=chat)
    tail = b""
    failed: str | None = None
    async for chunk in resp.content.iter_any():
        if failed is None:
            try:
                parser.feed(chunk)
            except AttemptFailed as exc:  # an error event, or one the parser cannot read: passed on as is
                failed = exc.error.message
        if write is None:
            continue
        data = tail + chunk
        # Events end with a blank line ("\n\n", or "\r\n\r\n" from some servers).
        cut = max(data.rfind(b"\n\n") + 2, data.rfind(b"\r\n\r\n") + 4, 0)
        complete, tail = data[:cut], data[cut:]
        if strip_usage and complete and any(m in complete for m in _USAGE_ONLY):
            complete = b"".join(e + b"\n\n" for e in complete.split(b"\n\n")[:-1] if not _usage_only(e))
        if complete:
            await write(complete)
    if tail and write is not None:
        await write(tail)
    try:
        outcome.completion = parser.result(outcome.started, _perf())
    except AttemptFailed as exc:
        failed = failed or exc.error.message
    outcome.error = failed


def _usage_only(event: bytes) -> bool:
    return any(m in event for m in _USAGE_ONLY)


async def read_body(resp: aiohttp.ClientResponse, *, chat: bool, outcome: Outcome) -> bytes:
    """A non-streamed answer, read whole; parsed for the log when it is a success."""
    raw = await resp.read()
    if resp.status < 400:
        try:
            outcome.completion = parse_body(raw, outcome.started, _perf(), chat=chat)
        except AttemptFailed as exc:
            outcome.error = exc.error.message
    else:
        outcome.error = raw[:500].decode(errors="replace")
    return raw
