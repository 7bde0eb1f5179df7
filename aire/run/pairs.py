"""Pairing: each input to both arms at once through the executor, and what is stored aligned by sample id.

sending_pairs()  both arms' clients and writers open (and the progress bar) while the batches are sent
send_shard()     one shard of one batch, by plan id and indices (what a Prefect task runs)
run_pairs()      each input to every arm that has not answered it yet; scored and stored per arm
warm_up()        unrecorded requests first, so a cold replica's compile time is not judged as latency
paired_data()    both arms' stored rows, aligned: the evidence a look and the final decision read
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

import numpy as np

from aire.core.progress import reporter
from aire.core.repeats import sample_of
from aire.core.types import Completion, Sample
from aire.gate.policy import Counts
from aire.judges import POSITION_BIAS, judging
from aire.run import active
from aire.run.executor import open_target, run_all, run_sample
from aire.run.shadow import ARMS, ShadowPlan

if TYPE_CHECKING:
    from aire.gate.evidence import PairedData
    from aire.store.store import ResultRow


@asynccontextmanager
async def sending_pairs(plan: ShadowPlan) -> AsyncIterator[None]:
    """Both arms' clients and writers, open while the batches run; every row is committed on exit."""
    progress = reporter()
    progress.start(
        total=plan.cap,
        completed=plan.cap - len(plan.pending()),
        description=f"{plan.endpoints['challenger'].name} vs {plan.endpoints['champion'].name}",
    )
    try:
        async with AsyncExitStack() as stack:
            for arm in ARMS:
                plan.targets[arm] = await stack.enter_async_context(
                    open_target(
                        plan.settings,
                        plan.store,
                        plan.runs[arm],
                        plan.endpoints[arm],
                        lambda s: plan.generation[s.id],
                        plan.evaluators,
                        concurrency=plan.concurrency,
                    )
                )
            yield
    finally:
        plan.targets.clear()
        progress.stop()


async def send_shard(plan_id: str, batch: int, shard: int) -> int:
    """Shard ``shard`` of batch ``batch`` of a plan that is sending; returns the requests sent."""
    plan = active.get(plan_id, ShadowPlan)
    return await run_pairs(plan, plan.schedule[batch][shard])


async def run_pairs(plan: ShadowPlan, samples: list[Sample]) -> int:
    """Send each input to every arm that has not answered it yet, both at once; returns requests sent.

    An input an arm answered (in an earlier attempt, or before a crash) is not sent to it again.
    """
    if not plan.targets:
        raise RuntimeError(f"comparison {plan.id} is not sending: open it with `async with sending_pairs(plan)`")
    progress = reporter()
    sent = 0

    async def arm_request(arm: str, sample: Sample) -> None:
        nonlocal sent
        completion = await run_sample(plan.targets[arm], sample)
        sent += 1
        if completion.ok:
            plan.done[arm].add(sample.id)

    async def pair(sample: Sample) -> None:
        arms = [arm for arm in ARMS if sample.id not in plan.done[arm]]
        await asyncio.gather(*(arm_request(arm, sample) for arm in arms))
        progress.advance(failed=any(sample.id not in plan.done[arm] for arm in ARMS))

    await run_all(pair(s) for s in samples)
    return sent


async def warm_up(plan: ShadowPlan, n: int) -> None:
    """Send ``n`` unrecorded requests to each arm at full concurrency first. A freshly started vLLM
    compiles kernels for each new batch shape: measured on the CPU build, a cold replica's TTFT p95
    was 1.6 s against ~0.3 s warm, which would fail a latency rule on start-up cost, not on the model."""
    if n <= 0 or not plan.samples:
        return
    samples = [plan.samples[i % len(plan.samples)] for i in range(n)]
    clients = {arm: plan.targets[arm].client for arm in ARMS}
    await asyncio.gather(*(clients[arm].generate(s, plan.generation[s.id]) for arm in ARMS for s in samples))


