"""HTTP transport for one endpoint: the aiohttp session, bounded concurrency, timeouts, retries, error classes.

A request that fails for good is *recorded* on its completion (``Completion.error``), never raised: one bad
sample must not stop a run of thousands, and the gate counts errors itself.

Retries (tenacity): HTTP 429 and 5xx, timeouts, connection errors, a stream that breaks off and a malformed
chunk are retried with exponential backoff and jitter, honouring ``Retry-After``; other 4xx are not. Timings
are those of the successful attempt; ``attempts`` counts every try.

Built on aiohttp (an httpx client measured about 2x slower at concurrency 32): one shared session whose
connector is sized to the concurrency, so connections are reused across requests.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import time
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp.http_exceptions import HttpProcessingError
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt
from tenacity.wait import wait_random_exponential
from yarl import URL

from aire.client.replicas import Replicas
from aire.core.types import Completion, CompletionError

_perf = time.perf_counter
MAX_MESSAGE = 300  # characters of a server's error text kept on a completion

# Reads a successful response into a completion; gets the response and the attempt's start time.
Reader = Callable[[aiohttp.ClientResponse, float], Awaitable[Completion]]


# ----------------------------------------------------------------------------------------- failures
class AttemptFailed(Exception):
    """One failed attempt: the error to record and whether trying again may help."""

    def __init__(self, error: CompletionError, retryable: bool, retry_after: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.retryable = retryable
        self.retry_after = retry_after


def _is_retryable(exc: BaseException) -> bool:
    return isinstance(exc, AttemptFailed) and exc.retryable


def retryable_status(status: int) -> bool:
    return status == 429 or status >= 500


def protocol_error(message: str) -> AttemptFailed:
    # A garbled stream is usually a proxy or server hiccup: retried like a broken stream.
    return AttemptFailed(CompletionError(type="protocol", message=message), retryable=True)


def error_chunk(obj: dict[str, object], data: bytes) -> AttemptFailed:
    """A JSON answer without choices: either the server's error report (``{"error": ...}``) or garbage."""
    err = obj.get("error")
    if err is None:
        return protocol_error(f"malformed SSE chunk (no choices): {clip(data)}")
    message = err.get("message", "") if isinstance(err, dict) else str(err)
    code = err.get("code") if isinstance(err, dict) else None
    status = code if isinstance(code, int) else None
    # Retry what a status would have retried; an error the server states without a code is final.
    return AttemptFailed(
        CompletionError(type="http", status=status, message=f"error in stream: {clip(str(message), MAX_MESSAGE)}"),
        retryable=status is not None and retryable_status(status),
    )


def clip(data: bytes | str, n: int = 80) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text if len(text) <= n else text[:n] + "..."


def parse_retry_after(value: str | None) -> float | None:
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


def error_text(raw: bytes) -> str:
    """The message of an OpenAI/vLLM error body ({"error": {"message"}} or {"message"}), else the text."""
    try:
        obj = json.loads(raw)
    except ValueError:
        return clip(raw.strip(), MAX_MESSAGE)
    if isinstance(obj, dict):
        err = obj.get("error", obj)
        if isinstance(err, dict) and err.get("message"):
            return clip(str(err["message"]), MAX_MESSAGE)
        if isinstance(err, str):
            return clip(err, MAX_MESSAGE)
    return clip(raw.strip(), MAX_MESSAGE)


