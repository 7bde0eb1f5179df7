"""Test doubles shipped with aire: an in-process fake OpenAI-compatible server.

They live in the package (not under ``tests/``) because benchmarks and integration tests start the
fake server as a separate process with ``python -m aire.testing.fake_openai``. Names are imported
lazily, so importing ``aire.testing`` for one helper does not start up aiohttp's web server code.
"""

from __future__ import annotations

from typing import Any

__all__ = ["FakeOpenAI", "Fault", "FaultPlan", "RequestInfo", "arithmetic_answer", "fail_first"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from aire.testing import fake_openai

        return getattr(fake_openai, name)
    raise AttributeError(f"module 'aire.testing' has no attribute {name!r}")
