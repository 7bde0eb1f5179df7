"""``shadow-comparison``: the same inputs to champion and challenger, then the promotion gate.

Thin on purpose: the engine (``aire.run.shadow``) does the work; the flow gives it Prefect's retries and
observability. Fixed-n mode sends everything in shards; sequential mode sends a batch, looks at the
always-valid verdict (task ``look``), and stops as soon as it is settled.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.utilities.annotations import quote

from aire.client.endpoints import EndpointClient
from aire.core.progress import reporter
from aire.core.settings import get_settings
from aire.core.types import Sample
from aire.run.shadow import (
    ARMS,
    ShadowPlan,
    ShadowResult,
    finalise_shadow,
    fingerprinters,
    look,
    prepare_shadow,
    run_pairs,
    settled,
    warm_up,
)
from aire.stats.sequential import Look


# cache_policy=NONE: inputs are live objects; idempotence comes from the store (answered inputs are
# skipped on a retry), not from Prefect's result cache.
@task(name="compare-shard", retries=2, retry_delay_seconds=2, cache_policy=NONE)
async def compare_shard(
    plan: ShadowPlan, clients: dict[str, EndpointClient], writers: dict[str, Any], shard: list[Sample]
) -> int:
    return await run_pairs(plan, clients, writers, shard)


@task(name="look", cache_policy=NONE)
async def look_task(plan: ShadowPlan) -> Look:
    return await look(plan)


@task(name="decide-and-record", retries=1, retry_delay_seconds=2, cache_policy=NONE)
async def decide_and_record(plan: ShadowPlan, n_requested: int, looks: list[Look]) -> ShadowResult:
    return await finalise_shadow(plan, n_requested=n_requested, looks=looks)


@flow(name="shadow-comparison", log_prints=True)
async def shadow_comparison(
    champion: str,
    challenger: str,
    policy: str | None = None,
    suite: str | None = None,
    traffic: str | None = None,
    sequential: bool = False,
    batch: int = 50,
    max_samples: int | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    seed: int = 0,
    fresh: bool = False,
    out_dir: str | None = None,
    registered_model: str | None = None,
    warmup: int | None = None,
) -> ShadowResult:
    settings = get_settings()
    plan = await prepare_shadow(
        settings,
        policy=Path(policy) if policy else settings.gate_policy,
        champion=champion,
        challenger=challenger,
        suite=suite,
        traffic=traffic,
        limit=limit,
        concurrency=concurrency,
        sequential=sequential,
        batch=batch,
        max_samples=max_samples,
        seed=seed,
        fresh=fresh,
        out_dir=out_dir,
        registered_model=registered_model,
    )
    progress = reporter()
    pending = plan.pending()
    progress.start(
        total=plan.cap,
        completed=plan.cap - len(pending),
        description=f"{plan.endpoints['challenger'].name} vs {plan.endpoints['champion'].name}",
    )
    n_requested = 0
    looks: list[Look] = []
    try:
        clients = {
            arm: EndpointClient(
                plan.endpoints[arm],
                concurrency=plan.concurrency,
                timeout_s=settings.request_timeout_s,
                max_attempts=settings.max_attempts,
            )
            for arm in ARMS
        }
        fps = fingerprinters(plan)
        async with clients["champion"], clients["challenger"]:
            with (
                plan.store.writer(plan.runs["champion"], fps["champion"]) as w_champion,
                plan.store.writer(plan.runs["challenger"], fps["challenger"]) as w_challenger,
            ):
                writers = {"champion": w_champion, "challenger": w_challenger}
                if plan.pending():
                    await warm_up(plan, clients, warmup if warmup is not None else 2 * plan.concurrency)
                if plan.sequential and plan.resumed:
                    # Resumed: what is stored may already settle it (a crash after the deciding look).
                    looks.append(await look_task(quote(plan)))
                for batch_samples in [] if looks and settled(looks[-1].verdict) else plan.batches():
                    # quote(): Prefect would otherwise walk every sample of the plan looking for futures.
                    sent = await asyncio.gather(
                        *(
                            compare_shard(quote(plan), quote(clients), quote(writers), quote(shard))
                            for shard in plan.shards(batch_samples)
                        )
                    )
                    n_requested += sum(sent)
                    if plan.sequential:
                        w_champion.flush()
                        w_challenger.flush()
                        looks.append(await look_task(quote(plan)))
                        if settled(looks[-1].verdict):
                            break
    finally:
        progress.stop()
    return await decide_and_record(quote(plan), n_requested, looks)
