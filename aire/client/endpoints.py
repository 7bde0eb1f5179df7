"""OpenAI-compatible streaming client: one request per sample, with latency SLIs and retries.

Every request streams (SSE) so each :class:`~aire.core.types.Completion` carries time to first token,
time per output token and end-to-end latency as the server delivered them. A request that fails for
good is recorded on its completion (``Completion.error``), never raised.

This module builds requests (:func:`payload`, the body the store fingerprints) and holds the client;
``transport`` sends them (session, concurrency, timeouts, retries, error classes) and ``sse`` reads the
answers. Request bodies are serialised once per request and each replica's URLs once per client: the
benchmark holds aire to 95% of a bare aiohttp client's throughput.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from aire.client.config import EndpointConfig
from aire.client.sse import reader
from aire.client.transport import Transport, clip, connect_reason, error_text
from aire.core.errors import EndpointError
from aire.core.types import Completion, GenerationParams, Sample

if TYPE_CHECKING:
    from aire.core.settings import Settings

__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "EndpointClient",
    "canonical_json",
    "payload",
    "request_fingerprint",
]

COMPLETIONS_PATH = "/completions"
CHAT_PATH = "/chat/completions"
_dumps = json.dumps


# --------------------------------------------------------------------------------------- request body
def payload(sample: Sample, params: GenerationParams) -> tuple[str, dict[str, Any]]:
    """The route (relative to the base URL) and the generation fields of the request for ``sample``.

    Pure and deterministic: the store fingerprints requests with it. The client adds ``model`` and the
    streaming fields, which are transport, not generation. ``stop`` and ``seed`` are only sent when
    set (``logprobs`` only when true), so a default request looks the same to every server.
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
    if params.response_format is not None:
        body["response_format"] = params.response_format
    if isinstance(sample.prompt, str):
        body["prompt"] = sample.prompt
        if params.logprobs:
            body["logprobs"] = 1  # the legacy API: top-N alternatives; the chosen token's comes with them
        return COMPLETIONS_PATH, body
    body["messages"] = [{"role": m.role, "content": m.content} for m in sample.prompt]
    if params.logprobs:
        body["logprobs"] = True
    return CHAT_PATH, body


def request_fingerprint(endpoint: EndpointConfig, sample: Sample, params: GenerationParams) -> str:
    """sha256 of the canonical JSON of what is sent where: base URL, served model, route and body.

    No secret goes in (the key is a header, not part of the request's identity), so the fingerprint
    is the same whoever runs it, and a resumed run recognises the requests it already sent.
    """
    path, body = payload(sample, params)
    doc = {"base_url": endpoint.base_url, "model": endpoint.model, "path": path, "body": body}
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def canonical_json(doc: dict[str, Any]) -> bytes:
    """``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` as UTF-8, byte
    for byte: stored fingerprints must not change. orjson writes the same bytes for everything a request
    holds except floats in exponent form (``1e-05`` vs ``0.00001``) and lone surrogates, which take the
    json path; it is ~4x faster, and the fingerprint is computed once per stored row."""
    body = doc.get("body")
    floats = [v for v in body.values() if type(v) is float] if isinstance(body, dict) else []
    if all("e" not in repr(v) for v in floats):
        try:
            return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # a lone surrogate, an integer beyond 64 bits
            pass
    # surrogatepass: a prompt read from JSON may hold a lone surrogate ("\ud800"), which strict UTF-8 refuses.
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")


