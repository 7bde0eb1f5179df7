"""The fake server's answers on the wire, shaped like vLLM's: error bodies, full JSON bodies, SSE events.

SSE lines are pre-formatted as strings (not built as dicts and dumped per chunk): the fake has to keep
up with concurrency 32 at 50 ms latency, about 600 requests/s, without being the bottleneck.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

DONE = "data: [DONE]\n\n"

_ERROR_TYPES: dict[int, str] = {
    400: "BadRequestError",
    401: "AuthenticationError",
    403: "PermissionDeniedError",
    404: "NotFoundError",
    429: "RateLimitError",
    500: "InternalServerError",
    503: "ServiceUnavailableError",
}


def error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "APIError")


def error(
    status: int, message: str, type_: str = "BadRequestError", headers: dict[str, str] | None = None
) -> web.Response:
    # vLLM's error body shape: {"error": {"message", "type", "param", "code"}}.
    body = {"error": {"message": message, "type": type_, "param": None, "code": status}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json", headers=headers)


def error_event(status: int, message: str) -> str:
    """An in-stream error report, then [DONE]: what vLLM sends when generation fails mid-stream."""
    err = {"error": {"object": "error", "message": message, "type": error_type(status), "code": status}}
    return f"data: {json.dumps(err)}\n\n{DONE}"


def logprobs_of(tokens: list[str], logprob: float | None, chat: bool) -> dict[str, Any] | None:
    """A choice's ``logprobs`` as vLLM shapes it (every token given ``logprob``); None when not asked."""
    if logprob is None:
        return None
    if chat:
        return {"content": [{"token": t, "logprob": logprob, "top_logprobs": []} for t in tokens]}
    offsets = [sum(len(x) for x in tokens[:i]) for i in range(len(tokens))]
    top = [{t: logprob} for t in tokens]
    return {"text_offset": offsets, "token_logprobs": [logprob] * len(tokens), "tokens": tokens, "top_logprobs": top}


def full_response(
    index: int, model: str, chat: bool, tokens: list[str], finish: str, usage: dict[str, int], logprob: float | None
) -> web.Response:
    """The non-streaming answer: one JSON body."""
    choice: dict[str, Any]
    text = "".join(tokens)
    if chat:
        choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
        choice["logprobs"] = logprobs_of(tokens, logprob, chat)
        body = {"id": f"chatcmpl-{index}", "object": "chat.completion"}
    else:
        choice = {"index": 0, "text": text, "logprobs": logprobs_of(tokens, logprob, chat), "finish_reason": finish}
        body = {"id": f"cmpl-{index}", "object": "text_completion"}
    body.update(created=int(time.time()), model=model, choices=[choice], usage=usage)
    return web.Response(text=json.dumps(body), content_type="application/json")


@dataclass(frozen=True)
class Stream:
    """A streamed answer as text: one event per token, then the tail (finish chunk, usage chunk, [DONE])."""

    events: list[str]
    tail: str
    object: str  # the chunks' "object" field, also used by the no_choices fault


def stream_events(
    index: int,
    model: str,
    chat: bool,
    tokens: list[str],
    finish: str,
    usage: dict[str, int] | None,
    logprob: float | None = None,
) -> Stream:
    """The SSE events of an answer; ``usage`` None leaves the usage chunk out; ``logprob`` (when the
    request asked for logprobs) is every token's, sent with it."""
    created = int(time.time())
    mj = json.dumps(model)
    lps = ["null"] * len(tokens) if logprob is None else [json.dumps(logprobs_of([t], logprob, chat)) for t in tokens]
    if chat:
        head = (
            f'data: {{"id":"chatcmpl-{index}","object":"chat.completion.chunk","created":{created},'
            f'"model":{mj},"choices":[{{"index":0,"delta":{{'
        )
        events = [
            head + '"content":' + json.dumps(t) + '},"logprobs":' + lp + ',"finish_reason":null}]}\n\n'
            for t, lp in zip(tokens, lps, strict=True)
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
        events = [
            head + json.dumps(t) + ',"logprobs":' + lp + ',"finish_reason":null}]}\n\n'
            for t, lp in zip(tokens, lps, strict=True)
        ]
        final = head + '"","logprobs":null,"finish_reason":' + json.dumps(finish) + "}]}\n\n"
        obj = "text_completion"
    tail = final
    if usage is not None:
        tail += (
            f'data: {{"id":"{index}","object":"{obj}","created":{created},"model":{mj},'
            f'"choices":[],"usage":{json.dumps(usage)}}}\n\n'
        )
    return Stream(events, tail + DONE, obj)
