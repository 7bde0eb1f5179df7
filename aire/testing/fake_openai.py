"""A fake OpenAI-compatible server (aiohttp.web) for unit tests and benchmarks.

It speaks the subset of the OpenAI API that aire uses, shaped like vLLM's answers:

- ``GET /v1/models``, ``GET /health``
- ``POST /v1/completions`` and ``POST /v1/chat/completions``, streaming (SSE, one chunk per token, a final
  chunk carrying ``finish_reason``, a usage chunk when ``stream_options.include_usage`` is set, then
  ``data: [DONE]``) and non-streaming.
- ``GET /stats`` (request counters, in flight, faults injected) and ``POST /reset``.

One token is one character, like the tiny char-level models aire builds for vLLM on CPU. The default
answer is the arithmetic result of the last ``a op b =`` in the prompt (``"Q: 3+4=\\nA:"`` -> ``" 7"``),
otherwise ``"ok"``.

Faults are scripted per request: a mapping ``{request index: Fault}`` or any callable
``(RequestInfo) -> Fault | None`` (see :func:`fail_first`). Errors can be HTTP statuses (with
``Retry-After``), a hang before the headers, a stall mid-stream, a dropped connection mid-stream, a
malformed chunk, a chunk without ``choices`` and an in-stream ``{"error": ...}`` chunk.

In process::

    async with FakeOpenAI(latency_s=0.05) as srv:
        ...  # srv.base_url == "http://127.0.0.1:<port>/v1"

As a separate process (prints its base URL on one line, then serves until SIGTERM/SIGINT)::

    python -m aire.testing.fake_openai --port 8199 --latency-ms 50 [--token-delay-ms 2]

It has to keep up with concurrency 32 at 50 ms latency (about 600 requests/s) without being the
bottleneck, so the hot path pre-formats SSE lines as strings and, when there is no per-token delay,
sends the whole stream in one write.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web

FaultKind = Literal["status", "hang", "stall", "disconnect", "malformed", "no_choices", "error_chunk"]
_MIDSTREAM: frozenset[str] = frozenset({"stall", "disconnect", "malformed", "no_choices", "error_chunk"})
_DONE = "data: [DONE]\n\n"


@dataclass(frozen=True)
class Fault:
    """One injected failure.

    - ``status``: answer HTTP ``status`` (JSON error body, ``Retry-After`` when ``retry_after`` is set).
    - ``hang``: sleep ``hang_s`` before sending any header (the client should time out).
    - ``stall``: like hang, but after ``after_tokens`` token chunks.
    - ``disconnect``: close the connection after ``after_tokens`` token chunks.
    - ``malformed``: send a chunk that is not JSON after ``after_tokens`` token chunks.
    - ``no_choices``: send a JSON chunk with neither ``choices`` nor ``usage``.
    - ``error_chunk``: send ``data: {"error": {..., "code": status}}`` then ``[DONE]``.
    """

    kind: FaultKind = "status"
    status: int = 500
    retry_after: float | None = None
    after_tokens: int = 1
    hang_s: float = 3600.0
    message: str = "injected fault"


@dataclass(frozen=True)
class RequestInfo:
    """What a fault plan sees of a generation request."""

    index: int  # 0-based over all generation requests this server received
    prompt_index: int  # 0-based over the requests with the same prompt
    prompt: str  # the prompt key (completion prompt, or "role: content" lines of a chat)
    path: str
    body: dict[str, Any]


FaultPlan = Callable[[RequestInfo], Fault | None]


def fail_first(n: int, fault: Fault, *, per_prompt: bool = False) -> FaultPlan:
    """A plan that injects ``fault`` into the first ``n`` requests (overall, or of each prompt).

    Per prompt is the deterministic choice under concurrency: every sample fails ``n`` times and then
    succeeds, whatever order the requests arrive in.
    """

    def plan(info: RequestInfo) -> Fault | None:
        return fault if (info.prompt_index if per_prompt else info.index) < n else None

    return plan


_ARITH = re.compile(r"(-?\d+(?:\.\d+)?)\s*([-+*/x×])\s*(-?\d+(?:\.\d+)?)\s*=")
_LAST_INT = re.compile(r"-?\d+(?=\D*$)")


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.6g}"


def arithmetic_answer(prompt: str) -> str:
    """The answer to the last ``a op b =`` in the prompt (few-shot prompts carry solved examples first)."""
    matches = _ARITH.findall(prompt)
    if not matches:
        return "ok"
    a_s, op, b_s = matches[-1]
    a, b = float(a_s), float(b_s)
    if op == "+":
        return " " + _fmt(a + b)
    if op == "-":
        return " " + _fmt(a - b)
    if op in "*x×":
        return " " + _fmt(a * b)
    return " " + (_fmt(a / b) if b else "undefined")


def wrong_answer(text: str) -> str:
    """A plausible wrong answer: the last integer plus one, or a different word."""
    m = _LAST_INT.search(text)
    if m is None:
        return " wrong" if text.strip() != "wrong" else " right"
    return text[: m.start()] + str(int(m.group()) + 1) + text[m.end() :]


def _uniform(seed: int, key: str) -> float:
    # Stable across processes (unlike hash()), so a seeded fake is wrong on the same prompts every run.
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


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
        self.last_authorization: str | None = None
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
            return _error(401, "invalid api key", "AuthenticationError")
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
            return _error(401, "invalid api key", "AuthenticationError")
        try:
            body = json.loads(await request.read())
        except ValueError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        model = body.get("model")
        if model not in self.models:
            return _error(404, f"The model `{model}` does not exist.", "NotFoundError")
        parsed = _parse_prompt(body, chat)
        if isinstance(parsed, str):
            return _error(400, parsed)
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
            if self.latency_s > 0:
                await asyncio.sleep(self.latency_s)
            if fault is not None and fault.kind == "status":
                leave()
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else None
                return _error(fault.status, fault.message, _ERROR_TYPES.get(fault.status, "APIError"), headers)

            text = self.answer(prompt_text)
            if self.wrong_rate > 0 and _uniform(self.seed, key) < self.wrong_rate:
                text = wrong_answer(text)
            tokens, finish = _truncate(text, body.get("max_tokens"), body.get("stop"))
            stream = bool(body.get("stream")) and self.honor_stream
            usage = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(tokens),
                "total_tokens": prompt_tokens + len(tokens),
            }
            if not stream:
                leave()
                return _full_response(index, model, chat, "".join(tokens), finish, usage)
            options = body.get("stream_options") or {}
            want_usage = self.send_usage and bool(options.get("include_usage"))
            midstream = fault if fault is not None and fault.kind in _MIDSTREAM else None
            return await self._stream(request, index, model, chat, tokens, finish, usage, want_usage, midstream, leave)
        finally:
            leave()

    async def _stream(
        self,
        request: web.Request,
        index: int,
        model: str,
        chat: bool,
        tokens: list[str],
        finish: str,
        usage: dict[str, int],
        want_usage: bool,
        fault: Fault | None,
        leave: Callable[[], None],
    ) -> web.StreamResponse:
        created = int(time.time())
        mj = json.dumps(model)
        if chat:
            head = (
                f'data: {{"id":"chatcmpl-{index}","object":"chat.completion.chunk","created":{created},'
                f'"model":{mj},"choices":[{{"index":0,"delta":{{'
            )
            events = [
                head + '"content":' + json.dumps(t) + '},"logprobs":null,"finish_reason":null}]}\n\n' for t in tokens
            ]
            if events:  # vLLM and OpenAI open a chat stream with the role.
                events[0] = (
                    head + '"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n' + events[0]
                )
            final = head + '},"logprobs":null,"finish_reason":' + json.dumps(finish) + "}]}\n\n"
            obj = "chat.completion.chunk"
        else:
            head = (
                f'data: {{"id":"cmpl-{index}","object":"text_completion","created":{created},'
                f'"model":{mj},"choices":[{{"index":0,"text":'
            )
            events = [head + json.dumps(t) + ',"logprobs":null,"finish_reason":null}]}\n\n' for t in tokens]
            final = head + '"","logprobs":null,"finish_reason":' + json.dumps(finish) + "}]}\n\n"
            obj = "text_completion"
        tail = final
        if want_usage:
            tail += (
                f'data: {{"id":"{index}","object":"{obj}","created":{created},"model":{mj},'
                f'"choices":[],"usage":{json.dumps(usage)}}}\n\n'
            )
        tail += _DONE

        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await resp.prepare(request)
        try:
            if fault is None and self.token_delay_s <= 0:
                # One write for the whole stream: the fast path that keeps the fake off the critical path.
                leave()
                await resp.write_eof(("".join(events) + tail).encode())
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
                        err = {
                            "error": {
                                "object": "error",
                                "message": fault.message,
                                "type": _ERROR_TYPES.get(fault.status, "APIError"),
                                "code": fault.status,
                            }
                        }
                        leave()
                        await resp.write_eof(f"data: {json.dumps(err)}\n\n{_DONE}".encode())
                        return resp
                    elif fault.kind == "malformed":
                        await resp.write(b'data: {"choices": [{"text": \n\n')
                    else:  # no_choices
                        await resp.write(f'data: {{"id":"{index}","object":"{obj}","model":{mj}}}\n\n'.encode())
                if i == n:
                    break
                if i > 0 and self.token_delay_s > 0:
                    await asyncio.sleep(self.token_delay_s)
                await resp.write(events[i].encode())
            leave()
            await resp.write_eof(tail.encode())
        except ConnectionError:
            pass  # the client went away (timeout, or it gave up on a bad chunk): nothing left to do
        return resp


_ERROR_TYPES: dict[int, str] = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def _error(
    status: int, message: str, type_: str = "BadRequestError", headers: dict[str, str] | None = None
) -> web.Response:
    # vLLM's error body shape: {"error": {"message", "type", "param", "code"}}.
    body = {"error": {"message": message, "type": type_, "param": None, "code": status}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def _parse_prompt(body: dict[str, Any], chat: bool) -> tuple[str, str, int] | str:
    """(counter key, text the answer function sees, prompt tokens), or an error message."""
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        if not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            return "every message needs a string 'content'"
        key = "\n".join(f"{m.get('role')}: {m['content']}" for m in messages)
        users = [m["content"] for m in messages if m.get("role") == "user"]
        return key, users[-1] if users else messages[-1]["content"], sum(len(m["content"]) for m in messages)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        return "'prompt' must be a string"
    return prompt, prompt, len(prompt)


def _truncate(text: str, max_tokens: Any, stop: Any) -> tuple[list[str], str]:
    """Apply stop strings and max_tokens like a server would; one character is one token."""
    finish = "stop"
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for i in (text.find(s) for s in stops if s) if i >= 0), default=-1)
    if cut >= 0:
        text = text[:cut]
    tokens = list(text)
    limit = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else 16
    if len(tokens) > limit:
        tokens = tokens[:limit]
        finish = "length"
    return tokens, finish


def _full_response(index: int, model: str, chat: bool, text: str, finish: str, usage: dict[str, int]) -> web.Response:
    choice: dict[str, Any]
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        body = {"id": f"chatcmpl-{index}", "object": "chat.completion"}
    else:
        choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
        body = {"id": f"cmpl-{index}", "object": "text_completion"}
    body.update(created=int(time.time()), model=model, choices=[choice], usage=usage)
    return web.Response(text=json.dumps(body), content_type="application/json")


# ------------------------------------------------------------------------------------------------ CLI
def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m aire.testing.fake_openai",
        description="Serve a fake OpenAI-compatible API; prints its base URL (with /v1) on one line.",
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--latency-ms", type=float, default=50.0, help="delay before the first token")
    p.add_argument("--token-delay-ms", type=float, default=0.0, help="delay between tokens")
    p.add_argument("--model", action="append", dest="models", help="served model name (repeatable)")
    p.add_argument("--wrong-rate", type=float, default=0.0, help="share of prompts answered wrongly")
    p.add_argument("--seed", type=int, default=0, help="which prompts are answered wrongly")
    p.add_argument("--no-usage", action="store_true", help="never send the usage chunk")
    p.add_argument("--api-key", default=None, help="require this bearer key")
    p.add_argument("--fail-first", type=int, default=0, help="inject a fault into the first N requests")
    p.add_argument("--fail-per-prompt", action="store_true", help="count --fail-first per prompt")
    p.add_argument("--fail-kind", default="status", choices=sorted(_MIDSTREAM | {"status", "hang"}))
    p.add_argument("--fail-status", type=int, default=500)
    p.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on status faults")
    return p.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    plan = None
    if args.fail_first > 0:
        fault = Fault(kind=args.fail_kind, status=args.fail_status, retry_after=args.retry_after)
        plan = fail_first(args.fail_first, fault, per_prompt=args.fail_per_prompt)
    srv = FakeOpenAI(
        host=args.host,
        port=args.port,
        models=args.models or ["fake"],
        latency_s=args.latency_ms / 1000.0,
        token_delay_s=args.token_delay_ms / 1000.0,
        faults=plan,
        wrong_rate=args.wrong_rate,
        seed=args.seed,
        send_usage=not args.no_usage,
        api_key=args.api_key,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with srv:
        print(srv.base_url, flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    asyncio.run(_serve(_parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
