"""The comparison a sequential look decides on: an always-valid sequence at every interim look, and
at the final look (the cap, fixed before the first request) its intersection with a fixed-n interval.

Alpha is split between the two (``aire.sequential.split_alpha``): the sequence spends
``SEQUENCE_SHARE`` of it over all looks together, the fixed-n interval the rest, once. By a union
bound the probability that either misses the truth is at most alpha, so the intersection keeps the
design's level. Without the final look a sequence run to the cap would PASS an equally good
challenger far less often than the fixed-n design it replaces (it is ~1.5x wider at the cap).

Latency rules are judged at the stop from fixed-n intervals at the policy's own alpha, as before:
the stopping time depends on quality evidence only.

The loop over batches and looks (:func:`send_in_looks`) is here too: the flow hands it its tasks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aire.gate.evidence import Comparison, PairedData, compare
from aire.gate.policy import Interval, MetricEvidence, Verdict, decide
from aire.run import active
from aire.run.pairs import paired_data, send_shard, warm_up
from aire.run.shadow import ShadowPlan
from aire.stats.sequential import Look, intersect, split_alpha


def _both(seq: Interval | None, fixed: Interval | None) -> Interval | None:
    if seq is None or fixed is None:
        return seq
    low, high = intersect((seq.ci_low, seq.ci_high), (fixed.ci_low, fixed.ci_high))
    fail_low, fail_high = intersect(seq.fail_bounds, fixed.fail_bounds)
    return Interval(value=seq.value, ci_low=low, ci_high=high, fail_low=fail_low, fail_high=fail_high)


def _combine(seq: MetricEvidence, fixed: MetricEvidence) -> MetricEvidence:
    return seq.model_copy(
        update={
            "champion": _both(seq.champion, fixed.champion),
            "challenger": _both(seq.challenger, fixed.challenger),
            "delta": _both(seq.delta, fixed.delta),
        }
    )


def look_comparison(
    data: PairedData,
    *,
    alpha: float,
    fail_alpha: float,
    planned_n: int,
    at_cap: bool,
    complete: bool = False,
    seed: int = 0,
) -> Comparison:
    """What a look decides on. ``at_cap``: this look is the final one (the cap was reached), so the
    fixed-n share of alpha is spent. ``complete``: add latency and the supplementary methods (the
    report's look at the stop); an interim look computes only the quality evidence."""
    seq_alpha, fixed_alpha = split_alpha(alpha)
    seq_fail, fixed_fail = split_alpha(fail_alpha)
    seq = compare(
        data,
        alpha=seq_alpha,
        fail_alpha=seq_fail,
        sequential=True,
        planned_n=planned_n,
        seed=seed,
        supplementary=False,
        latency=False,
    )
    if not (at_cap or complete):
        return seq
    fixed = None
    if at_cap:
        fixed = compare(data, alpha=fixed_alpha, fail_alpha=fixed_fail, seed=seed, supplementary=False, latency=False)
    full = compare(data, alpha=alpha, fail_alpha=fail_alpha, seed=seed) if complete else None
    metrics = dict(full.metrics) if full else {}
    for name, m in seq.metrics.items():
        update: dict[str, object] = {}
        if full is not None and name in full.metrics:
            update["supplementary"] = full.metrics[name].supplementary
        if fixed is not None and name in fixed.metrics:
            update["evidence"] = _combine(m.evidence, fixed.metrics[name].evidence)
            update["note"] = (
                f"final look at the cap: always-valid sequence at alpha {seq_alpha:g} intersected with the "
                f"fixed-n {fixed.metrics[name].method} interval at alpha {fixed_alpha:g}"
            )
        else:
            update["note"] = f"always-valid sequence at alpha {seq_alpha:g} (of {alpha:g}; the rest is for the cap)"
        metrics[name] = m.model_copy(update=update)
    return Comparison(counts=seq.counts, sequential=True, metrics=metrics)


def at_cap(plan: ShadowPlan, data: PairedData) -> bool:
    return data.counts.n_pairs + data.counts.n_unpaired >= plan.cap


def settled(verdict: Verdict) -> bool:
    return verdict is not Verdict.INCONCLUSIVE


async def look(plan_id: str) -> Look:
    """Sequential mode: the quality rules' verdict on every pair stored so far (always-valid intervals)."""
    plan = active.get(plan_id, ShadowPlan)
    data = await paired_data(plan)
    # Latency rules are judged once, at the stop: their intervals are fixed-n, not always-valid, so
    # the stopping time depends on quality evidence only.
    rules = [r for r in plan.policy.rules if not r.metric.startswith("latency/")]
    quality_policy = plan.policy.model_copy(update={"rules": rules})
    comparison = look_comparison(
        data,
        alpha=quality_policy.alpha,
        fail_alpha=quality_policy.fail_alpha,
        planned_n=plan.cap,
        at_cap=at_cap(plan, data),
        seed=plan.seed,
    )
    evidence = {k: m.evidence for k, m in comparison.metrics.items() if m.kind != "latency"}
    if not quality_policy.rules:
        return Look(n=data.counts.n_pairs, verdict=Verdict.INCONCLUSIVE)
    return Look(n=data.counts.n_pairs, verdict=decide(quality_policy, evidence, data.counts).verdict)


async def send_in_looks(
    plan_id: str,
    *,
    warmup: int | None = None,
    send: Callable[[str, int, int], Awaitable[int]] = send_shard,
    look_at: Callable[[str], Awaitable[Look]] = look,
) -> tuple[int, list[Look]]:
    """Send a plan that is ``sending_pairs`` batch by batch; returns the requests sent and the looks.

    Fixed-n mode sends everything as one batch, in shards at once. Sequential mode looks after each
    batch and stops at the first settled verdict; a resumed run looks first, since what is stored may
    already settle it (a crash after the deciding look). ``send(plan_id, batch, shard)`` and
    ``look_at(plan_id)`` are the engine's steps, or the flow's Prefect tasks wrapping them.
    ``warmup``: unrecorded requests per arm first (default twice the concurrency).
    """
    plan = active.get(plan_id, ShadowPlan)
    if plan.pending():
        await warm_up(plan, 2 * plan.concurrency if warmup is None else warmup)
    looks: list[Look] = []
    if plan.sequential and plan.resumed:
        looks.append(await look_at(plan_id))
        if settled(looks[-1].verdict):
            return 0, looks
    plan.schedule = [plan.shards(batch) for batch in plan.batches()]
    n_requested = 0
    for b, shards in enumerate(plan.schedule):
        n_requested += sum(await asyncio.gather(*(send(plan_id, b, i) for i in range(len(shards)))))
        if plan.sequential:
            for target in plan.targets.values():
                target.writer.flush()  # the look reads the store
            looks.append(await look_at(plan_id))
            if settled(looks[-1].verdict):
                break
    return n_requested, looks