# ------------------------------------------------------------------------------------------- client
class EndpointClient:
    """Async client for one OpenAI-compatible endpoint; use as ``async with EndpointClient(ep) as c``.

    At most ``concurrency`` requests are in flight at once per replica (a semaphore held per attempt,
    so a request waiting out its backoff does not hold a slot); with ``replicas`` in the endpoint, each
    attempt goes to the least loaded healthy one. ``timeout_s`` bounds each attempt from
    send to the end of the stream. ``max_attempts`` counts the first try. Built from the settings
    (timeout, attempts, default concurrency) with :meth:`from_settings`.
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
        self.check_timeout_s = check_timeout_s
        self._transport = Transport(
            endpoint.api_key,
            base_urls=endpoint.base_urls,
            concurrency=concurrency,
            timeout_s=timeout_s,
            max_attempts=max_attempts,
            backoff_s=backoff_s,
            max_backoff_s=max_backoff_s,
            max_retry_after_s=max_retry_after_s,
        )
        self._readers = {COMPLETIONS_PATH: reader(chat=False), CHAT_PATH: reader(chat=True)}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        endpoint: EndpointConfig,
        *,
        concurrency: int | None = None,
        timeout_s: float | None = None,
    ) -> EndpointClient:
        """The client every run uses: the settings' request timeout and attempts, and their concurrency
        unless the run chose its own (``--concurrency``, a plan's)."""
        return cls(
            endpoint,
            concurrency=settings.concurrency if concurrency is None else concurrency,
            timeout_s=settings.request_timeout_s if timeout_s is None else timeout_s,
            max_attempts=settings.max_attempts,
        )

    def __repr__(self) -> str:
        # Never the key: only where requests go.
        return (
            f"EndpointClient(endpoint={self.endpoint.name!r}, base_url={self.endpoint.base_url!r}, "
            f"model={self.endpoint.model!r}, concurrency={self.concurrency})"
        )

    async def __aenter__(self) -> EndpointClient:
        self._transport.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._transport.close()

    # ------------------------------------------------------------------------------------ generate
    async def generate(self, sample: Sample, params: GenerationParams) -> Completion:
        """Send ``sample`` and stream the answer; failures end up in ``Completion.error``."""
        if self._transport.session is None:
            raise RuntimeError("EndpointClient is not open: use 'async with EndpointClient(...)'")
        path, body = payload(sample, params)
        body["model"] = self.endpoint.model
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        return await self._transport.send(path, _dumps(body, separators=(",", ":")).encode(), self._readers[path])

    # --------------------------------------------------------------------------------------- check
    async def check(self) -> None:
        """Fail fast, in one line, if a replica of the endpoint is down or does not serve the model."""
        own = self._transport.session is None
        session = self._transport.new_session(1) if own else self._transport.session
        assert session is not None
        try:
            for base_url in self.endpoint.base_urls:
                await self._check_one(session, base_url)
        finally:
            if own:
                await session.close()

    async def _check_one(self, session: aiohttp.ClientSession, base_url: str) -> None:
        ep = self.endpoint
        where = f"endpoint '{ep.name or ep.model}' at {base_url}"
        redact = self._transport.redact
        timeout = aiohttp.ClientTimeout(total=min(self.check_timeout_s, self.timeout_s))
        try:
            async with session.get(base_url + "/models", timeout=timeout) as resp:
                raw = await resp.read()
                status = resp.status
        except TimeoutError:
            raise EndpointError(f"{where} is unreachable: no answer within {timeout.total:g} s") from None
        except aiohttp.ClientConnectorError as exc:
            raise EndpointError(f"{where} is unreachable: {connect_reason(exc)}") from None
        except (aiohttp.ClientError, OSError) as exc:
            reason = redact(clip(str(exc) or type(exc).__name__, 160))
            raise EndpointError(f"{where} is unreachable: {reason}") from None
        if status in (401, 403):
            var = ep.api_key_env
            hint = f"check the key in ${var}" if var else "set api_key_env to the variable holding its key"
            raise EndpointError(f"{where} refused the credentials (HTTP {status}): {hint}")
        if status != 200:
            text = redact(error_text(raw)) if raw else ""
            raise EndpointError(f"{where} answered HTTP {status} to GET /models" + (f": {text}" if text else ""))
        try:
            served = [str(m["id"]) for m in json.loads(raw)["data"]]
        except (ValueError, KeyError, TypeError):
            raise EndpointError(f"{where} did not answer GET /models with an OpenAI model list") from None
        if ep.model not in served:
            listed = ", ".join(served[:10]) + (f", … ({len(served)} in all)" if len(served) > 10 else "")
            raise EndpointError(f"{where} does not serve model '{ep.model}' (serves: {listed or 'nothing'})")
