"""Parsing an OpenAI-compatible answer: the SSE stream, fed in byte chunks as they arrive, or one JSON body.

:class:`StreamParser` needs no server: feed it bytes split anywhere (mid-line, mid-UTF-8 character) and
ask for the :class:`~aire.core.types.Completion`. It keeps the timings the latency SLIs need: when the
first and the last content chunk were read. Anything unreadable raises the transport's retryable
protocol error; an in-stream ``{"error": ...}`` chunk raises what its status would (see ``transport``).

The hot path is kept lean on purpose (a benchmark holds aire to 95% of a bare aiohttp client): lines
are split and matched with bytes operations and decoded with ``orjson.loads`` only when they carry data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from aire.client.transport import Reader, clip, error_chunk, protocol_error
from aire.core.types import Completion

_perf = time.perf_counter
_loads = orjson.loads
# aiohttp's readline refused lines over twice its 64 KiB buffer; a longer SSE line is still a protocol error.
MAX_LINE = 2 * 2**16


class StreamParser:
    """One streamed completion, built from the SSE bytes of a ``/completions`` or ``/chat/completions`` answer."""

    __slots__ = ("_chat", "_done", "_finish", "_logprobs", "_parts", "_tail", "_usage", "t_first", "t_last")

    def __init__(self, *, chat: bool) -> None:
        self._chat = chat
        self._parts: list[str] = []
        self._finish: str | None = None
        self._usage: Any = None
        self._done = False
        self._logprobs: list[tuple[str, float]] | None = None  # only when the server sends them
        self._tail = b""  # a line not yet ended by "\n"
        self.t_first = 0.0  # perf_counter when the first content chunk was read
        self.t_last = 0.0

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes of the stream, split anywhere."""
        if self._tail:
            chunk = self._tail + chunk
        lines = chunk.split(b"\n")
        tail = lines.pop()
        if len(tail) > MAX_LINE:
            raise protocol_error(f"unreadable response: SSE line longer than {MAX_LINE} bytes: {clip(tail)}")
        self._tail = tail
        for line in lines:
            # Blank separators, ": keep-alive" comments and "event:" lines carry nothing for us.
            if line.startswith(b"data:"):
                self._data(line[5:].strip())

    def _data(self, data: bytes) -> None:
        if data == b"[DONE]":
            self._done = True
            return
        try:
            obj = _loads(data)
        except ValueError:
            raise protocol_error(f"malformed SSE chunk (not JSON): {clip(data)}") from None
        if type(obj) is not dict:
            raise protocol_error(f"malformed SSE chunk (not an object): {clip(data)}")
        choices = obj.get("choices")
        if choices:
            try:
                choice = choices[0]
                text = (choice.get("delta") or {}).get("content") if self._chat else choice.get("text")
                reason = choice.get("finish_reason")
            except (AttributeError, TypeError, KeyError):
                raise protocol_error(f"malformed SSE chunk (bad choices): {clip(data)}") from None
            if text:
                if type(text) is not str:
                    raise protocol_error(f"malformed SSE chunk (text is not a string): {clip(data)}")
                now = _perf()
                if not self._parts:
                    self.t_first = now
                self.t_last = now
                self._parts.append(text)
            if reason:
                self._finish = str(reason)
            lp = choice.get("logprobs")
            if lp:
                if self._logprobs is None:
                    self._logprobs = []
                self._logprobs += logprob_pairs(lp, data, chat=self._chat)
        elif choices is None and obj.get("usage") is None:
            raise error_chunk(obj, data)
        usage = obj.get("usage")
        if usage:
            self._usage = usage

    def result(self, t0: float, end: float) -> Completion:
        """The completion of a stream that has ended (sent at ``t0``, last byte read at ``end``)."""
        if self._tail:  # the last line needs no "\n" once the stream is over
            tail, self._tail = self._tail, b""
            if tail.startswith(b"data:"):
                self._data(tail[5:].strip())
        if not self._done and self._finish is None:
            raise protocol_error("stream ended before [DONE]")
        parts = self._parts
        prompt_tokens, output_tokens = _usage_counts(self._usage)
        if output_tokens is None:
            output_tokens = len(parts)  # no usage chunk: one content chunk per token, as vLLM streams
        tpot = (self.t_last - self.t_first) / (output_tokens - 1) if parts and output_tokens >= 2 else None
        return Completion(
            text="".join(parts),
            finish_reason=self._finish,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            ttft_s=self.t_first - t0 if parts else None,
            tpot_s=tpot,
            e2e_s=end - t0,
            logprobs=self._logprobs,
        )


def logprob_pairs(lp: Any, raw: bytes, *, chat: bool) -> list[tuple[str, float]]:
    """(token, log-probability) pairs of a choice's ``logprobs``: the chat API's ``{"content": [{token,
    logprob}]}`` or the completions API's parallel ``tokens`` / ``token_logprobs`` lists."""
    try:
        if chat:
            return [(str(t["token"]), float(t["logprob"])) for t in lp.get("content") or ()]
        tokens, values = lp.get("tokens") or [], lp.get("token_logprobs") or []
        if len(tokens) != len(values):
            raise ValueError("tokens and token_logprobs differ in length")
        # A None logprob is the first prompt token's under echo: no output token's.
        return [(str(t), float(v)) for t, v in zip(tokens, values, strict=True) if v is not None]
    except (AttributeError, TypeError, KeyError, ValueError):
        raise protocol_error(f"malformed logprobs: {clip(raw)}") from None


def parse_body(raw: bytes, t0: float, end: float, *, chat: bool) -> Completion:
    """A server that ignored ``stream: true`` and sent one JSON body: first token == last byte."""
    try:
        obj = _loads(raw)
    except ValueError:
        raise protocol_error(f"response is neither SSE nor JSON: {clip(raw)}") from None
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not choices or not isinstance(choices[0], dict):
        if isinstance(obj, dict) and obj.get("error") is not None:
            raise error_chunk(obj, raw)
        raise protocol_error(f"response without choices: {clip(raw)}")
    choice = choices[0]
    text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
    if text is not None and not isinstance(text, str):
        raise protocol_error(f"response text is not a string: {clip(raw)}")
    prompt_tokens, output_tokens = _usage_counts(obj.get("usage"))
    lp = choice.get("logprobs")
    return Completion(
        text=text or "",
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=prompt_tokens,
        output_tokens=output_tokens,
        ttft_s=end - t0 if text else None,
        e2e_s=end - t0,
        logprobs=logprob_pairs(lp, raw, chat=chat) if lp else None,
    )


def reader(*, chat: bool) -> Reader:
    """What the transport calls with a successful response: stream or body, parsed into a completion."""

    async def read(resp: aiohttp.ClientResponse, t0: float) -> Completion:
        if resp.content_type != "text/event-stream":
            raw = await resp.read()
            return parse_body(raw, t0, _perf(), chat=chat)
        parser = StreamParser(chat=chat)
        # Read to EOF rather than stopping at [DONE]: releasing a response whose body is not fully
        # read closes the connection, and reconnecting per request would cost more than the tail.
        async for chunk in resp.content.iter_any():
            parser.feed(chunk)
        return parser.result(t0, _perf())

    return read


def _usage_counts(usage: Any) -> tuple[int | None, int | None]:
    """(prompt tokens, completion tokens) of a usage object; None for what the server did not send."""
    if not isinstance(usage, Mapping):
        return None, None
    return _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None
