"""Shadow / A-B comparison: the same inputs to champion and challenger, paired by sample id.

Engine steps the ``shadow-comparison`` flow strings together (like ``aire.run.offline``):

prepare_shadow()  validate suite or traffic file, policy and both endpoints; find or create the store
                  runs (one per arm) so an interrupted comparison resumes without repeating requests
run_pairs()       send each input to both arms at once, score, store (a Prefect task runs one shard)
look()            sequential mode: the always-valid verdict of the quality rules on what is stored
finalise_shadow() compare, decide, write report.md / latency.png / decision.json, register both
                  models, record a parent MLflow run with a nested run per arm; then mark finished
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import BaseModel

import aire
from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient, request_fingerprint
from aire.core.errors import ConfigError
from aire.core.progress import reporter
from aire.core.settings import Settings
from aire.core.types import Completion, GenerationParams, Sample
from aire.gate.policy import Counts, Decision, Policy, RuleResult, Verdict, decide, load_policy, resolve_directions
from aire.gate.record import FILE_NAME as DECISION_FILE
from aire.gate.record import DecisionRecord, MlflowRef, RegistryRef, write_decision
from aire.run.offline import bind_evaluator, check_endpoints, code_version, load_suite_with_evaluators, resolve_endpoint
from aire.stats.sequential import Look, SequentialInfo

if TYPE_CHECKING:
    from aire.gate.evidence import Comparison, PairedData
    from aire.store.store import ResultRow, Store

ARMS = ("champion", "challenger")
Arm = Literal["champion", "challenger"]
# Traffic has no references: the challenger is scored against the champion's output.
AGREEMENT = {"agreement_exact": ("exact_match", {"strip": True}), "agreement_f1": ("token_f1", {})}


class ShadowResult(BaseModel):
    """What one comparison decided, returned by the flow and printed by the CLI."""

    verdict: Verdict
    reasons: list[str]
    rules: list[RuleResult]
    exit_code: int
    out_dir: str
    mlflow_run_id: str
    tracking_uri: str
    n_pairs: int
    n_requested: int  # requests sent by this invocation, both arms
    resumed: bool
    sequential: SequentialInfo | None = None
    registry: RegistryRef


@dataclass
class ShadowPlan:
    settings: Settings
    source: Literal["suite", "traffic"]
    source_name: str
    source_version: str
    samples: list[Sample]  # in the order they are sent (shuffled with the seed: a look sees a random subset)
    generation: dict[str, GenerationParams]
    endpoints: dict[str, EndpointConfig]
    evaluators: dict[str, Any]  # key -> BoundEvaluator scored on each arm (suite mode)
    agreement: dict[str, Any]  # key -> BoundEvaluator scoring challenger vs champion (traffic mode)
    higher_is_better: dict[str, bool]
    group_field: str | None
    policy: Policy
    policy_path: Path
    policy_sha256: str
    store: Store
    runs: dict[str, str]  # arm -> store run id
    done: dict[str, set[str]]  # arm -> sample ids with a successful row
    resumed: bool
    concurrency: int
    sequential: bool
    batch: int
    cap: int
    seed: int
    out_dir: Path
    registered_model: str
    params: dict[str, Any] = field(default_factory=dict)

    def pending(self) -> list[Sample]:
        """Inputs (within the cap) that at least one arm has not answered yet, in send order."""
        return [s for s in self.samples[: self.cap] if any(s.id not in self.done[arm] for arm in ARMS)]

    def batches(self) -> list[list[Sample]]:
        """Sequential: batches of ``batch`` inputs between looks; fixed-n: everything at once."""
        pending = self.pending()
        if not self.sequential:
            return [pending] if pending else []
        return [pending[i : i + self.batch] for i in range(0, len(pending), self.batch)]

    def shards(self, samples: list[Sample]) -> list[list[Sample]]:
        size = self.settings.shard_size
        return [samples[i : i + size] for i in range(0, len(samples), size)]


def _resume_key(arm: str, identity: dict[str, Any]) -> str:
    payload = json.dumps({"kind": "shadow", "arm": arm, **identity}, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


async def preflight_shadow(
    settings: Settings,
    *,
    policy: str | Path,
    champion: str,
    challenger: str,
    suite: str | None = None,
    traffic: str | Path | None = None,
    sequential: bool = False,
) -> None:
    """The cheap checks of ``prepare_shadow``, run by the CLI before it starts Prefect: a typo costs
    a second, not a flow start-up."""
    import evaluators as registry
    from aire.data.suites import inspect_suite
    from aire.data.traffic import load_traffic

    (policy_obj, _), endpoints = _policy_and_endpoints(settings, policy, champion, challenger, suite, traffic)
    if suite is not None:
        _, spec, _ = inspect_suite(suite, settings.datasets_dir, validate_evaluator=bind_evaluator)
        directions = {f"{ref.key}/mean": registry.get(ref.name).higher_is_better for ref in spec.evaluators}
        group_field = spec.group_field
    else:
        tr = load_traffic(Path(traffic), GenerationParams())  # type: ignore[arg-type]
        directions = {f"{k}/mean": True for k in AGREEMENT}
        group_field = "group" if any("group" in s.slices for s in tr.samples) else None
    check_plan(policy_obj, Path(policy), directions, group_field, sequential)
    await check_endpoints(settings, *endpoints.values())


def check_plan(
    policy: Policy, policy_path: Path, directions: dict[str, bool], group_field: str | None, sequential: bool
) -> Policy:
    """The policy with its rules' directions resolved from the evaluators; exit 3 on a contradiction,
    or on --sequential with clustered samples."""
    if sequential and group_field:
        raise ConfigError(
            f"--sequential cannot account for clustered samples (group field {group_field!r}): "
            "its sequence assumes independent inputs; run the fixed-n gate (cluster-robust intervals)",
            field="sequential",
        )
    # A rule whose direction contradicts its evaluator's would be judged backwards.
    return resolve_directions(policy, directions, policy_path)


def _policy_and_endpoints(
    settings: Settings,
    policy: str | Path,
    champion: str,
    challenger: str,
    suite: str | None,
    traffic: str | Path | None,
) -> tuple[tuple[Policy, str], dict[str, EndpointConfig]]:
    if (suite is None) == (traffic is None):
        raise ConfigError("give exactly one of --suite or --traffic", field="suite")
    loaded_policy = load_policy(Path(policy))
    if champion == challenger:
        raise ConfigError("champion and challenger are the same endpoint", field="challenger")
    return loaded_policy, {
        "champion": resolve_endpoint(settings, champion, None, None),
        "challenger": resolve_endpoint(settings, challenger, None, None),
    }


async def prepare_shadow(
    settings: Settings,
    *,
    policy: str | Path,
    champion: str,
    challenger: str,
    suite: str | None = None,
    traffic: str | Path | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    sequential: bool = False,
    batch: int = 50,
    max_samples: int | None = None,
    seed: int = 0,
    fresh: bool = False,
    out_dir: str | Path | None = None,
    registered_model: str | None = None,
) -> ShadowPlan:
    """Validate every input and check both endpoints before a single row is written."""
    from aire.data.traffic import load_traffic

    (policy_obj, policy_sha), endpoints = _policy_and_endpoints(settings, policy, champion, challenger, suite, traffic)
    evaluators: dict[str, Any] = {}
    agreement: dict[str, Any] = {}
    higher: dict[str, bool] = {}
    group_field: str | None = None
    if suite is not None:
        loaded, evaluators = load_suite_with_evaluators(settings, suite, limit)
        samples = list(loaded.samples)
        generation = {s.id: loaded.spec.generation for s in samples}
        source_name, source_version = loaded.name, loaded.version
        higher = {f"{k}/mean": ev.spec.higher_is_better for k, ev in evaluators.items()}
        group_field = loaded.spec.group_field
        gen_identity: Any = loaded.spec.generation.model_dump()
        eval_identity: Any = [ref.model_dump() for ref in loaded.spec.evaluators]
    else:
        import evaluators as registry

        tr = load_traffic(Path(traffic), GenerationParams(), limit=limit)  # type: ignore[arg-type]
        samples, generation = list(tr.samples), tr.generation
        source_name, source_version = tr.name, tr.version
        agreement = {k: registry.bind(name, opts) for k, (name, opts) in AGREEMENT.items()}
        group_field = "group" if any("group" in s.slices for s in samples) else None
        gen_identity = {s.id: g.model_dump() for s, g in zip(samples, generation.values(), strict=True)}
        eval_identity = sorted(AGREEMENT)
    directions = {**higher, **{f"{k}/mean": True for k in agreement}}
    policy_obj = check_plan(policy_obj, Path(policy), directions, group_field, sequential)
    # A look must see a random subset: suites are often ordered (all additions, then products).
    random.Random(seed).shuffle(samples)
    cap = min(max_samples or len(samples), len(samples))

    await check_endpoints(settings, *endpoints.values())

    from aire.store.store import Store

    store = Store(settings.resolved_store_url)
    identity = {
        "source": source_name,
        "source_version": source_version,
        "champion": {k: v for k, v in endpoints["champion"].identity().items() if k != "endpoint"},
        "challenger": {k: v for k, v in endpoints["challenger"].identity().items() if k != "endpoint"},
        "generation": gen_identity,
        "evaluators": eval_identity,
        "samples": sorted(s.id for s in samples),
        "seed": seed,
    }
    params = {
        "source": "suite" if suite is not None else "traffic",
        "suite" if suite is not None else "traffic": source_name,
        "source_version": source_version,
        "policy": str(policy),
        "policy_sha256": policy_sha,
        "champion": endpoints["champion"].identity(),
        "challenger": endpoints["challenger"].identity(),
        "n_samples": len(samples),
        "sequential": sequential,
        "batch": batch if sequential else None,
        "cap": cap,
        "seed": seed,
        "aire_version": aire.__version__,
        "code_version": code_version(),
    }
    runs: dict[str, str] = {}
    resumed = False
    for arm in ARMS:
        key = _resume_key(arm, identity)
        existing = None if fresh else store.find_resumable(key)
        if existing is not None:
            runs[arm], resumed = existing.id, True
            continue
        ep = endpoints[arm]
        run = store.create_run(
            kind=f"shadow-{arm}",
            resume_key=key,
            suite=source_name,
            suite_version=source_version,
            endpoint=ep.name,
            served_model=ep.model,
            # The arm's identity at the top level, as offline runs have it: the monitor finds the
            # baseline of a production version by its weights digest.
            params={**params, "arm": arm, **{k: v for k, v in ep.identity().items() if v is not None}},
            n_samples=len(samples),
        )
        runs[arm] = run.id
    done = {arm: store.completed_ids(runs[arm]) for arm in ARMS}
    out = Path(out_dir) if out_dir else settings.resolved_home() / "reports" / runs["challenger"][:8]
    return ShadowPlan(
        settings=settings,
        source="suite" if suite is not None else "traffic",
        source_name=source_name,
        source_version=source_version,
        samples=samples,
        generation=generation,
        endpoints=endpoints,
        evaluators=evaluators,
        agreement=agreement,
        higher_is_better=higher,
        group_field=group_field,
        policy=policy_obj,
        policy_path=Path(policy),
        policy_sha256=policy_sha,
        store=store,
        runs=runs,
        done=done,
        resumed=resumed,
        concurrency=concurrency or settings.concurrency,
        sequential=sequential,
        batch=batch,
        cap=cap,
        seed=seed,
        out_dir=out,
        registered_model=registered_model or settings.registered_model,
        params=params,
    )


def fingerprinters(plan: ShadowPlan) -> dict[str, Any]:
    return {arm: (lambda s, ep=plan.endpoints[arm]: request_fingerprint(ep, s, plan.generation[s.id])) for arm in ARMS}


async def run_pairs(
    plan: ShadowPlan, clients: dict[str, EndpointClient], writers: dict[str, Any], samples: list[Sample]
) -> int:
    """Send each input to every arm that has not answered it yet, both at once; returns requests sent."""
    from aire.store.store import SampleResult

    progress = reporter()
    sent = 0

    async def arm_request(arm: str, sample: Sample) -> None:
        nonlocal sent
        completion = await clients[arm].generate(sample, plan.generation[sample.id])
        sent += 1
        scores = {k: await ev.score(sample, completion) for k, ev in plan.evaluators.items()}
        writers[arm].put(SampleResult(sample=sample, completion=completion, scores=scores))
        if completion.ok:
            plan.done[arm].add(sample.id)

    async def pair(sample: Sample) -> None:
        arms = [arm for arm in ARMS if sample.id not in plan.done[arm]]
        await asyncio.gather(*(arm_request(arm, sample) for arm in arms))
        progress.advance(failed=any(sample.id not in plan.done[arm] for arm in ARMS))

    await asyncio.gather(*(pair(s) for s in samples))
    return sent


async def warm_up(plan: ShadowPlan, clients: dict[str, EndpointClient], n: int) -> None:
    """Send ``n`` unrecorded requests to each arm at full concurrency first. A freshly started vLLM
    compiles kernels for each new batch shape: measured on the CPU build, a cold replica's TTFT p95
    was 1.6 s against ~0.3 s warm, which would fail a latency rule on start-up cost, not on the model."""
    if n <= 0 or not plan.samples:
        return
    samples = [plan.samples[i % len(plan.samples)] for i in range(n)]
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
    for key, ev in plan.agreement.items():
        values = []
        for sid in paired:
            reference = Sample(id=sid, prompt=by_id[sid].prompt, reference=rows["champion"][sid].text)
            values.append((await ev.score(reference, Completion(text=rows["challenger"][sid].text))).value)
        agreement[f"{key}/mean"] = np.array(values, dtype=float)

    def latency(arm: str, attr: str) -> np.ndarray:
        vals = [getattr(rows[arm][i], attr) for i in paired]
        return np.array([math.nan if v is None else v * 1000.0 for v in vals], dtype=float)

    lat = {sli: (latency("champion", sli[:-3] + "_s"), latency("challenger", sli[:-3] + "_s")) for sli in LATENCY_SLIS}
    groups = None
    if plan.group_field:
        groups = np.array(
            [str(by_id[i].fields.get(plan.group_field, by_id[i].slices.get("group", ""))) for i in paired]
        )
    return PairedData(
        ids=paired,
        quality=quality,
        agreement=agreement,
        latency=lat,
        groups=groups,
        counts=counts,
        unpaired_quality=unpaired_quality,
    )


async def look(plan: ShadowPlan) -> Look:
    """Sequential mode: the quality rules' verdict on every pair stored so far (always-valid intervals)."""
    from aire.run.looks import look_comparison

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
        at_cap=_at_cap(plan, data),
        seed=plan.seed,
    )
    evidence = {k: m.evidence for k, m in comparison.metrics.items() if m.kind != "latency"}
    if not quality_policy.rules:
        return Look(n=data.counts.n_pairs, verdict=Verdict.INCONCLUSIVE)
    return Look(n=data.counts.n_pairs, verdict=decide(quality_policy, evidence, data.counts).verdict)


