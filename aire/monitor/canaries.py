"""The canary: a rotating subset of the golden suite against production, compared pairwise with the same
inputs' scores recorded when that version was evaluated (aire.monitor.judge), its verdicts kept with its store
run, and escalated over this version's earlier canaries (aire.monitor.escalation)."""

from __future__ import annotations

import hashlib
import math
import uuid
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aire.client.config import EndpointConfig
from aire.core.repeats import generation_for, sample_of
from aire.core.settings import Settings
from aire.core.types import GenerationParams, Sample
from aire.gate.policy import Verdict, load_policy
from aire.monitor.escalation import escalate
from aire.monitor.judge import judge_canary
from aire.monitor.results import CanaryResult
from aire.run.judge_checks import judge_checks

if TYPE_CHECKING:
    from aire.store import RunRow, Store


def find_baseline(store: Store, suite: str, endpoint: EndpointConfig) -> RunRow | None:
    """The newest finished run of ``suite`` whose served weights are this endpoint's (by digest, else
    by served model and URL): the scores the version had when it was evaluated."""
    from aire.monitor.history import finished_runs_of_suite

    digest = endpoint.resolved_digest()
    for run in finished_runs_of_suite(store, suite):
        p = run.params
        if digest and p.get("weights_digest") == digest:
            return run
        if not digest and (p.get("served_model"), p.get("base_url")) == (endpoint.model, endpoint.base_url):
            return run
    return None


def rotation(ids: list[str], size: int, done: int) -> tuple[int, list[str]]:
    """The offset and the subset of the next canary after ``done`` finished ones: ``size`` of ``ids`` from
    ``done * size`` on, wrapping around, so production is probed on all of the suite over time."""
    size = min(size, len(ids))
    offset = (done * size) % len(ids)
    return offset, [ids[(offset + i) % len(ids)] for i in range(size)]


def resume_key(probe_id: str) -> str:
    """The store's resume key of a probe: what a retried task finds its unfinished run by (64 characters at most)."""
    key = f"canary:{probe_id}"
    return key if len(key) <= 64 else "canary:" + hashlib.sha256(probe_id.encode()).hexdigest()[:57]


