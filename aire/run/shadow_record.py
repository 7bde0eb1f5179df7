"""The end of a shadow comparison: compare, decide, write report.md / latency.png / decision.json,
register both models, record a parent MLflow run with a nested run per arm; then mark the runs finished."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel

import aire
from aire.gate.policy import Decision, NonInferiorityRule, RuleResult, Verdict, decide
from aire.gate.record import FILE_NAME as DECISION_FILE
from aire.gate.record import DecisionRecord, MlflowRef, RegistryRef, write_decision
from aire.run import active
from aire.run.looks import at_cap, look_comparison
from aire.run.pairs import arm_rows, paired_data
from aire.run.shadow import ARMS, ShadowPlan
from aire.stats.sequential import Look, SequentialInfo

if TYPE_CHECKING:
    from aire.gate.evidence import Comparison, PairedData


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


def _sequential_info(plan: ShadowPlan, looks: list[Look], data: PairedData, comparison: Comparison) -> SequentialInfo:
    from aire.stats.sequential import fixed_n_plan

    rule = next((r for r in plan.policy.rules if isinstance(r, NonInferiorityRule) and r.critical), None)
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


async def finalise_shadow(plan_id: str, *, n_requested: int, looks: list[Look]) -> ShadowResult:
    """Decide, write the report files, register both models, record MLflow; then mark the runs finished."""
    from aire.gate.evidence import compare
    from aire.gate.report import write_report
    from aire.release import registry
    from aire.run.judge_checks import judge_checks
    from aire.stats.summary import summarise
    from aire.store.store import FAILED, FINISHED
    from aire.tracking import runs as tracking

    plan = active.get(plan_id, ShadowPlan)
    stored = arm_rows(plan)  # read once: the comparison and the MLflow record both use them
    data = await paired_data(plan, stored)
    if plan.sequential:
        comparison = look_comparison(
            data,
            alpha=plan.policy.alpha,
            fail_alpha=plan.policy.fail_alpha,
            planned_n=plan.cap,
            at_cap=at_cap(plan, data),
            complete=True,
            seed=plan.seed,
        )
    else:
        comparison = compare(data, alpha=plan.policy.alpha, fail_alpha=plan.policy.fail_alpha, seed=plan.seed)
    ruled = {r.metric for r in plan.policy.rules}
    # The pairwise (agreement) metrics too: a judge_pairwise metric is judge-based, and its calibration
    # (``aire judge calibrate`` on labelled pairs) is keyed by the same judge identity.
    judged = {**plan.evaluators, **plan.agreement}
    judges = judge_checks(plan.settings, plan.store, judged) if plan.policy.min_kappa is not None else None
    decision: Decision = decide(
        plan.policy, comparison.evidence(ruled), comparison.counts, plan.policy_sha256, judges=judges
    )
    seq = _sequential_info(plan, looks, data, comparison) if plan.sequential else None

    versions = {
        arm: registry.register(
            plan.settings,
            plan.registered_model,
            plan.endpoints[arm],
            plan.endpoints[arm].resolved_tokenizer_digest(),
            suite=plan.source_name if plan.source == "suite" else None,
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
    if judges:
        provenance["judges"] = {key: check.model_dump() for key, check in judges.items()}
    if data.position_bias:
        # Pairs a pairwise judge decided by position (a tie in the score): a judge to recalibrate.
        provenance["position_bias"] = data.position_bias
    title = f"{plan.endpoints['challenger'].name} vs {plan.endpoints['champion'].name} on {plan.source_name}"
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    # A decision.json left from an earlier gate in this folder must not outlive a failed one: CI reads it.
    (plan.out_dir / DECISION_FILE).unlink(missing_ok=True)
    aggregations = {k: ev.spec.aggregations for k, ev in plan.evaluators.items()}
    summaries = {
        arm: summarise(
            stored[arm],
            aggregations,
            price=plan.endpoints[arm].price,
            repeats=plan.repeats,
            calibration=plan.calibration,
        )
        for arm in ARMS
    }
    report_files = write_report(
        plan.out_dir,
        title=title,
        decision=decision,
        comparison=comparison,
        latency=data.latency,
        provenance=provenance,
        sequential=seq,
        champion_name=plan.endpoints["champion"].name,
        challenger_name=plan.endpoints["challenger"].name,
        summaries=summaries,
    )
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
            files=list(report_files.values()),
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
    active.drop(plan_id)
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
        metrics={k: m.evidence for k, m in {**comparison.metrics, **comparison.gaps}.items()},
        sequential=seq,
        provenance=_finite(provenance),
        registry=RegistryRef(
            model=plan.registered_model,
            champion_version=provenance["champion"]["registered_version"],
            challenger_version=provenance["challenger"]["registered_version"],
        ),
        mlflow=MlflowRef(run_id=mlflow_run_id, tracking_uri=plan.settings.resolved_tracking_uri),
    )
