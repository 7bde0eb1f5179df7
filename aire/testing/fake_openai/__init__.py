"""A fake OpenAI-compatible server (aiohttp.web) for unit tests and benchmarks.

It speaks the subset of the OpenAI API that aire uses, shaped like vLLM's answers:

- ``GET /v1/models``, ``GET /health``
- ``POST /v1/completions`` and ``POST /v1/chat/completions``, streaming (SSE, one chunk per token, a final
  chunk carrying ``finish_reason``, a usage chunk when ``stream_options.include_usage`` is set, then
  ``data: [DONE]``) and non-streaming.
- ``GET /stats`` (request counters, in flight, faults injected) and ``POST /reset``.

One token is one character, like the tiny char-level models aire builds for vLLM on CPU. The default
answer is the arithmetic result of the last ``a op b =`` in the prompt (``"Q: 3+4=\\nA:"`` -> ``" 7"``),
otherwise ``"ok"`` (``answers``).

Faults are scripted per request: a mapping ``{request index: Fault}`` or any callable
``(RequestInfo) -> Fault | None`` (see :func:`fail_first`). Errors can be HTTP statuses (with
``Retry-After``), a hang before the headers, a stall mid-stream, a dropped connection mid-stream, a
malformed chunk, a chunk without ``choices`` and an in-stream ``{"error": ...}`` chunk (``faults``).

In process (``server``)::

    async with FakeOpenAI(latency_s=0.05) as srv:
        ...  # srv.base_url == "http://127.0.0.1:<port>/v1"

As a separate process (``__main__``; prints its base URL on one line, then serves until SIGTERM/SIGINT)::

    python -m aire.testing.fake_openai --port 8199 --latency-ms 50 [--token-delay-ms 2]
"""

from __future__ import annotations

from aire.testing.fake_openai.answers import arithmetic_answer, wrong_answer
from aire.testing.fake_openai.faults import Fault, FaultKind, FaultPlan, RequestInfo, fail_first
from aire.testing.fake_openai.server import FakeOpenAI

__all__ = [
    "FakeOpenAI",
    "Fault",
    "FaultKind",
    "FaultPlan",
    "RequestInfo",
    "arithmetic_answer",
    "fail_first",
    "wrong_answer",
]