async def canary(
    settings: Settings,
    *,
    model: str,
    version: str,
    endpoint: EndpointConfig,
    suite: str,
    policy_path: Path,
    size: int,
    probe_id: str | None = None,
) -> CanaryResult | None:
    """None when no baseline exists for this version (nothing to compare with: reported, no breach).

    ``probe_id`` names this probe (the flow passes its flow run's id): a retried task finds the run an
    earlier attempt left unfinished, keeps its subset and requests only the samples not yet stored.
    Without it a canary is a point-in-time probe, never resumed.
    """
    from aire.gate.evidence import PairedData
    from aire.gate.policy import Counts
    from aire.monitor import history
    from aire.run import check_endpoints, load_suite_with_evaluators
    from aire.store import FINISHED, Store

    policy, _ = load_policy(policy_path)
    loaded, evaluators = load_suite_with_evaluators(settings, suite)
    store = Store(settings.resolved_store_url)
    identity = {"model": model, "version": str(version), **endpoint.identity()}
    key = resume_key(probe_id) if probe_id else uuid.uuid4().hex
    run = history.probe_run(store, key) if probe_id else None
    base_run = find_baseline(store, loaded.name, endpoint) if run is None else store.get_run(run.params["baseline_run"])
    if base_run is None:
        return None
    baseline = {r.sample_id: r for r in store.results(base_run.id) if r.error_type is None}
    by_id = {s.id: s for s in loaded.samples}
    ids = sorted(i for i in baseline if i in by_id)
    if not ids:
        return None
    if run is None:
        # One subset per finished canary of this version (an unfinished or crashed canary does not
        # shift the rotation).
        offset, chosen = rotation(ids, size, history.count_version_canaries(store, loaded.name, identity))
    else:
        offset, chosen = int(run.params["offset"]), [i for i in run.params["sample_ids"] if i in by_id]
    await check_endpoints(settings, endpoint)
    resumed = run is not None
    if run is None:
        run = store.create_run(
            kind="canary",
            resume_key=key,
            suite=loaded.name,
            suite_version=loaded.version,
            endpoint=endpoint.name,
            served_model=endpoint.model,
            params={**identity, "offset": offset, "baseline_run": base_run.id, "sample_ids": chosen},
            n_samples=len(chosen),
        )
    todo = [sid for sid in chosen if sid not in store.completed_ids(run.id)]
    if todo:
        await _request(
            settings, store, run.id, endpoint, [by_id[sid] for sid in todo], loaded.spec.generation, evaluators
        )

    rows = {r.sample_id: r for r in store.results(run.id) if r.error_type is None}
    paired = [sid for sid in chosen if sid in rows]
    quality = {
        f"{k}/mean": (
            np.array([baseline[sid].scores.get(k, math.nan) for sid in paired]),
            np.array([rows[sid].scores.get(k, math.nan) for sid in paired]),
            ev.spec.higher_is_better,
        )
        for k, ev in evaluators.items()
    }
    counts = Counts(n_pairs=len(paired), n_errors=len(chosen) - len(paired))
    # A judged metric's rule needs its judge calibrated, as in the gate (the policy's min_kappa).
    judges = judge_checks(settings, store, evaluators) if policy.min_kappa is not None else None
    # A sampled suite's repeats of one sample are one cluster, as in the gate.
    groups = np.array([sample_of(sid) for sid in paired]) if loaded.spec.repeats > 1 else None
    data = PairedData(ids=paired, quality=quality, counts=counts, groups=groups)
    judged = judge_canary(policy, data, len(chosen), judges)
    # The run of FAILs this canary may extend: this version's newest canaries since it last took
    # production (only the newest confirmations - 1 can matter).
    since = store.production_since(model, str(version))
    earlier = history.recent_version_canaries(
        store, loaded.name, identity, exclude=run.id, limit=max(0, policy.canary_confirmations - 1)
    )
    previous = [r.params.get("verdict") for r in earlier if since is None or r.created_at >= since]
    escalation = escalate(
        judged.decision.verdict,
        judged.severe.verdict,
        [v if v in Verdict.__members__ else None for v in previous],
        confirmations=policy.canary_confirmations,
    )
    # The verdicts go with the run, for the next canaries of this version to read; then it counts.
    store.set_params(
        run.id,
        {
            **run.params,
            "verdict": judged.decision.verdict.value,
            "severe_verdict": judged.severe.verdict.value,
            "escalation": escalation.state.value,
            "consecutive_fails": escalation.fails,
        },
    )
    if run.status != FINISHED:
        store.set_status(run.id, FINISHED)
    metrics = judged.comparison.metrics
    return CanaryResult(
        suite=loaded.name,
        n=len(paired),
        verdict=judged.decision.verdict,
        reasons=judged.decision.reasons,
        accuracy={k: m.evidence.challenger.value for k, m in metrics.items() if m.evidence.challenger},
        baseline={k: m.evidence.champion.value for k, m in metrics.items() if m.evidence.champion},
        delta={
            k: (m.evidence.delta.value, m.evidence.delta.ci_low, m.evidence.delta.ci_high)
            for k, m in metrics.items()
            if m.evidence.delta
        },
        baseline_run=base_run.id,
        offset=offset,
        severe_verdict=judged.severe.verdict,
        severe_alpha=policy.canary_severe_alpha,
        escalation=escalation,
        run_id=run.id,
        resumed=resumed,
    )


async def _request(
    settings: Settings,
    store: Store,
    run_id: str,
    endpoint: EndpointConfig,
    samples: list[Sample],
    generation: GenerationParams,
    evaluators: dict[str, Any],
) -> None:
    """Generate, score and store ``samples`` against production through the run's executor, each row
    committed to the run as it finishes: a retry after a crash requests only the rest."""
    from aire.run import open_target, run_all, run_sample

    generate = partial(generation_for, generation)
    async with open_target(settings, store, run_id, endpoint, generate, evaluators) as target:
        await run_all(run_sample(target, s) for s in samples)
