"""What a client may send the gateway, checked before anything goes upstream, and the OpenAI-style
errors it gets back (``{"error": {"message", "type", "param", "code"}}``) when it is wrong."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aire.core.errors import field_path

COMPLETIONS, CHAT = "completions", "chat"


class _Body(BaseModel):
    # Everything else (top_p, seed, logprobs, response_format, ...) is the upstream's to judge: passed on.
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    n: int | None = Field(None, ge=1, le=128)


class CompletionBody(_Body):
    prompt: str | list[str] | list[int] | list[list[int]]


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[Any] | None = None


class ChatBody(_Body):
    messages: list[Message] = Field(min_length=1)


class BadRequest(Exception):
    """A request the gateway refuses; ``response()`` is the OpenAI-style error."""

    def __init__(self, status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:  # fmt: skip
        super().__init__(message)
        self.status, self.message, self.kind, self.param, self.code = status, message, kind, param, code
        self.headers = headers or {}

    def response(self) -> web.Response:
        return error_response(self.status, self.message, kind=self.kind, param=self.param, code=self.code,
                              headers=self.headers)  # fmt: skip


def error_body(message: str, *, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def error_response(
    status: int,
    message: str,
    *,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    return web.Response(
        status=status,
        body=error_body(message, kind=kind, param=param, code=code),
        content_type="application/json",
        headers=headers,
    )


def parse(raw: bytes, api: str) -> dict[str, Any]:
    """The request body as a dict, checked; a ``BadRequest`` naming the field otherwise."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, "request body must be a JSON object")
    try:
        (ChatBody if api == CHAT else CompletionBody).model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        param = field_path(_in_body(body, err["loc"])) or None
        raise BadRequest(400, f"{param}: {err['msg']}" if param else err["msg"], param=param) from None
    return body


def _in_body(body: Any, loc: tuple[str | int, ...]) -> list[str | int]:
    """The part of pydantic's error location that is a path into the client's JSON: a union's member
    names (``str``, ``list[str]``) are pydantic's, not the client's; a missing field is kept."""
    path: list[str | int] = []
    node = body
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str):
            path.append(part)
            if part not in node:
                break
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int):
            path.append(part)
            node = node[part] if part < len(node) else None
        # else: a union member's name; skipped
    return path


def prompt_text(body: dict[str, Any], api: str) -> str:
    """What the traffic log keeps as the prompt: the text, or the chat messages as JSON."""
    if api == CHAT:
        return orjson.dumps(body.get("messages", [])).decode()
    prompt = body.get("prompt", "")
    return prompt if isinstance(prompt, str) else orjson.dumps(prompt).decode()


PARAMS_LEFT_OUT = frozenset({"model", "prompt", "messages", "stream", "stream_options", "user"})


def params_of(body: dict[str, Any]) -> dict[str, Any]:
    """The generation settings of a request, as the log and the mirrored comparison keep them."""
    return {k: v for k, v in body.items() if k not in PARAMS_LEFT_OUT}
