"""``offline-benchmark``: run a versioned suite against one endpoint and record it in MLflow.

The flow only orders the engine's steps (``aire.run.offline``) and gives them Prefect's retries and
observability: one task per shard of samples, never one per sample (a task run costs ~10-40 ms).
Shard tasks share one HTTP client, so the suite's concurrency holds across all of them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.utilities.annotations import quote

from aire.client.endpoints import EndpointClient
from aire.core.progress import reporter
from aire.core.settings import get_settings
from aire.core.types import Sample
from aire.run.offline import OfflinePlan, OfflineResult, finalise, fingerprinter, prepare, run_samples


# cache_policy=NONE: a shard's inputs are live objects (client, writer); its idempotence comes from
# the store (completed samples are skipped on a retry), not from Prefect's result cache.
@task(name="evaluate-shard", retries=2, retry_delay_seconds=2, cache_policy=NONE)
async def evaluate_shard(plan: OfflinePlan, client: EndpointClient, writer: Any, shard: list[Sample]) -> int:
    # On a task retry, samples stored by the failed attempt are not requested again.
    done = plan.store.completed_ids(plan.run_id)
    return await run_samples(plan, client, writer, [s for s in shard if s.id not in done])


@task(name="record-run", retries=1, retry_delay_seconds=2, cache_policy=NONE)
def record_run(plan: OfflinePlan, n_requested: int, execution_s: float) -> OfflineResult:
    return finalise(plan, n_requested=n_requested, execution_s=execution_s)


@flow(name="offline-benchmark", log_prints=True)
async def offline_benchmark(
    suite: str,
    endpoint: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    fresh: bool = False,
) -> OfflineResult:
    settings = get_settings()
    plan = await prepare(
        settings,
        suite=suite,
        endpoint=endpoint,
        base_url=base_url,
        model=model,
        limit=limit,
        concurrency=concurrency,
        fresh=fresh,
    )
    n_pending = len(plan.pending)
    progress = reporter()
    progress.start(
        total=len(plan.suite.samples),
        completed=len(plan.suite.samples) - n_pending,
        description=f"{plan.suite.name} @ {plan.endpoint.name}",
    )
    started = time.perf_counter()
    try:
        async with EndpointClient(
            plan.endpoint,
            concurrency=plan.concurrency,
            timeout_s=settings.request_timeout_s,
            max_attempts=settings.max_attempts,
        ) as client:
            with plan.store.writer(plan.run_id, fingerprinter(plan)) as writer:
                # quote(): Prefect would otherwise walk every sample of the plan looking for futures,
                # once per task call, which cost more CPU than the requests themselves.
                await asyncio.gather(
                    *(
                        evaluate_shard(quote(plan), quote(client), quote(writer), quote(shard))
                        for shard in plan.shards()
                    )
                )
    finally:
        progress.stop()
    return record_run(quote(plan), n_pending, time.perf_counter() - started)
