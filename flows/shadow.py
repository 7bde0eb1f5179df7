"""``shadow-comparison``: the same inputs to champion and challenger, then the promotion gate.

Thin on purpose: the engine (``aire.run``) does the work, the loop over batches and looks included;
the flow gives its steps Prefect's retries and observability. Tasks take the plan's id and indices:
the plan, its clients and writers stay in the engine. Fixed-n mode sends everything in shards;
sequential mode sends a batch, looks at the always-valid verdict (task ``look``), and stops as soon
as it is settled.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NONE

from aire.core.settings import get_settings
from aire.run import ShadowResult, finalise_shadow, look, prepare_shadow, send_in_looks, send_shard, sending_pairs
from aire.stats.sequential import Look


# cache_policy=NONE: the same arguments mean different work as the store fills; idempotence comes
# from the store (inputs an arm answered are not sent to it again on a retry).
@task(name="compare-shard", retries=2, retry_delay_seconds=2, cache_policy=NONE)
async def compare_shard(plan_id: str, batch: int, shard: int) -> int:
    return await send_shard(plan_id, batch, shard)


@task(name="look", cache_policy=NONE)
async def look_task(plan_id: str) -> Look:
    return await look(plan_id)


@task(name="decide-and-record", retries=1, retry_delay_seconds=2, cache_policy=NONE)
async def decide_and_record(plan_id: str, n_requested: int, looks: list[Look]) -> ShadowResult:
    return await finalise_shadow(plan_id, n_requested=n_requested, looks=looks)


@flow(name="shadow-comparison", log_prints=True)
async def shadow_comparison(
    champion: str = "",
    challenger: str = "",
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
    mirrored_since: datetime | None = None,
    route: str | None = None,
    pairwise: str | None = None,
    family: int = 1,
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
        mirrored_since=mirrored_since,
        route=route,
        pairwise=pairwise,
        family=family,
    )
    async with sending_pairs(plan):
        n_requested, looks = await send_in_looks(plan.id, warmup=warmup, send=compare_shard, look_at=look_task)
    return await decide_and_record(plan.id, n_requested, looks)