def _at_cap(plan: ShadowPlan, data: PairedData) -> bool:
    return data.counts.n_pairs + data.counts.n_unpaired >= plan.cap


def settled(verdict: Verdict) -> bool:
    return verdict is not Verdict.INCONCLUSIVE


def _sequential_info(plan: ShadowPlan, looks: list[Look], data: PairedData, comparison: Comparison) -> SequentialInfo:
    from aire.stats.sequential import fixed_n_plan

    rule = next((r for r in plan.policy.rules if r.kind == "non_inferiority" and r.critical), None)
    fixed = None
    basis = "no critical non-inferiority rule: no fixed-n plan to compare with"
    if rule is not None and rule.metric in data.quality:
        a, b, _ = data.quality[rule.metric]
        d = (b - a)[~np.isnan(b - a)]
        baseline = float(np.nanmean(a)) if len(a) else 0.5
        sd = float(d.std(ddof=1)) if len(d) > 1 else None
        # The gate reads a two-sided 1 - alpha interval: a one-sided test at alpha / 2.
        fixed = fixed_n_plan(baseline, rule.margin, alpha=plan.policy.alpha / 2, power=0.8, sd=sd)
        basis = (
            f"{rule.metric}: baseline {baseline:.3f}, margin {rule.margin:g}, one-sided alpha "
            f"{plan.policy.alpha / 2:g}, power 0.8, sd of paired differences "
            f"{sd if sd is not None else float('nan'):.3f}"
        )
    return SequentialInfo(
        batch=plan.batch,
        cap=plan.cap,
        n_used=data.counts.n_pairs + data.counts.n_unpaired,
        looks=looks,
        fixed_n_plan=fixed,
        plan_basis=basis,
    )


