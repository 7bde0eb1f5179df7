"""OpenAI-compatible streaming client: one request per sample, with latency SLIs and retries.

Every request streams (SSE) so each :class:`~aire.model.Completion` carries time to first token,
time per output token and end-to-end latency as the server delivered them. A request that fails
for good is *recorded* on its completion (``Completion.error``), never raised: one bad sample must
not stop a run of thousands, and the gate counts errors itself.

Built on aiohttp (an httpx client measured about 2x slower at concurrency 32). The hot path is kept
lean on purpose, because a benchmark holds aire to 95% of a bare aiohttp client's throughput: one
shared session whose connector is sized to the concurrency, request bodies serialised once, SSE
lines parsed with bytes operations and ``json.loads``.

Retries (tenacity): HTTP 429 and 5xx, timeouts, connection errors, a stream that breaks off and a
malformed chunk are retried with exponential backoff and jitter, honouring ``Retry-After``; other
4xx are not. Timings are those of the successful attempt; ``attempts`` counts every try.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import time
from collections.abc import Mapping
from typing import Any

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential
from yarl import URL

from aire.client.config import EndpointConfig
from aire.core.errors import EndpointError
from aire.core.types import Completion, CompletionError, GenerationParams, Sample

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "EndpointClient",
    "payload",
    "request_fingerprint",
]

COMPLETIONS_PATH = "/completions"
CHAT_PATH = "/chat/completions"

_perf = time.perf_counter
_loads = json.loads
_MAX_MESSAGE = 300  # characters of a server's error text kept on a completion


# --------------------------------------------------------------------------------------- request body
def payload(sample: Sample, params: GenerationParams) -> tuple[str, dict[str, Any]]:
    """The route (relative to the base URL) and the generation fields of the request for ``sample``.

    Pure and deterministic: the store fingerprints requests with it. The client adds ``model`` and the
    streaming fields, which are transport, not generation. ``stop`` and ``seed`` are only sent when
    set, so a default request looks the same to every server.
    """
    body: dict[str, Any] = {
        "max_tokens": params.max_tokens,
        "temperature": params.temperature,
        "top_p": params.top_p,
    }
    if params.stop:
        body["stop"] = list(params.stop)
    if params.seed is not None:
        body["seed"] = params.seed
    if isinstance(sample.prompt, str):
        body["prompt"] = sample.prompt
        return COMPLETIONS_PATH, body
    body["messages"] = [{"role": m.role, "content": m.content} for m in sample.prompt]
    return CHAT_PATH, body


def request_fingerprint(endpoint: EndpointConfig, sample: Sample, params: GenerationParams) -> str:
    """sha256 of the canonical JSON of what is sent where: base URL, served model, route and body.

    No secret goes in (the key is a header, not part of the request's identity), so the fingerprint
    is the same whoever runs it, and a resumed run recognises the requests it already sent.
    """
    path, body = payload(sample, params)
    doc = {"base_url": endpoint.base_url, "model": endpoint.model, "path": path, "body": body}
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# ----------------------------------------------------------------------------------------- failures
class _AttemptFailed(Exception):
    """One failed attempt: the error to record and whether trying again may help."""

    def __init__(self, error: CompletionError, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, _AttemptFailed) and exc.retryable


def _retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def _protocol(message: str) -> _AttemptFailed:
    # A garbled stream is usually a proxy or server hiccup: retried like a broken stream.
    return _AttemptFailed(CompletionError(type="protocol", message=message), retryable=True)


def _clip(data: bytes | str, n: int = 80) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= n else text[:n] + "..."


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or HTTP date); None if absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _error_text(raw: bytes) -> str:
    """The message of an OpenAI/vLLM error body ({"error": {"message"}} or {"message"}), else the text."""
    try:
        obj = _loads(raw)
    except ValueError:
        return _clip(raw.strip(), _MAX_MESSAGE)
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict) and err.get("message"):
            return _clip(str(err["message"]), _MAX_MESSAGE)
        if isinstance(err, str):
            return _clip(err, _MAX_MESSAGE)
    return _clip(raw.strip(), _MAX_MESSAGE)


def _count(value: Any) -> int | None:
    """A token count from a usage object, or None when the server sent something else."""
    return value if type(value) is int and value >= 0 else None


def _connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror[0].lower() + os_error.strerror[1:]
    return str(os_error) or type(os_error).__name__


# ------------------------------------------------------------------------------------------- client
class EndpointClient:
    """Async client for one OpenAI-compatible endpoint; use as ``async with EndpointClient(ep) as c``.

    At most ``concurrency`` requests are in flight at once (a semaphore held per attempt, so a
    request waiting out its backoff does not hold a slot). ``timeout_s`` bounds each attempt from
    send to the end of the stream. ``max_attempts`` counts the first try.
    """

    def __init__(
        self,
        endpoint: EndpointConfig,
        *,
        concurrency: int = 16,
        timeout_s: float = 60.0,
        max_attempts: int = 4,
        backoff_s: float = 0.25,
        max_backoff_s: float = 8.0,
        max_retry_after_s: float = 30.0,
        check_timeout_s: float = 10.0,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_retry_after_s = max_retry_after_s
        self.check_timeout_s = check_timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = wait_random_exponential(multiplier=backoff_s, max=max_backoff_s)
        # A template: every generate() works on a copy, because a tenacity object keeps its
        # per-call state in a thread-local that concurrent coroutines would share.
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        self._urls = {
            COMPLETIONS_PATH: URL(endpoint.base_url + COMPLETIONS_PATH),
            CHAT_PATH: URL(endpoint.base_url + CHAT_PATH),
        }
        self._session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None
        self._secret: str | None = None

    def __repr__(self) -> str:
        # Never the key: only where requests go.
        return (
            f"EndpointClient(endpoint={self.endpoint.name!r}, base_url={self.endpoint.base_url!r}, "
            f"model={self.endpoint.model!r}, concurrency={self.concurrency})"
        )

    @property
    def _where(self) -> str:
        return f"endpoint '{self.endpoint.name or self.endpoint.model}' at {self.endpoint.base_url}"

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        key = self.endpoint.api_key()
        self._secret = key or None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _new_session(self, limit: int) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
        return aiohttp.ClientSession(connector=connector, headers=self._headers())

    async def __aenter__(self) -> EndpointClient:
        # The session and semaphore belong to the running loop, so they are made here, not in __init__.
        self._session = self._new_session(self.concurrency)
        self._sem = asyncio.Semaphore(self.concurrency)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _redact(self, message: str) -> str:
        # A server may echo the Authorization header back in its error text.
        if self._secret and self._secret in message:
            message = message.replace(self._secret, "***")
        return message

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _AttemptFailed) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after_s)
        return float(self._backoff(state))

    # ------------------------------------------------------------------------------------ generate
    async def generate(self, sample: Sample, params: GenerationParams) -> Completion:
        """Send ``sample`` and stream the answer; failures end up in ``Completion.error``."""
        if self._session is None:
            raise RuntimeError("EndpointClient is not open: use 'async with EndpointClient(...)'")
        path, body = payload(sample, params)
        body["model"] = self.endpoint.model
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        data = json.dumps(body, separators=(",", ":")).encode()
        url = self._urls[path]
        chat = path == CHAT_PATH

        # The first attempt runs outside tenacity: its bookkeeping (an object copy, and inspect calls
        # on every action) cost more client CPU per request than the whole SSE parse, and almost
        # every request succeeds first time. Failures then go through the same tenacity policy.
        try:
            return await self._attempt(url, data, chat)
        except _AttemptFailed as exc:
            if not exc.retryable or self.max_attempts == 1:
                return self._failed(exc, 1)
            first: _AttemptFailed | None = exc

        attempt_no = 1
        try:
            async for attempt in self._retrying.copy():
                with attempt:
                    attempt_no = attempt.retry_state.attempt_number
                    if first is not None:
                        # Replay the first failure as tenacity's attempt 1, so the wait before attempt 2
                        # (Retry-After or backoff) and the attempt count are exactly its own.
                        failed, first = first, None
                        raise failed
                    completion = await self._attempt(url, data, chat)
        except _AttemptFailed as exc:
            return self._failed(exc, attempt_no)
        completion.attempts = attempt_no
        return completion

    def _failed(self, exc: _AttemptFailed, attempts: int) -> Completion:
        err = exc.error
        err.message = self._redact(err.message)
        return Completion(attempts=attempts, error=err)

    async def _attempt(self, url: URL, data: bytes, chat: bool) -> Completion:
        assert self._session is not None and self._sem is not None
        async with self._sem:
            t0 = _perf()  # after the semaphore: queueing in aire is not the server's latency
            try:
                async with self._session.post(url, data=data, timeout=self._timeout) as resp:
                    if resp.status >= 300:
                        raise await self._http_failure(resp)
                    if resp.content_type == "text/event-stream":
                        return await self._read_stream(resp, t0, chat)
                    return await self._read_body(resp, t0, chat)
            except _AttemptFailed:
                raise
            # TimeoutError first: aiohttp's timeout errors are also ClientErrors and OSErrors.
            except TimeoutError:
                raise _AttemptFailed(
                    CompletionError(type="timeout", message=f"no complete answer within {self.timeout_s:g} s"),
                    retryable=True,
                ) from None
            except aiohttp.ClientPayloadError as exc:
                raise _AttemptFailed(
                    CompletionError(type="connection", message=f"stream broke off: {_clip(str(exc), 160)}"),
                    retryable=True,
                ) from None
            except aiohttp.ClientConnectorError as exc:
                message = f"cannot connect to {exc.host}:{exc.port}: {_connect_reason(exc)}"
                raise _AttemptFailed(CompletionError(type="connection", message=message), retryable=True) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise _AttemptFailed(
                    CompletionError(type="connection", message=_clip(str(exc) or type(exc).__name__, 160)),
                    retryable=True,
                ) from None
            except HttpProcessingError as exc:  # e.g. an SSE line longer than the read buffer
                raise _protocol(f"unreadable response: {_clip(str(exc), 160)}") from None

    async def _http_failure(self, resp: aiohttp.ClientResponse) -> _AttemptFailed:
        status = resp.status
        try:
            # Read the (small) error body so the connection can be reused under a 429 storm.
            raw = await resp.read()
        except (aiohttp.ClientError, OSError):
            raw = b""
        text = _error_text(raw) if raw else (resp.reason or "")
        retryable = _retryable_status(status)
        retry_after = _parse_retry_after(resp.headers.get("Retry-After")) if retryable else None
        return _AttemptFailed(
            CompletionError(type="http", status=status, message=f"HTTP {status}: {text}"),
            retryable=retryable,
            retry_after=retry_after,
        )

    async def _read_stream(self, resp: aiohttp.ClientResponse, t0: float, chat: bool) -> Completion:
        parts: list[str] = []
        t_first = t_last = 0.0
        finish: str | None = None
        usage: Any = None
        done = False
        loads = _loads
        # Iterate to EOF rather than stopping at [DONE]: releasing a response whose body is not fully
        # read closes the connection, and reconnecting per request would cost more than the tail.
        async for line in resp.content:
            if not line.startswith(b"data:"):
                continue  # blank separators, ": keep-alive" comments, "event:" lines
            data = line[5:].strip()
            if data == b"[DONE]":
                done = True
                continue
            try:
                obj = loads(data)
            except ValueError:
                raise _protocol(f"malformed SSE chunk (not JSON): {_clip(data)}") from None
            if type(obj) is not dict:
                raise _protocol(f"malformed SSE chunk (not an object): {_clip(data)}")
            choices = obj.get("choices")
            if choices:
                try:
                    choice = choices[0]
                    text = (choice.get("delta") or {}).get("content") if chat else choice.get("text")
                    reason = choice.get("finish_reason")
                except (AttributeError, TypeError, KeyError):
                    raise _protocol(f"malformed SSE chunk (bad choices): {_clip(data)}") from None
                if text:
                    if type(text) is not str:
                        raise _protocol(f"malformed SSE chunk (text is not a string): {_clip(data)}")
                    now = _perf()
                    if not parts:
                        t_first = now
                    t_last = now
                    parts.append(text)
                if reason:
                    finish = str(reason)
            elif choices is None and obj.get("usage") is None:
                raise self._chunk_error(obj, data)
            u = obj.get("usage")
            if u:
                usage = u
        end = _perf()
        if not done and finish is None:
            raise _protocol("stream ended before [DONE]")
        return self._completion(parts, finish, usage, t0, t_first, t_last, end)

    def _chunk_error(self, obj: dict[str, Any], data: bytes) -> _AttemptFailed:
        """A chunk without choices: either the server's in-stream error report or garbage."""
        err = obj.get("error")
        if err is None:
            return _protocol(f"malformed SSE chunk (no choices): {_clip(data)}")
        message = err.get("message", "") if isinstance(err, dict) else str(err)
        code = err.get("code") if isinstance(err, dict) else None
        status = code if isinstance(code, int) else None
        # Retry what a status would have retried; an error the server states without a code is final.
        return _AttemptFailed(
            CompletionError(type="http", status=status, message=f"error in stream: {_clip(str(message), 300)}"),
            retryable=status is not None and _retryable_status(status),
        )

    def _completion(
        self,
        parts: list[str],
        finish: str | None,
        usage: Any,
        t0: float,
        t_first: float,
        t_last: float,
        end: float,
    ) -> Completion:
        prompt_tokens: int | None = None
        output_tokens: int | None = None
        if isinstance(usage, Mapping):
            prompt_tokens = _count(usage.get("prompt_tokens"))
            output_tokens = _count(usage.get("completion_tokens"))
        if output_tokens is None:
            output_tokens = len(parts)  # no usage chunk: one content chunk per token, as vLLM streams
        tpot = (t_last - t_first) / (output_tokens - 1) if parts and output_tokens >= 2 else None
        return Completion(
            text="".join(parts),
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens,
            ttft_s=t_first - t0 if parts else None,
            tpot_s=tpot,
            e2e_s=end - t0,
        )

    async def _read_body(self, resp: aiohttp.ClientResponse, t0: float, chat: bool) -> Completion:
        """A server that ignored ``stream: true`` and sent one JSON body: first token == last byte."""
        raw = await resp.read()
        end = _perf()
        try:
            obj = _loads(raw)
        except ValueError:
            raise _protocol(f"response is neither SSE nor JSON: {_clip(raw)}") from None
        choices = obj.get("choices") if isinstance(obj, dict) else None
        if not choices or not isinstance(choices[0], dict):
            if isinstance(obj, dict) and obj.get("error") is not None:
                raise self._chunk_error(obj, raw)
            raise _protocol(f"response without choices: {_clip(raw)}")
        choice = choices[0]
        text = (choice.get("message") or {}).get("content") if chat else choice.get("text")
        if text is not None and not isinstance(text, str):
            raise _protocol(f"response text is not a string: {_clip(raw)}")
        usage = obj.get("usage")
        out = Completion(
            text=text or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=_count(usage.get("prompt_tokens")) if isinstance(usage, dict) else None,
            output_tokens=_count(usage.get("completion_tokens")) if isinstance(usage, dict) else None,
            ttft_s=end - t0 if text else None,
            e2e_s=end - t0,
        )
        return out

    # --------------------------------------------------------------------------------------- check
    async def check(self) -> None:
        """Fail fast, in one line, if the endpoint is down or does not serve the configured model."""
        where = self._where
        timeout = aiohttp.ClientTimeout(total=min(self.check_timeout_s, self.timeout_s))
        own = self._session is None
        session = self._new_session(1) if own else self._session
        assert session is not None
        try:
            async with session.get(self.endpoint.base_url + "/models", timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise EndpointError(f"{where} is unreachable: no answer within {timeout.total:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise EndpointError(f"{where} is unreachable: {_connect_reason(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = self._redact(_clip(str(exc) or type(exc).__name__, 160))
            raise EndpointError(f"{where} is unreachable: {reason}") from None
        finally:
            if own:
                await session.close()
        if status in (401, 403):
            var = self.endpoint.api_key_env
            hint = f"check the key in ${var}" if var else "set api_key_env to the variable holding its key"
            raise EndpointError(f"{where} refused the credentials (HTTP {status}): {hint}")
        if status != 200:
            text = self._redact(_error_text(raw)) if raw else ""
            raise EndpointError(f"{where} answered HTTP {status} to GET /models" + (f": {text}" if text else ""))
        try:
            data = _loads(raw)["data"]
            served = [str(m["id"]) for m in data]
        except (ValueError, KeyError, TypeError):
            raise EndpointError(f"{where} did not answer GET /models with an OpenAI model list") from None
        if self.endpoint.model not in served:
            listed = ", ".join(served[:10]) + (f", … ({len(served)} in all)" if len(served) > 10 else "")
            raise EndpointError(f"{where} does not serve model '{self.endpoint.model}' (serves: {listed or 'nothing'})")
