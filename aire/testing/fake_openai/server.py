"""The fake OpenAI-compatible server (aiohttp.web): routes, counters, latency, faults, streaming.

When there is no per-token delay and no fault, a whole stream goes out in one write: the fast path
that keeps the fake off the critical path of a throughput benchmark.
"""

from __future__ import annotations

import asyncio
import json
import math
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from aiohttp import web

from aire.testing.fake_openai.answers import arithmetic_answer, parse_prompt, truncate, uniform, wrong_answer
from aire.testing.fake_openai.faults import MIDSTREAM, Fault, FaultPlan, RequestInfo
from aire.testing.fake_openai.responses import Stream, error, error_event, error_type, full_response, stream_events


class FakeOpenAI:
    """An OpenAI-compatible server with configurable latency, answers, wrongness and faults."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        models: Sequence[str] = ("fake",),
        latency_s: float = 0.05,
        token_delay_s: float = 0.0,
        answer: Callable[[str], str] = arithmetic_answer,
        faults: Mapping[int, Fault] | FaultPlan | None = None,
        wrong_rate: float = 0.0,
        seed: int = 0,
        send_usage: bool = True,
        honor_stream: bool = True,
        api_key: str | None = None,
        token_probs: tuple[float, float] = (0.9, 0.5),
        capacity: int | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.models = list(models)
        self.latency_s = latency_s
        self.token_delay_s = token_delay_s
        self.answer = answer
        self.faults = faults
        self.wrong_rate = wrong_rate
        self.seed = seed
        self.send_usage = send_usage
        # False: answer one JSON body even when the client asked for a stream (a non-compliant server).
        self.honor_stream = honor_stream
        self.api_key = api_key
        # What a request that asks for logprobs is told of each token: probability (right, wrong answer),
        # so a confidence evaluator has a known signal (right answers are the surer ones).
        self.token_probs = token_probs
        # At most this many requests in their latency at once, the rest queued: a replica with a
        # fixed number of batch slots (vLLM's max_num_seqs), so its throughput is capacity / latency.
        self.capacity = capacity
        self._slots: asyncio.Semaphore | None = None
        self.last_authorization: str | None = None
        self.last_body: dict[str, Any] = {}  # the last generation request, for tests of what a client sends
        self._runner: web.AppRunner | None = None
        self.reset()

    # ----------------------------------------------------------------------------------------- counters
    def reset(self) -> None:
        """Zero every counter (the request index that fault plans see starts again at 0)."""
        self.requests = 0
        self.models_requests = 0
        self.by_path: dict[str, int] = {}
        self.by_prompt: dict[str, int] = {}
        self.faults_injected = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def stats(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "models_requests": self.models_requests,
            "by_path": dict(self.by_path),
            "by_prompt": dict(self.by_prompt),
            "faults_injected": self.faults_injected,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }

    # -------------------------------------------------------------------------------------------- life
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, ``/v1`` included, as an EndpointConfig wants it."""
        return f"{self.url}/v1"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/reset", self._reset)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/completions", self._completions)
        app.router.add_post("/v1/chat/completions", self._chat)
        return app

    async def start(self) -> None:
        # handler_cancellation: a client that times out on a hung request must free its handler, or
        # in_flight would stay up and shutdown would wait for the hang.
        self._runner = web.AppRunner(self.app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.5)
        await self._runner.setup()
        # Bind the socket ourselves so port 0 yields a known free port.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock, backlog=1024).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeOpenAI:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -------------------------------------------------------------------------------------- handlers
    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    async def _models(self, request: web.Request) -> web.Response:
        self.models_requests += 1
        if not self._authorized(request):
            return error(401, "invalid api key", "AuthenticationError")
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "aire-fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=False)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        return await self._generate(request, chat=True)

    def _authorized(self, request: web.Request) -> bool:
        auth = request.headers.get("Authorization")
        self.last_authorization = auth
        return self.api_key is None or auth == f"Bearer {self.api_key}"

    def _fault_for(self, info: RequestInfo) -> Fault | None:
        plan = self.faults
        if plan is None:
            return None
        if isinstance(plan, Mapping):
            return plan.get(info.index)
        return plan(info)

    async def _generate(self, request: web.Request, *, chat: bool) -> web.StreamResponse:
        index = self.requests
        self.requests += 1
        path = request.path
        self.by_path[path] = self.by_path.get(path, 0) + 1
        if not self._authorized(request):
            return error(401, "invalid api key", "AuthenticationError")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return error(400, "request body must be a JSON object")
        self.last_body = body
        model = body.get("model")
        if model not in self.models:
            return error(404, f"The model `{model}` does not exist.", "NotFoundError")
        parsed = parse_prompt(body, chat)
        if isinstance(parsed, str):
            return error(400, parsed)
        key, prompt_text, prompt_tokens = parsed
        prompt_index = self.by_prompt.get(key, 0)
        self.by_prompt[key] = prompt_index + 1
        fault = self._fault_for(RequestInfo(index, prompt_index, key, path, body))
        if fault is not None:
            self.faults_injected += 1

        # "In flight" ends just before the last byte goes out, so a client that starts its next request
        # as soon as it has read [DONE] never sees a stale count.
        self.in_flight += 1
        if self.in_flight > self.max_in_flight:
            self.max_in_flight = self.in_flight
        released = False

        def leave() -> None:
            nonlocal released
            if not released:
                released = True
                self.in_flight -= 1

        try:
            if fault is not None and fault.kind == "hang":
                await asyncio.sleep(fault.hang_s)
            if self.capacity is not None:
                self._slots = self._slots or asyncio.Semaphore(self.capacity)
                async with self._slots:
                    await asyncio.sleep(self.latency_s)
            elif self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            if fault is not None and fault.kind == "status":
                leave()
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                return error(fault.status, fault.message, error_type(fault.status), headers)

            text = self.answer(prompt_text)
            wrong = (
                self.wrong_rate > 0 and uniform(self.seed, self._draw_key(key, body, prompt_index)) < self.wrong_rate
            )
            if wrong:
                text = wrong_answer(text)
            tokens, finish = truncate(text, body.get("max_tokens"), body.get("stop"))
            logprob = math.log(self.token_probs[wrong]) if body.get("logprobs") else None
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(tokens),
                "total_tokens": prompt_tokens + len(tokens),
            }
            if not (bool(body.get("stream")) and self.honor_stream):
                leave()
                return full_response(index, model, chat, tokens, finish, usage, logprob)
            options = body.get("stream_options") or {}
            want_usage = self.send_usage and bool(options.get("include_usage"))
            stream = stream_events(index, model, chat, tokens, finish, usage if want_usage else None, logprob)
            midstream = fault if fault is not None and fault.kind in MIDSTREAM else None
            return await self._stream(request, index, model, stream, midstream, leave)
        finally:
            leave()

    @staticmethod
    def _draw_key(key: str, body: dict[str, Any], prompt_index: int) -> str:
        """What decides a wrong answer: the prompt, so a greedy request is wrong every time or never;
        a sampled one (temperature > 0) also by its seed when it sends one, else by how many times
        the prompt came: its repeats are wrong independently, like samples of a real model."""
        temperature = body.get("temperature")
        if not isinstance(temperature, int | float) or temperature <= 0:
            return key
        seed = body.get("seed")
        return f"{key}\x00{'seed=' + str(seed) if seed is not None else prompt_index}"

    async def _stream(
        self,
        request: web.Request,
        index: int,
        model: str,
        stream: Stream,
        fault: Fault | None,
        leave: Callable[[], None],
    ) -> web.StreamResponse:
        events = stream.events
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            if fault is None and self.token_delay_s <= 0:
                # One write for the whole stream: the fast path that keeps the fake off the critical path.
                leave()
                await resp.write_eof(("".join(events) + stream.tail).encode())
                return resp
            n = len(events)
            at = min(fault.after_tokens, n) if fault is not None else -1
            for i in range(n + 1):
                if i == at and fault is not None:
                    if fault.kind == "disconnect":
                        leave()
                        if request.transport is not None:
                            request.transport.close()
                        return resp
                    if fault.kind == "stall":
                        await asyncio.sleep(fault.hang_s)
                    elif fault.kind == "error_chunk":
                        leave()
                        await resp.write_eof(error_event(fault.status, fault.message).encode())
                        return resp
                    elif fault.kind == "malformed":
                        await resp.write(b'data: {"choices": [{"text": \n\n')
                    else:  # no_choices
                        chunk = f'data: {{"id":"{index}","object":"{stream.object}","model":{json.dumps(model)}}}\n\n'
                        await resp.write(chunk.encode())
                if i == n:
                    break
                if i > 0 and self.token_delay_s > 0:
                    await asyncio.sleep(self.token_delay_s)
                await resp.write(events[i].encode())
            leave()
            await resp.write_eof(stream.tail.encode())
        except ConnectionError:
            pass  # the client went away (timeout, or it gave up on a bad chunk): nothing left to do
        return resp