def connect_reason(exc: aiohttp.ClientConnectorError) -> str:
    """'connection refused', 'name or service not known', ...: the OS's reason in lower case."""
    os_error = exc.os_error
    if isinstance(os_error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror[0].lower() + os_error.strerror[1:]
    return str(os_error) or type(os_error).__name__


# -------------------------------------------------------------------------------------------- transport
class Transport:
    """POSTs to one endpoint's replicas with at most ``concurrency`` attempts in flight per replica, each
    retried by one policy; every attempt goes to the least loaded healthy replica (aire.client.replicas).

    The semaphore is held per attempt, so a request waiting out its backoff does not hold a slot.
    ``timeout_s`` bounds each attempt from send to the end of the stream; ``max_attempts`` counts the
    first try. ``api_key`` is read when the session opens and never shown (see :meth:`redact`).
    """

    def __init__(
        self,
        api_key: Callable[[], str | None],
        *,
        base_urls: list[str],
        concurrency: int,
        timeout_s: float,
        max_attempts: int,
        backoff_s: float,
        max_backoff_s: float,
        max_retry_after_s: float,
    ) -> None:
        self._api_key = api_key
        self.replicas = Replicas(base_urls)
        self.concurrency = concurrency  # per replica
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.max_retry_after_s = max_retry_after_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._backoff = wait_random_exponential(multiplier=backoff_s, max=max_backoff_s)
        # A template: every send() works on a copy, because a tenacity object keeps its per-call
        # state in a thread-local that concurrent coroutines would share.
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(max_attempts),
            wait=self._wait,
            retry=retry_if_exception(_is_retryable),
            reraise=True,
        )
        self.session: aiohttp.ClientSession | None = None
        self._sem: asyncio.Semaphore | None = None
        self._secret: str | None = None

    # ------------------------------------------------------------------------------------- session
    def new_session(self, limit: int) -> aiohttp.ClientSession:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream, application/json"}
        key = self._api_key()
        self._secret = key or None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300)
        return aiohttp.ClientSession(connector=connector, headers=headers)

    def open(self) -> None:
        # The session and semaphore belong to the running loop: made when the client is entered.
        self.session = self.new_session(self.concurrency * len(self.replicas))
        self._sem = asyncio.Semaphore(self.concurrency * len(self.replicas))

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()
            self.session = None

    def redact(self, message: str) -> str:
        # A server may echo the Authorization header back in its error text.
        if self._secret and self._secret in message:
            message = message.replace(self._secret, "***")
        return message

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, AttemptFailed) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_retry_after_s)
        return float(self._backoff(state))

    # ---------------------------------------------------------------------------------------- send
    async def send(self, path: str, data: bytes, read: Reader) -> Completion:
        """POST ``data`` to ``path`` (e.g. ``/completions``) of a replica until an attempt succeeds or the
        policy gives up; the failure ends up on the completion."""
        # The first attempt runs outside tenacity: its bookkeeping (an object copy, and inspect calls
        # on every action) cost more client CPU per request than the whole SSE parse, and almost
        # every request succeeds first time. Failures then go through the same tenacity policy.
        try:
            return await self._attempt(path, data, read)
        except AttemptFailed as exc:
            if not exc.retryable or self.max_attempts == 1:
                return self._failed(exc, 1)
            first: AttemptFailed | None = exc

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
                    completion = await self._attempt(path, data, read)
        except AttemptFailed as exc:
            return self._failed(exc, attempt_no)
        completion.attempts = attempt_no
        return completion

    def _failed(self, exc: AttemptFailed, attempts: int) -> Completion:
        err = exc.error
        err.message = self.redact(err.message)
        return Completion(attempts=attempts, error=err)

    async def _attempt(self, path: str, data: bytes, read: Reader) -> Completion:
        assert self.session is not None and self._sem is not None
        async with self._sem:
            replica = self.replicas.pick()
            sick = False
            try:
                return await self._post(self.replicas.url(replica, path), data, read)
            except AttemptFailed as exc:
                # A client error, or a 429 (busy, not sick), says nothing against the replica.
                err = exc.error
                sick = not (err.type == "http" and err.status is not None and err.status < 500)
                raise
            finally:
                self.replicas.release(replica, healthy=not sick)

    async def _post(self, url: URL, data: bytes, read: Reader) -> Completion:
        assert self.session is not None
        t0 = _perf()  # after the semaphore: queueing in aire is not the server's latency
        try:
            async with self.session.post(url, data=data, timeout=self._timeout) as resp:
                if resp.status >= 300:
                    raise await self._http_failure(resp)
                return await read(resp, t0)
        except AttemptFailed:
            raise
        # TimeoutError first: aiohttp's timeout errors are also ClientErrors and OSErrors.
        except TimeoutError:
            raise AttemptFailed(
                CompletionError(type="timeout", message=f"no complete answer within {self.timeout_s:g} s"),
                retryable=True,
            ) from None
        except aiohttp.ClientPayloadError as exc:
            raise AttemptFailed(
                CompletionError(type="connection", message=f"stream broke off: {clip(str(exc), 160)}"),
                retryable=True,
            ) from None
        except aiohttp.ClientConnectorError as exc:
            message = f"cannot connect to {exc.host}:{exc.port}: {connect_reason(exc)}"
            raise AttemptFailed(CompletionError(type="connection", message=message), retryable=True) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AttemptFailed(
                CompletionError(type="connection", message=clip(str(exc) or type(exc).__name__, 160)),
                retryable=True,
            ) from None
        except HttpProcessingError as exc:
            raise protocol_error(f"unreadable response: {clip(str(exc), 160)}") from None

    async def _http_failure(self, resp: aiohttp.ClientResponse) -> AttemptFailed:
        status = resp.status
        try:
            # Read the (small) error body so the connection can be reused under a 429 storm.
            raw = await resp.read()
        except (aiohttp.ClientError, OSError):
            raw = b""
        text = error_text(raw) if raw else (resp.reason or "")
        retryable = retryable_status(status)
        retry_after = parse_retry_after(resp.headers.get("Retry-After")) if retryable else None
        return AttemptFailed(
            CompletionError(type="http", status=status, message=f"HTTP {status}: {text}"),
            retryable=retryable,
            retry_after=retry_after,
        )
