"""Between the gateway and its response cache (aire.gateway.cache): what is stored for an answer, and
how a hit is answered, as a JSON body or replayed as a stream (one content event, the usage event when
the client asked for it, ``[DONE]``), so a client cannot tell a hit from the upstream but by the
``x-aire-cache`` header and its speed."""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web

from aire.core.types import Completion
from aire.gateway.requests import CHAT

CACHE_HEADER = "x-aire-cache"


def response_of(completion: Completion, api: str, served_model: str, request_id: str) -> dict[str, Any]:
    """The non-streamed body an upstream would have sent for this (streamed) answer."""
    usage = {
        "prompt_tokens": completion.prompt_tokens or 0,
        "completion_tokens": completion.output_tokens or 0,
        "total_tokens": (completion.prompt_tokens or 0) + (completion.output_tokens or 0),
    }
    if api == CHAT:
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": completion.text}}
        kind = "chat.completion"
    else:
        choice, kind = {"index": 0, "text": completion.text, "logprobs": None}, "text_completion"
    choice["finish_reason"] = completion.finish_reason
    return {"id": request_id, "object": kind, "created": int(time.time()), "model": served_model,
            "choices": [choice], "usage": usage}  # fmt: skip


def text_of(response: dict[str, Any], api: str) -> str:
    choice = (response.get("choices") or [{}])[0]
    if api == CHAT:
        return str((choice.get("message") or {}).get("content") or "")
    return str(choice.get("text") or "")


async def answer_hit(
    request: web.Request, response: dict[str, Any], api: str, body: dict[str, Any], headers: dict[str, str]
) -> web.StreamResponse:
    """The cached ``response`` as this request wants it: a body, or a stream."""
    response = {**response, "created": int(time.time())}
    if not body.get("stream"):
        return web.Response(body=orjson.dumps(response), content_type="application/json", headers=headers)
    out = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await out.prepare(request)
    choice = (response.get("choices") or [{}])[0]
    base = {"id": response.get("id"), "created": response["created"], "model": response.get("model")}
    if api == CHAT:
        delta = {"role": "assistant", "content": text_of(response, api)}
        event = {**base, "object": "chat.completion.chunk",
                 "choices": [{"index": 0, "delta": delta, "finish_reason": choice.get("finish_reason")}]}  # fmt: skip
    else:
        event = {**base, "object": "text_completion",
                 "choices": [{"index": 0, "text": text_of(response, api),
                              "finish_reason": choice.get("finish_reason")}]}  # fmt: skip
    await out.write(b"data: " + orjson.dumps(event) + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {**base, "object": event["object"], "choices": [], "usage": response.get("usage")}
        await out.write(b"data: " + orjson.dumps(usage) + b"\n\n")
    await out.write(b"data: [DONE]\n\n")
    await out.write_eof()
    return out
