"""The canary's decision, pure: the gate's statistics and policy on the canary's paired scores.

Production now against the same inputs' scores when the version was evaluated, compared pairwise (one-sided
non-inferiority and floors), at the policy's alpha and again at its ``canary_severe_alpha``;
aire.monitor.escalation then turns the two verdicts into HEALTHY / SUSPECT / ROLLBACK.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aire.gate.policy import Decision, JudgeCheck, Policy, decide


def _canary_policy(policy: Policy, n: int) -> Policy:
    """The gate policy's quality rules (latency is the SLOs' job here), with n_min no larger than the canary."""
    rules = [r for r in policy.rules if not r.metric.startswith("latency/")]
    return policy.model_copy(update={"rules": rules, "n_min": min(policy.n_min, n)})


@dataclass(frozen=True)
class CanaryJudgement:
    comparison: Any  # aire.evidence.Comparison at the policy's alpha
    decision: Decision  # at the policy's alpha (FAIL read at its family-wise fail_alpha)
    severe: Decision  # the same evidence at canary_severe_alpha


def _compare(data: Any, policy: Policy) -> Any:
    """compare() at the policy's alpha, the FAIL side's intervals at its family-wise ``fail_alpha``."""
    from aire.gate.evidence import compare

    return compare(data, alpha=policy.alpha, fail_alpha=policy.fail_alpha, supplementary=False, latency=False)


def judge_canary(policy: Policy, data: Any, size: int, judges: dict[str, JudgeCheck] | None = None) -> CanaryJudgement:
    """The canary's decision, pure: the gate's statistics on the quality rules (``_canary_policy``),
    at the policy's alpha and again at its ``canary_severe_alpha``. ``data``: aire.evidence.PairedData
    (counts included); ``size``: inputs requested; ``judges``: the judges behind judged metrics, for
    the policy's ``min_kappa`` (as in the gate)."""
    normal = _canary_policy(policy, size)
    severe = normal.model_copy(update={"alpha": policy.canary_severe_alpha})
    comparison = _compare(data, normal)
    decision = decide(normal, comparison.evidence(set()), data.counts, judges=judges)
    strict = decide(severe, _compare(data, severe).evidence(set()), data.counts, judges=judges)
    return CanaryJudgement(comparison=comparison, decision=decision, severe=strict)
