"""One sample end to end: generate with the endpoint's client, score with the bound evaluators, hand
the row to the store's writer. Offline benchmarks, both arms of a shadow comparison and the monitor's
canary all run their samples through :func:`run_sample`; they differ only in which samples they send
and what they do with the stored rows.

A :class:`Target` is what one store run sends to: the client (built from the settings, the only
place a run builds one), the generation parameters of each sample, the evaluators and the writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, TypeVar

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient, request_fingerprint
from aire.core.settings import Settings
from aire.core.types import Completion, GenerationParams, Sample, Score
from aire.judges import judging
from aire.ops.processes import cpu_affinity

if TYPE_CHECKING:  # sqlalchemy loads with the store, when a run opens one
    from aire.store.store import Store
    from aire.store.writer import ResultWriter

T = TypeVar("T")


class Scorer(Protocol):
    """A bound evaluator (``evaluators.BoundEvaluator``): it runs sync or async evaluator functions and
    never raises; NaN means "could not score" (a failed request, an evaluator error)."""

    async def score(self, sample: Sample, completion: Completion) -> Score: ...


@dataclass(frozen=True)
class Target:
    """Where one store run's samples go and how their results are kept."""

    client: EndpointClient
    generation: Callable[[Sample], GenerationParams]
    evaluators: Mapping[str, Scorer]
    writer: ResultWriter


async def run_sample(target: Target, sample: Sample) -> Completion:
    """Request, score and store one sample; returns its completion.

    A request that fails for good is not raised: it is a row with its error (and NaN scores), so a
    resumed run requests it again and the summary counts it.
    """
    from aire.store.writer import SampleResult

    completion = await target.client.generate(sample, target.generation(sample))
    scores = {key: await ev.score(sample, completion) for key, ev in target.evaluators.items()}
    target.writer.put(SampleResult(sample=sample, completion=completion, scores=scores))
    return completion


async def run_all(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await everything at once (the client bounds concurrency). When one fails the rest are cancelled
    before the error propagates, so none writes after its writer closed; what was stored stays."""
    tasks = [asyncio.ensure_future(w) for w in work]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


@asynccontextmanager
async def open_target(
    settings: Settings,
    store: Store,
    run_id: str,
    endpoint: EndpointConfig,
    generation: Callable[[Sample], GenerationParams],
    evaluators: Mapping[str, Scorer],
    *,
    concurrency: int | None = None,
) -> AsyncIterator[Target]:
    """The client and the run's writer, open for the block; on exit every row put is committed.

    The store records each row's request fingerprint (what was sent where) next to it, and is the
    cache of the judges the evaluators ask (aire.judges). With
    ``settings.cpu_cores`` the block runs on those cores only (off a local CPU vLLM server's).
    """
    with cpu_affinity(settings.cpu_cores):
        async with (
            judging(settings, store),
            EndpointClient.from_settings(settings, endpoint, concurrency=concurrency) as client,
        ):
            with store.writer(run_id, lambda s: request_fingerprint(endpoint, s, generation(s))) as writer:
                yield Target(client=client, generation=generation, evaluators=evaluators, writer=writer)
