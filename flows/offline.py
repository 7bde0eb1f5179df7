"""``offline-benchmark``: run a versioned suite against one endpoint and record it in MLflow.

The flow only orders the engine's steps (``aire.run.offline``) and gives them Prefect's retries and
observability: one task per shard of samples, never one per sample (a task run costs ~10-40 ms).
Tasks take the run's id and a shard index; the plan, its client and writer stay in the engine, so
the suite's concurrency holds across all shards.
"""

from __future__ import annotations

import asyncio

from prefect import flow, task
from prefect.cache_policies import NONE

from aire.core.settings import get_settings
from aire.run import OfflineResult, finalise, prepare, run_shard, sending


# cache_policy=NONE: the same arguments mean different work as the store fills; a shard's idempotence
# comes from the store (samples stored by a failed attempt are not requested again on a retry).
@task(name="evaluate-shard", retries=2, retry_delay_seconds=2, cache_policy=NONE)
async def evaluate_shard(run_id: str, shard: int) -> int:
    return await run_shard(run_id, shard)


@task(name="record-run", retries=1, retry_delay_seconds=2, cache_policy=NONE)
def record_run(run_id: str) -> OfflineResult:
    return finalise(run_id)


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
    plan = await prepare(
        get_settings(),
        suite=suite,
        endpoint=endpoint,
        base_url=base_url,
        model=model,
        limit=limit,
        concurrency=concurrency,
        fresh=fresh,
    )
    async with sending(plan):
        await asyncio.gather(*(evaluate_shard(plan.id, i) for i in range(len(plan.shards()))))
    return record_run(plan.id)
