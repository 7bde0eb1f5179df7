"""One judge: an OpenAI-compatible endpoint asked for a reply that validates against a pydantic schema.

The request carries the schema as ``response_format`` (JSON schema), so a server with structured
outputs (vLLM) can only answer in its shape; the reply is still validated here, because not every
server enforces it. A reply that does not validate is not a score: it comes back with the reason,
and the evaluator turns it into NaN (counted apart, never zero).

Replies are cached in the store by (judge identity, prompt hash): the identity hashes the endpoint,
its served model, its weights digest and the prompt template, so a changed judge or template is a
new judge; the prompt hash covers the messages, the schema and the generation settings. A resumed or
repeated run, or a second metric asking the same thing, pays once. Only valid replies are kept.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient, canonical_json
from aire.core.types import ChatMessage, GenerationParams, Sample

M = TypeVar("M", bound=BaseModel)
# How a pairwise judgement that named the same position in both orders is explained (evaluators/pairwise.py):
# the run counts such pairs as the judge's position bias.
POSITION_BIAS = "position bias"
# The temperature of a repeated judgement (``judge_repeats`` > 1): at 0 a judge repeats itself, so its
# repeats would measure nothing; at 1 each repeat is a draw from the judge's own distribution.
REPEAT_TEMPERATURE = 1.0


class JudgeCache(Protocol):
    """Where replies are kept (``aire.store.Store`` is one)."""

    def judge_reply(self, judge_id: str, prompt_hash: str) -> str | None: ...

    def put_judge_reply(self, judge_id: str, prompt_hash: str, reply: str) -> None: ...


@dataclass(frozen=True)
class JudgeReply(Generic[M]):
    """What the judge said: the validated reply, or why there is none."""

    value: M | None
    raw: str = ""
    error: str | None = None
    cached: bool = False


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def judge_identity(endpoint: EndpointConfig, template: str) -> dict[str, Any]:
    """What makes a judge this judge, for provenance and the cache key: never the key, only names."""
    return {**endpoint.identity(), "template_sha256": _sha256(template.encode())}


def judge_id(endpoint: EndpointConfig, template: str) -> str:
    """The judge identity as one hash: the cache's key and what a calibration is recorded under."""
    return _sha256(canonical_json(judge_identity(endpoint, template)))


class Judge:
    """One endpoint as a judge. ``client`` must be open (``async with``) while the judge is asked."""

    def __init__(
        self,
        endpoint: EndpointConfig,
        client: EndpointClient,
        cache: JudgeCache | None = None,
        *,
        max_tokens: int = 256,
    ) -> None:
        self.endpoint = endpoint
        self.client = client
        self.cache = cache
        self.max_tokens = max_tokens
        self.calls = 0  # requests actually sent (cache misses)
        # Per template and per schema, not per call: the identity reads the weights manifest from disk,
        # and a pydantic JSON schema is rebuilt each time it is asked for.
        self._ids: dict[str, str] = {}
        self._formats: dict[type[BaseModel], dict[str, Any]] = {}

    def identity(self, template: str) -> dict[str, Any]:
        return judge_identity(self.endpoint, template)

    def judge_id(self, template: str) -> str:
        if template not in self._ids:
            self._ids[template] = judge_id(self.endpoint, template)
        return self._ids[template]

    def _response_format(self, schema: type[BaseModel]) -> dict[str, Any]:
        if schema not in self._formats:
            self._formats[schema] = {
                "type": "json_schema",
                "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema(), "strict": True},
            }
        return self._formats[schema]

    async def ask(
        self,
        messages: list[ChatMessage],
        schema: type[M],
        *,
        template: str,
        max_tokens: int | None = None,
        repeat: int | None = None,
    ) -> JudgeReply[M]:
        """Ask once (or read the cached reply); ``template`` is the prompt template the messages came from.

        ``max_tokens`` bounds the reply (default: the judge's); a reply cut off there does not validate.
        ``repeat`` (0, 1, ...): one of several judgements of the same prompt, sampled at
        ``REPEAT_TEMPERATURE`` with the repeat as its seed. The seed is part of the prompt hash, so each
        repeat has its own cache entry (not the first repeat's reply r times) and a rerun reads them all
        back; without ``repeat`` the request is greedy and its cache key is what it always was.
        """
        params = GenerationParams(
            temperature=0.0 if repeat is None else REPEAT_TEMPERATURE,
            seed=repeat,
            max_tokens=max_tokens or self.max_tokens,
            response_format=self._response_format(schema),
        )
        judge_id = self.judge_id(template)
        prompt_hash = _sha256(
            canonical_json(
                {
                    "messages": [m.model_dump() for m in messages],
                    "params": params.model_dump(),
                }
            )
        )
        if self.cache is not None:
            stored = self.cache.judge_reply(judge_id, prompt_hash)
            if stored is not None:
                reply = _parse(stored, schema)
                if reply.value is not None:
                    return replace(reply, cached=True)
        self.calls += 1
        completion = await self.client.generate(Sample(id=prompt_hash, prompt=messages), params)
        if completion.error is not None:
            return JudgeReply(None, "", f"judge request failed: {completion.error.type}: {completion.error.message}")
        reply = _parse(completion.text, schema)
        if reply.value is not None and self.cache is not None:
            self.cache.put_judge_reply(judge_id, prompt_hash, completion.text)
        return reply


def _parse(text: str, schema: type[M]) -> JudgeReply[M]:
    try:
        return JudgeReply(schema.model_validate_json(text), text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "reply"
        clipped = text if len(text) <= 80 else text[:80] + "…"
        return JudgeReply(None, text, f"unparseable judge reply ({where}: {first['msg']}): {clipped!r}")
