"""Scripted failures of the fake server: what can go wrong with one request, and plans that choose when."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal["status", "hang", "stall", "disconnect", "malformed", "no_choices", "error_chunk"]
# The kinds that strike after the stream has started (the others before any header).
MIDSTREAM: frozenset[str] = frozenset({"stall", "disconnect", "malformed", "no_choices", "error_chunk"})


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
