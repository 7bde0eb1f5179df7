"""Replayed production traffic: logged prompts, one JSON object per line, with no reference answers.

The schema (one line = one request as production saw it)::

    {"id": "req-0001",                 # optional; default "line-<n>"; must be unique
     "prompt": "Q: 3+4=\\nA:",          # a completion prompt ...
     "messages": [{"role": "user", "content": "..."}],   # ... or a chat conversation (exactly one)
     "max_tokens": 16, "temperature": 0, "stop": ["\\n"],  # optional generation overrides
     "group": "session-17"}             # optional; anything else is kept but ignored

Without references, quality is compared by agreement with the champion's output, and latency.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aire.core.errors import InputError, from_validation
from aire.core.jsonl import read_jsonl
from aire.core.types import ChatMessage, GenerationParams, Sample

GENERATION_FIELDS = ("max_tokens", "temperature", "top_p", "stop", "seed")


class TrafficError(InputError):
    """A replayed-traffic file is invalid."""


@dataclass(frozen=True)
class Traffic:
    path: Path
    version: str  # sha256 of the file's bytes
    samples: list[Sample]
    generation: dict[str, GenerationParams]  # by sample id

    @property
    def name(self) -> str:
        return self.path.stem


def load_traffic(path: Path, defaults: GenerationParams, limit: int | None = None) -> Traffic:
    """Read and validate every line; the first bad one raises naming its line and field."""
    if not path.is_file():
        raise TrafficError("file not found", path=path)
    data = path.read_bytes()
    samples: list[Sample] = []
    generation: dict[str, GenerationParams] = {}
    seen: dict[str, int] = {}
    for lineno, row in read_jsonl(path, error=TrafficError, text=data.decode("utf-8", errors="replace")):
        if limit is not None and len(samples) >= limit:
            break
        sample = _sample(row, path, lineno)
        if sample.id in seen:
            raise TrafficError(
                f"duplicate id {sample.id!r} (first on line {seen[sample.id]})", path=path, line=lineno, field="id"
            )
        seen[sample.id] = lineno
        generation[sample.id] = _generation(row, defaults, path, lineno)
        samples.append(sample)
    if not samples:
        raise TrafficError("no requests in the file", path=path)
    return Traffic(path=path, version=hashlib.sha256(data).hexdigest(), samples=samples, generation=generation)


def _sample(row: dict[str, Any], path: Path, lineno: int) -> Sample:
    has_prompt, has_messages = "prompt" in row, "messages" in row
    if has_prompt == has_messages:
        raise TrafficError("give exactly one of 'prompt' or 'messages'", path=path, line=lineno, field="prompt")
    prompt: str | list[ChatMessage]
    if has_prompt:
        if not isinstance(row["prompt"], str) or not row["prompt"]:
            raise TrafficError("must be a non-empty string", path=path, line=lineno, field="prompt")
        prompt = row["prompt"]
    else:
        msgs = row["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise TrafficError("must be a non-empty list", path=path, line=lineno, field="messages")
        prompt = []
        for i, m in enumerate(msgs):
            try:
                prompt.append(ChatMessage.model_validate(m))
            except ValidationError as exc:
                raise from_validation(exc, TrafficError, path=path, line=lineno, prefix=("messages", i)) from None
    rid = row.get("id", f"line-{lineno}")
    if not isinstance(rid, str | int) or isinstance(rid, bool) or str(rid) == "":
        raise TrafficError("must be a non-empty string or integer", path=path, line=lineno, field="id")
    group = row.get("group")
    return Sample(
        id=str(rid),
        prompt=prompt,
        fields=row,
        slices={} if group is None else {"group": str(group)},
    )


def _generation(row: dict[str, Any], defaults: GenerationParams, path: Path, lineno: int) -> GenerationParams:
    overrides = {k: row[k] for k in GENERATION_FIELDS if k in row}
    if not overrides:
        return defaults
    try:
        return GenerationParams.model_validate({**defaults.model_dump(), **overrides})
    except ValidationError as exc:
        raise from_validation(exc, TrafficError, path=path, line=lineno) from None
