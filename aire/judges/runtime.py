"""The judges a run has open, reachable by endpoint name from registered evaluators.

Evaluators are pure functions registered by name; a judged one names its judge (an endpoint of
aire.yaml) in its options and asks ``await current_judge(name)`` while it scores. The run opens the
pool around its request phase (``aire.run.executor.open_target``): clients are made on first use in
the run's event loop and closed with it; the run's store is the judges' cache. A process-wide slot,
like the progress reporter, because evaluators run inside Prefect tasks whose arguments stay plain.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from aire.client.config import load_config
from aire.client.endpoints import EndpointClient
from aire.core.errors import ConfigError
from aire.judges.judge import Judge, JudgeCache

if TYPE_CHECKING:
    from aire.core.settings import Settings


class JudgePool:
    def __init__(self, settings: Settings, cache: JudgeCache | None) -> None:
        self.settings = settings
        self.cache = cache
        self._judges: dict[str, Judge] = {}
        self._lock = asyncio.Lock()

    async def get(self, name: str) -> Judge:
        if name in self._judges:
            return self._judges[name]
        async with self._lock:
            if name not in self._judges:
                endpoint = load_config(self.settings.config, self.settings.models_dir).endpoint(name)
                client = EndpointClient.from_settings(self.settings, endpoint)
                await client.__aenter__()
                self._judges[name] = Judge(endpoint, client, self.cache)
        return self._judges[name]

    async def aclose(self) -> None:
        for judge in self._judges.values():
            await judge.client.aclose()
        self._judges.clear()


_current: list[JudgePool] = []


@asynccontextmanager
async def judging(settings: Settings, cache: JudgeCache | None) -> AsyncIterator[JudgePool]:
    """Open a pool for the block (nested blocks, e.g. the two arms of a shadow run, share the outer one)."""
    if _current:
        yield _current[-1]
        return
    pool = JudgePool(settings, cache)
    _current.append(pool)
    try:
        yield pool
    finally:
        _current.remove(pool)
        await pool.aclose()


async def current_judge(name: str) -> Judge:
    """The judge called ``name`` of the run in progress."""
    if not _current:
        raise ConfigError(f"judge '{name}' asked outside a run: no judges are open")
    return await _current[-1].get(name)