def _finite(value: Any) -> Any:
    """JSON has no infinity: an unbounded interval side is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


async def finalise_shadow(plan: ShadowPlan, *, n_requested: int, looks: list[Look]) -> ShadowResult:
    """Decide, write the report files, register both models, record MLflow; then mark the runs finished."""
    from aire.gate.evidence import compare
    from aire.gate.report import write_report
    from aire.release import registry
    from aire.run.looks import look_comparison
    from aire.stats.summary import summarise
    from aire.store.store import FAILED, FINISHED
    from aire.tracking import runs as tracking

    stored = arm_rows(plan)  # read once: the comparison and the MLflow record both use them
    data = await paired_data(plan, stored)
    if plan.sequential:
        comparison = look_comparison(
            data,
            alpha=plan.policy.alpha,
            fail_alpha=plan.policy.fail_alpha,
            planned_n=plan.cap,
            at_cap=_at_cap(plan, data),
            complete=True,
            seed=plan.seed,
        )
    else:
        comparison = compare(data, alpha=plan.policy.alpha, fail_alpha=plan.policy.fail_alpha, seed=plan.seed)
    ruled = {r.metric for r in plan.policy.rules}
    decision: Decision = decide(plan.policy, comparison.evidence(ruled), comparison.counts, plan.policy_sha256)
    seq = _sequential_info(plan, looks, data, comparison) if plan.sequential else None

    versions = {
        arm: registry.register(
            plan.settings, plan.registered_model, plan.endpoints[arm], plan.endpoints[arm].resolved_tokenizer_digest()
        )
        for arm in ARMS
    }
    provenance = {
        "source": plan.source,
        plan.source: plan.source_name,
        f"{plan.source}_sha256": plan.source_version,
        "policy": str(plan.policy_path),
        "policy_sha256": plan.policy_sha256,
        **{
            arm: {
                "endpoint": plan.endpoints[arm].name,
                "served_model": plan.endpoints[arm].model,
                "weights_digest": plan.endpoints[arm].resolved_digest(),
                "tokenizer_digest": plan.endpoints[arm].resolved_tokenizer_digest(),
                "registered_version": versions[arm],
            }
            for arm in ARMS
        },
        "registered_model": plan.registered_model,
        "seed": plan.seed,
        "aire_version": aire.__version__,
        "code_version": plan.params["code_version"],
    }
    title = f"{plan.endpoints['challenger'].name} vs {plan.endpoints['champion'].name} on {plan.source_name}"
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    # A decision.json left from an earlier gate in this folder must not outlive a failed one: CI reads it.
    (plan.out_dir / DECISION_FILE).unlink(missing_ok=True)
    write_report(
        plan.out_dir,
        title=title,
        decision=decision,
        comparison=comparison,
        latency=data.latency,
        provenance=provenance,
        sequential=seq,
        champion_name=plan.endpoints["champion"].name,
        challenger_name=plan.endpoints["challenger"].name,
    )
    aggregations = {k: ev.spec.aggregations for k, ev in plan.evaluators.items()}
    summaries = {arm: summarise(stored[arm], aggregations) for arm in ARMS}
    try:
        mlflow_run_id = tracking.log_comparison(
            plan.settings,
            run_name=title,
            params=plan.params,
            decision=decision,
            comparison=comparison,
            arms={
                arm: tracking.ArmRecord(
                    run_name=f"{arm}: {plan.endpoints[arm].name}",
                    params={**plan.params, "arm": arm, "endpoint": plan.endpoints[arm].identity()},
                    summary=summaries[arm],
                    rows=stored[arm],
                    store_run_id=plan.runs[arm],
                )
                for arm in ARMS
            },
            samples={s.id: s for s in plan.samples},
            score_keys=list(plan.evaluators),
            files=[plan.out_dir / "report.md", plan.out_dir / "latency.png"],
            decision_body=lambda run_id: _decision_record(
                plan, decision, comparison, seq, provenance, run_id
            ).as_json_dict(),
        )
    except Exception:
        for arm in ARMS:
            plan.store.set_status(plan.runs[arm], FAILED)
        raise
    write_decision(
        plan.out_dir / DECISION_FILE, _decision_record(plan, decision, comparison, seq, provenance, mlflow_run_id)
    )
    for arm in ARMS:
        plan.store.set_status(plan.runs[arm], FINISHED, mlflow_run_id=mlflow_run_id)
    return ShadowResult(
        verdict=decision.verdict,
        reasons=decision.reasons,
        rules=decision.rules,
        exit_code=decision.verdict.exit_code,
        out_dir=str(plan.out_dir),
        mlflow_run_id=mlflow_run_id,
        tracking_uri=plan.settings.resolved_tracking_uri,
        n_pairs=comparison.counts.n_pairs,
        n_requested=n_requested,
        resumed=plan.resumed,
        sequential=seq,
        registry=RegistryRef(model=plan.registered_model, **{f"{arm}_version": versions[arm] for arm in ARMS}),
    )


def _decision_record(
    plan: ShadowPlan,
    decision: Decision,
    comparison: Comparison,
    seq: SequentialInfo | None,
    provenance: dict[str, Any],
    mlflow_run_id: str,
) -> DecisionRecord:
    """decision.json: what CI and ``aire promote --decision`` read."""
    return DecisionRecord.of(
        decision,
        counts=comparison.counts,
        metrics={k: m.evidence for k, m in comparison.metrics.items()},
        sequential=seq,
        provenance=_finite(provenance),
        registry=RegistryRef(
            model=plan.registered_model,
            champion_version=provenance["champion"]["registered_version"],
            challenger_version=provenance["challenger"]["registered_version"],
        ),
        mlflow=MlflowRef(run_id=mlflow_run_id, tracking_uri=plan.settings.resolved_tracking_uri),
    )
