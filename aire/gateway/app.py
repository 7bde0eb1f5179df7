"""``aire gateway``: an OpenAI-compatible server in front of the vLLM replicas.

Each served name routes to the version holding ``production`` in the registry (aire.gateway.routes),
a ``canary`` share to ``challenger``; streams are passed on event by event. After the answer, the
request is logged (aire.gateway.traffic_log) and, for a ``mirror`` share, copied to the challenger
(aire.gateway.mirror). Everything after the answer runs off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from aire.client.config import AireConfig
from aire.core.settings import Settings
from aire.core.types import Completion
from aire.gateway.access import Access
from aire.gateway.breaker import BreakerOpen, Breakers, Failed
from aire.gateway.cache import ResponseCache
from aire.gateway.cached import CACHE_HEADER, answer_hit, response_of, text_of
from aire.gateway.config import GatewayConfig
from aire.gateway.metrics import GatewayMetrics
from aire.gateway.mirror import Copy, Mirror
from aire.gateway.requests import CHAT, COMPLETIONS, BadRequest, error_body, params_of, parse, prompt_text
from aire.gateway.routes import Route, RouteTable, Upstream
from aire.gateway.traffic_log import TrafficLog

if TYPE_CHECKING:
    from aire.gateway.tracing import RequestTracer
from aire.gateway.upstream import Outcome, UpstreamUnavailable, open_upstream, read_body, relay_stream
from aire.store.api_keys import ApiKeys
from aire.store.gateway_log import SERVED, GatewayLog
from aire.store.store import Store

log = logging.getLogger("aire.gateway")
VERSION_HEADER, REQUEST_ID_HEADER = "x-aire-version", "x-request-id"


@dataclass
class Counters:
    requests: int = 0
    errors: int = 0
    rejected: int = 0  # refused before going upstream (bad request, unknown model, no route)


class Gateway:
    def __init__(
        self,
        settings: Settings,
        config: GatewayConfig,
        endpoints: AireConfig,
        *,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.settings, self.config, self.rand = settings, config, rand
        self.routes = RouteTable(settings, config, endpoints)
        self.store = Store(settings.resolved_store_url)
        self.traffic = TrafficLog(config.log, GatewayLog(self.store), tracer=self._tracer(config))
        self.mirror = Mirror(config, self.traffic.record)
        self.counters = Counters()
        self.cache = self._cache(config)
        b = config.breaker
        self.breakers = Breakers(threshold=b.threshold, open_s=b.open_s, slow_ttft_s=b.slow_ttft_s)
        self.incidents_opened = 0
        self.access = Access(ApiKeys(self.store), required=config.keys.required)
        self.metrics = GatewayMetrics(self._gauges)  # reads the parts above when scraped
        self._pending: set[asyncio.Task[None]] = set()  # cache stores in flight (kept referenced)
        self._session: aiohttp.ClientSession | None = None

    @staticmethod
    def _tracer(config: GatewayConfig) -> RequestTracer | None:
        if not config.otlp.endpoint:
            return None
        from aire.gateway.tracing import RequestTracer

        return RequestTracer(config.otlp.endpoint, config.otlp.headers, config.otlp.service)

    @staticmethod
    def _cache(config: GatewayConfig) -> ResponseCache | None:
        c = config.cache
        if not c.enabled:
            return None
        return ResponseCache(max_entries=c.max_entries, ttl_s=c.ttl_s, semantic=c.semantic, threshold=c.threshold)

    # -- lifecycle ----------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=16 * 2**20)
        app.router.add_post("/v1/completions", self.completions)
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.prometheus)
        app.cleanup_ctx.append(self._lifecycle)
        return app

    async def _lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        # Routes first: a (re)started gateway serves what the registry says before its first request.
        await asyncio.to_thread(self.routes.refresh)
        await asyncio.to_thread(self.access.refresh)
        if self.cache is not None and self.cache.semantic:
            await asyncio.to_thread(self.cache.warm)  # the embedder loads now, not on a user's request
        connector = aiohttp.TCPConnector(limit=self.config.max_connections, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector)
        stop, drained = asyncio.Event(), asyncio.Event()
        background = [
            asyncio.create_task(self.routes.keep_fresh(stop, also=self.access.refresh)),
            asyncio.create_task(self.mirror.run(self._session, stop)),
        ]
        writer = asyncio.create_task(self.traffic.run(drained))
        try:
            yield
        finally:
            # In-flight requests have been drained by aiohttp's shutdown by now; their log rows are
            # queued. Stop the rest, then let the writer empty its queue.
            stop.set()
            if self._pending:
                await asyncio.gather(*self._pending, return_exceptions=True)
            for task in background:
                with contextlib.suppress(Exception):
                    await task
            drained.set()
            with contextlib.suppress(Exception):
                await writer
            if self.traffic.tracer is not None:
                await asyncio.to_thread(self.traffic.tracer.close)
            await self._session.close()

    # -- endpoints ----------------------------------------------------------------------------
    async def models(self, request: web.Request) -> web.Response:
        data = []
        for name, route in sorted(self.routes.routes.items()):
            prod = route.production
            data.append(
                {
                    "id": name,
                    "object": "model",
                    "owned_by": "aire",
                    "aire": {
                        "production": prod.label if prod else None,
                        "challenger": route.challenger.label if route.challenger else None,
                        "canary": route.canary,
                        "mirror": route.mirror,
                        "note": route.note,
                    },
                }
            )
        return web.json_response({"object": "list", "data": data})

    async def health(self, request: web.Request) -> web.Response:
        routed = {n: (r.production.label if r.production else None) for n, r in self.routes.routes.items()}
        ok = bool(routed) and all(routed.values())
        return web.json_response({"ok": ok, "routes": routed}, status=200 if ok else 503)

    async def prometheus(self, request: web.Request) -> web.Response:
        from prometheus_client import CONTENT_TYPE_LATEST

        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    def _gauges(self) -> dict[str, tuple[str, float]]:
        return {
            "aire_gateway_rejected_total": ("Requests refused before going upstream.", self.counters.rejected),
            "aire_gateway_mirror_sent_total": ("Mirrored copies sent to challenger.", self.mirror.sent),
            "aire_gateway_mirror_dropped_total": ("Mirrored copies dropped (queue full).", self.mirror.dropped),
            "aire_gateway_log_written_total": ("Traffic log rows written.", self.traffic.written),
            "aire_gateway_log_dropped_total": ("Traffic log rows dropped (queue full).", self.traffic.dropped),
            "aire_gateway_log_queue": ("Traffic log rows waiting.", self.traffic.queue.qsize()),
            "aire_gateway_route_refresh_errors_total": ("Failed registry reads.", self.routes.errors),
            "aire_gateway_breakers_open": (
                "Upstream versions whose circuit breaker is open.",
                sum(st == "opened" for st in self.breakers.states.values()),
            ),
            "aire_gateway_breaker_opened_total": ("Times a circuit breaker opened.", self.breakers.opened),
            "aire_gateway_incidents_opened_total": ("Incidents the gateway opened.", self.incidents_opened),
            "aire_gateway_key_rejections_total": ("Requests refused for a missing or bad key.", self.access.rejected),
            "aire_gateway_limited_total": ("Requests refused by a key's limits (429).", self.access.limited),
            **self._cache_gauges(),
        }

    def _cache_gauges(self) -> dict[str, tuple[str, float]]:
        if self.cache is None:
            return {}
        st = self.cache.stats
        return {
            "aire_gateway_cache_exact_hits_total": ("Requests answered by the exact cache.", st.exact_hits),
            "aire_gateway_cache_semantic_hits_total": ("Requests answered by the semantic cache.", st.semantic_hits),
            "aire_gateway_cache_misses_total": ("Cacheable requests not found.", st.misses),
            "aire_gateway_cache_hit_ratio": ("Share of requests answered from the cache.", st.hit_rate),
            "aire_gateway_cache_saved_tokens_total": ("Tokens not generated thanks to the cache.", st.saved_tokens),
            "aire_gateway_cache_entries": ("Entries held.", st.entries),
        }

    async def completions(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, COMPLETIONS)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        return await self._handle(request, CHAT)

    # -- one request --------------------------------------------------------------------------
    async def _handle(self, request: web.Request, api: str) -> web.StreamResponse:
        self.counters.requests += 1
        request_id = request.headers.get(REQUEST_ID_HEADER) or uuid.uuid4().hex
        try:
            key = self.access.identify(request.headers.get("Authorization"))
            body = parse(await request.read(), api)
            route, upstream = self._route(body["model"])
            estimate = await self.access.admit(key, body, len(prompt_text(body, api)))
        except BadRequest as exc:
            self.counters.rejected += 1
            return exc.response()
        at = datetime.now(UTC)
        outcome = Outcome()
        headers = {VERSION_HEADER: upstream.label, REQUEST_ID_HEADER: request_id}
        cache_kind: str | None = None
        try:
            hit = await self.cache.alookup(upstream.label, api, body) if self.cache is not None else None
            if hit is not None:
                cache_kind = hit.kind
                headers[CACHE_HEADER] = hit.kind
                response = await self._from_cache(request, api, body, headers, hit.response, outcome)
            else:
                response, upstream = await self._guarded(request, api, body, route, upstream, headers, outcome)
                self._remember(upstream, api, body, request_id, outcome)
        finally:
            if outcome.error or outcome.status >= 400:
                self.counters.errors += 1
            row = {
                "request_id": request_id,
                "kind": SERVED,
                "at": at,
                "route": route.name,
                "model": upstream.model,
                "version": upstream.version,
                "served_model": upstream.served_model,
                "endpoint": upstream.endpoint,
                "api": api,
                "stream": bool(body.get("stream")),
                "prompt": prompt_text(body, api),
                "params": params_of(body),
                "cache": cache_kind,
                "key_id": key.id if key is not None else None,
                **outcome.row_fields(),
            }
            self.traffic.record(row)
            self.metrics.observe(row)
        if key is not None:
            used = (row["prompt_tokens"] or 0) + (row["completion_tokens"] or 0) if row["completion_tokens"] else None
            await self.access.settle(key, estimate, 0 if cache_kind else used)  # a cache hit generates nothing
        self._maybe_mirror(route, upstream, request_id, at, api, body, row)
        return response

    async def _from_cache(
        self,
        request: web.Request,
        api: str,
        body: dict[str, Any],
        headers: dict[str, str],
        cached: dict[str, Any],
        outcome: Outcome,
    ) -> web.StreamResponse:
        usage = cached.get("usage") or {}
        outcome.status = 200
        outcome.completion = Completion(
            text=text_of(cached, api),
            finish_reason=((cached.get("choices") or [{}])[0]).get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            output_tokens=usage.get("completion_tokens"),
        )
        response = await answer_hit(request, cached, api, body, headers)
        outcome.completion.e2e_s = time.perf_counter() - outcome.started
        outcome.completion.ttft_s = outcome.completion.e2e_s
        return response

    async def _guarded(
        self,
        request: web.Request,
        api: str,
        body: dict[str, Any],
        route: Route,
        upstream: Upstream,
        headers: dict[str, str],
        outcome: Outcome,
    ) -> tuple[web.StreamResponse, Upstream]:
        """``_forward`` through the upstream's circuit breaker; an open breaker on production fails over
        to the route's fallback and opens an incident for the version (once)."""
        response: web.StreamResponse | None = None
        try:
            async with await self.breakers.get(upstream.label):  # type: ignore[attr-defined]
                response = await self._forward(request, api, body, upstream, headers, outcome)
                if self.breakers.failed(outcome):
                    raise Failed(outcome.error or str(outcome.status))
            return response, upstream
        except Failed:
            assert response is not None
            return response, upstream
        except BreakerOpen:
            fallback = route.fallback if upstream is route.production else None
            await self._incident(upstream)
            if fallback is None or self.breakers.is_open(fallback.label):
                outcome.status, outcome.error = 503, f"circuit breaker open for {upstream.label}"
                return BadRequest(503, outcome.error, kind="upstream_error", code="circuit_open",
                                  headers=headers).response(), upstream  # fmt: skip
            headers[VERSION_HEADER] = fallback.label
            return await self._guarded(request, api, body, route, fallback, headers, outcome)

    async def _incident(self, upstream: Upstream) -> None:
        """One incident per version (the store enforces it), opened off the event loop."""
        from aire.release.incidents import open_incident

        def open_it() -> bool:
            _, created = open_incident(
                self.store,
                model=upstream.model,
                version=upstream.version,
                severity="page",
                summary=f"gateway: circuit breaker opened for {upstream.label} "
                f"({self.config.breaker.threshold} consecutive failed requests)",
                evidence={"source": "gateway", "breaker": self.config.breaker.model_dump()},
            )
            return created

        if await asyncio.to_thread(open_it):
            self.incidents_opened += 1
            log.warning("circuit breaker open for %s: incident opened, traffic to the fallback", upstream.label)
            await asyncio.to_thread(self.routes.refresh)  # the route leaves the version now, not in 2 s

    def _remember(self, upstream: Upstream, api: str, body: dict[str, Any], request_id: str, outcome: Outcome) -> None:
        """Store a successful answer in the cache, off the request path (a semantic entry embeds)."""
        c = outcome.completion
        if self.cache is None or c is None or outcome.error or outcome.status != 200:
            return
        response = response_of(c, api, upstream.served_model, request_id)
        task = asyncio.create_task(self.cache.astore(upstream.label, api, body, response))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _route(self, model: str) -> tuple[Route, Upstream]:
        route = self.routes.routes.get(model)
        if route is None:
            known = ", ".join(sorted(self.routes.routes)) or "none"
            raise BadRequest(404, f"The model '{model}' does not exist; served: {known}", param="model",
                             code="model_not_found")  # fmt: skip
        upstream = route.pick(self.rand)
        if upstream is None:
            why = route.note or f"no version of '{self.config.registered_model(model)}' holds the alias production"
            raise BadRequest(503, why, kind="service_unavailable", code="no_route")
        return route, upstream

    async def _forward(
        self,
        request: web.Request,
        api: str,
        body: dict[str, Any],
        upstream: Upstream,
        headers: dict[str, str],
        outcome: Outcome,
    ) -> web.StreamResponse:
        assert self._session is not None
        stream = bool(body.get("stream"))
        sent = body
        strip_usage = False
        if stream and not (body.get("stream_options") or {}).get("include_usage"):
            # Ask for the usage chunk (token counts for the log and the limits), kept from the client.
            sent = {**body, "stream_options": {**(body.get("stream_options") or {}), "include_usage": True}}
            strip_usage = True
        try:
            resp = await open_upstream(
                self._session,
                upstream,
                api,
                sent,
                attempts=self.config.upstream_attempts,
                timeout_s=self.config.upstream_timeout_s,
                outcome=outcome,
            )
        except UpstreamUnavailable as exc:
            outcome.status, outcome.error = exc.status, str(exc)
            return BadRequest(exc.status, str(exc), kind="upstream_error", headers=headers).response()
        async with resp:
            outcome.status = resp.status
            if stream and resp.status < 400 and resp.content_type == "text/event-stream":
                out = web.StreamResponse(
                    status=resp.status,
                    headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
                )
                await out.prepare(request)
                try:
                    await relay_stream(resp, out.write, chat=api == CHAT, strip_usage=strip_usage, outcome=outcome)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    # The upstream broke off mid-stream: the client gets an error event, then the end.
                    outcome.error = f"upstream {upstream.label} broke off the stream: {type(exc).__name__}: {exc}"
                    with contextlib.suppress(ConnectionError):
                        await out.write(b"data: " + error_body(outcome.error, kind="upstream_error") + b"\n\n")
                with contextlib.suppress(ConnectionError):
                    await out.write_eof()
                return out
            try:
                raw = await read_body(resp, chat=api == CHAT, outcome=outcome)
            except (aiohttp.ClientError, TimeoutError) as exc:
                outcome.status, outcome.error = 502, f"upstream {upstream.label}: {type(exc).__name__}: {exc}"
                return BadRequest(502, outcome.error, kind="upstream_error", headers=headers).response()
            return web.Response(status=resp.status, body=raw, content_type=resp.content_type, headers=headers)

    def _maybe_mirror(
        self,
        route: Route,
        upstream: Upstream,
        request_id: str,
        at: datetime,
        api: str,
        body: dict[str, Any],
        row: dict[str, Any],
    ) -> None:
        challenger = route.challenger
        if challenger is None or upstream is challenger or route.mirror <= 0 or self.rand() >= route.mirror:
            return
        shared = {k: row[k] for k in ("route", "api", "prompt", "params")}
        self.mirror.submit(Copy(request_id, at, challenger, api, body, shared))