def arm_rows(plan: ShadowPlan) -> dict[str, list[ResultRow]]:
    return {arm: plan.store.results(plan.runs[arm]) for arm in ARMS}


async def paired_data(plan: ShadowPlan, stored: dict[str, list[ResultRow]] | None = None) -> PairedData:
    """Both arms' stored rows (read now unless given), aligned by sample id in send order."""
    from aire.gate.evidence import LATENCY_SLIS, PairedData

    rows = {arm: {r.sample_id: r for r in rs} for arm, rs in (stored or arm_rows(plan)).items()}
    order = [s.id for s in plan.samples if s.id in rows["champion"] or s.id in rows["challenger"]]
    by_id = {s.id: s for s in plan.samples}

    def ok(arm: str, sid: str) -> ResultRow | None:
        r = rows[arm].get(sid)
        return r if r is not None and r.error_type is None else None

    paired = [sid for sid in order if ok("champion", sid) and ok("challenger", sid)]
    only = {arm: [sid for sid in order if ok(arm, sid) and sid not in paired] for arm in ARMS}
    n_errors = sum(1 for arm in ARMS for r in rows[arm].values() if r.error_type is not None)
    counts = Counts(n_pairs=len(paired), n_errors=n_errors, n_unpaired=len(only["champion"]) + len(only["challenger"]))

    def scores(arm: str, ids: list[str], key: str) -> np.ndarray:
        return np.array([rows[arm][i].scores.get(key, math.nan) for i in ids], dtype=float)

    quality = {
        f"{k}/mean": (
            scores("champion", paired, k),
            scores("challenger", paired, k),
            plan.higher_is_better[f"{k}/mean"],
        )
        for k in plan.evaluators
    }
    unpaired_quality = {
        f"{k}/mean": (scores("champion", only["champion"], k), scores("challenger", only["challenger"], k))
        for k in plan.evaluators
    }
    agreement: dict[str, np.ndarray] = {}
    position_bias: dict[str, float] = {}
    # A pairwise judge asks while the comparison is read: the run's judges (and their cache) are
    # opened for it; the judge's client bounds how many calls are in flight.
    async with judging(plan.settings, plan.store):
        for key, ev in plan.agreement.items():

            def against_champion(sid: str) -> tuple[Sample, Completion]:
                sample = by_id[sid]
                pair = Sample(id=sid, prompt=sample.prompt, reference=rows["champion"][sid].text, fields=sample.fields)
                return pair, Completion(text=rows["challenger"][sid].text)

            scored = await asyncio.gather(*(ev.score(*against_champion(sid)) for sid in paired))
            agreement[f"{key}/mean"] = np.array([s.value for s in scored], dtype=float)
            biased = [bool(s.explanation and s.explanation.startswith(POSITION_BIAS)) for s in scored]
            if any(biased):
                position_bias[key] = sum(biased) / len(biased)

    def latency(arm: str, attr: str) -> np.ndarray:
        vals = [getattr(rows[arm][i], attr) for i in paired]
        return np.array([math.nan if v is None else v * 1000.0 for v in vals], dtype=float)

    lat = {sli: (latency("champion", sli[:-3] + "_s"), latency("challenger", sli[:-3] + "_s")) for sli in LATENCY_SLIS}
    groups = None
    if plan.group_field:
        groups = np.array(
            [str(by_id[i].fields.get(plan.group_field, by_id[i].slices.get("group", ""))) for i in paired]
        )
    elif plan.repeats > 1:  # a sample's repeats are one cluster (a group field, coarser, holds them too)
        groups = np.array([sample_of(i) for i in paired])
    fields = sorted({f for i in paired for f in by_id[i].slices})
    slices = {f: np.array([by_id[i].slices.get(f, "") for i in paired]) for f in fields}
    return PairedData(
        ids=paired,
        slices=slices,
        quality=quality,
        agreement=agreement,
        latency=lat,
        groups=groups,
        counts=counts,
        unpaired_quality=unpaired_quality,
        position_bias=position_bias,
    )
