"""The promotion gate: a versioned YAML policy of rules, and the verdict it gives on the evidence.

Verdicts, per rule and overall: PASS (every rule passes), FAIL (a critical rule's interval lies wholly
on the wrong side of its threshold or margin), INCONCLUSIVE (anything else: pause, do not guess),
ERROR (could not evaluate). The gate fails closed: missing data, too few samples, too many errors or
unpaired items, a metric without a rule or a rule without a metric never yield PASS.

Error rates. A PASS needs every rule to pass (intersection-union): each rule is read at one-sided
alpha/2 and no correction is needed. A FAIL needs only one critical rule to fail (a union), so the
FAIL side is read from intervals at the family-wise level: Bonferroni over the policy's critical
rules (``Policy.fail_alpha``), which keeps a false FAIL at alpha/2 whatever the number of rules.

The rules themselves, each judging its own evidence, are in ``aire.core.rules``. This module decides;
it does not measure. ``aire.gate.evidence`` computes the evidence and passes it in.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aire.core.errors import InputError, did_you_mean, from_validation
from aire.core.rules import (
    RULE_KINDS,
    CeilingRule,
    DisparityRule,
    FloorRule,
    Interval,
    LatencyRelativeRule,
    LatencySLORule,
    MetricEvidence,
    NonInferiorityRule,
    RateCeilingRule,
    Rule,
    RuleResult,
    SuperiorityRule,
    level_text,
)
from aire.core.types import Verdict
from aire.core.yamlfile import read_mapping

# The rule types live in aire.core.rules (suites share the floor); they are the gate's public names too.
__all__ = [
    "RULE_KINDS",
    "CeilingRule",
    "Counts",
    "Decision",
    "DisparityRule",
    "FloorRule",
    "Interval",
    "JudgeCheck",
    "LatencyRelativeRule",
    "LatencySLORule",
    "MetricEvidence",
    "NonInferiorityRule",
    "Policy",
    "PolicyError",
    "RateCeilingRule",
    "Rule",
    "RuleResult",
    "SuperiorityRule",
    "Verdict",
    "decide",
    "judge_rule",
    "level_text",
    "load_policy",
    "resolve_directions",
]


class PolicyError(InputError):
    """The gate policy file is invalid."""


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    n_min: int = Field(100, ge=1)
    max_error_rate: float = Field(0.05, ge=0.0, le=1.0)
    max_unpaired_fraction: float = Field(0.05, ge=0.0, le=1.0)
    rules: list[Rule] = Field(min_length=1)
    # A scheduled canary rolls back after this many consecutive FAILs of one version, or at once
    # when a single canary FAILs at the much stricter ``canary_severe_alpha`` (two-sided): a floor
    # tested every 15 minutes would otherwise roll a healthy model back most months.
    canary_confirmations: int = Field(2, ge=1)
    canary_severe_alpha: float = Field(0.0005, gt=0.0, lt=0.5)
    # Every rule on a judge-based metric (an LLM judge or a judged ragas metric) needs that judge
    # identity calibrated (`aire judge calibrate`) with Cohen's kappa at least this; otherwise the
    # rule is ERROR, never PASS: an unmeasured judge is no evidence.
    min_kappa: float | None = Field(None, ge=-1.0, le=1.0)

    @property
    def n_critical(self) -> int:
        return sum(1 for r in self.rules if r.critical)

    @property
    def fail_alpha(self) -> float:
        """Two-sided level of the intervals a FAIL is read from: Bonferroni over the critical rules."""
        return self.alpha / max(1, self.n_critical)


class Counts(BaseModel):
    n_pairs: int
    n_errors: int = 0  # requests that failed, either arm
    n_unpaired: int = 0  # items answered by one arm only


class JudgeCheck(BaseModel):
    """The judge behind one judge-based metric, and its newest calibration's kappa (None: never calibrated)."""

    judge: str
    judge_id: str
    kappa: float | None = None


def _judge_gate(result: RuleResult, check: JudgeCheck, min_kappa: float) -> RuleResult:
    """ERROR unless the judge behind the rule's metric is calibrated to at least ``min_kappa``."""
    where = f"{result.rule.metric}: judge '{check.judge}' (identity {check.judge_id[:12]})"
    if check.kappa is None:
        reason = f"{where} is not calibrated; run `aire judge calibrate` (the policy needs kappa >= {min_kappa:g})"
    elif not check.kappa >= min_kappa:
        reason = f"{where} has kappa {check.kappa:.3f} < the policy's min_kappa {min_kappa:g}"
    else:
        return result
    return RuleResult(rule=result.rule, verdict=Verdict.ERROR, reason=reason)


class Decision(BaseModel):
    verdict: Verdict
    reasons: list[str]
    rules: list[RuleResult]
    policy_name: str
    policy_sha256: str | None = None
    alpha: float = 0.05  # two-sided level of the intervals a PASS reads (one-sided alpha/2 per rule)
    fail_alpha: float = 0.05  # two-sided level a FAIL reads: Bonferroni, alpha / critical rules
    multiplicity: str = ""


def load_policy(path: Path) -> tuple[Policy, str]:
    """The policy and the sha256 of its file (its version, for provenance)."""
    if not path.is_file():
        raise PolicyError("file not found", path=path)
    raw = read_mapping(path, Policy.model_fields, PolicyError)
    for i, rule in enumerate(raw.get("rules") or []):
        if isinstance(rule, dict):
            _check_rule_keys(rule, path, f"rules[{i}]")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        raise from_validation(exc, PolicyError, path=path, tags=RULE_KINDS) from None
    return policy, hashlib.sha256(path.read_bytes()).hexdigest()


def _check_rule_keys(rule: dict[str, object], path: Path, where: str) -> None:
    """A rule's kind, and only that kind's keys, named in the file's terms (pydantic's union error reads
    "Input tag ... does not match", and it would not say which kind a stray key belongs to)."""
    kind = rule.get("kind")
    if kind is None:
        raise PolicyError(f"a rule needs 'kind': one of {', '.join(RULE_KINDS)}", path=path, field=f"{where}.kind")
    model = RULE_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise PolicyError(
            f"unknown kind {kind!r}{did_you_mean(str(kind), RULE_KINDS)}; kinds: {', '.join(RULE_KINDS)}",
            path=path,
            field=f"{where}.kind",
        )
    unknown = sorted(set(rule) - set(model.model_fields))
    if not unknown:
        return
    key = unknown[0]
    owners = [k for k, m in RULE_KINDS.items() if key in m.model_fields]
    message = (
        f"a {kind} rule has no '{key}' (that is a key of {', '.join(owners)} rules)"
        if owners
        else f"unknown key{did_you_mean(key, model.model_fields)}"
    )
    raise PolicyError(message, path=path, field=f"{where}.{key}")


def resolve_directions(policy: Policy, directions: dict[str, bool], path: Path | None = None) -> Policy:
    """The policy with each rule's direction taken from its evaluator where the YAML leaves it out.

    ``directions`` maps a metric (``exact_match/mean``) to its evaluator's ``higher_is_better``. A rule
    that states the opposite would be judged backwards: a policy error naming the rule.
    """
    rules = []
    for i, rule in enumerate(policy.rules):
        declared = directions.get(rule.metric)
        if rule.metric.startswith("latency/"):
            declared = False
        if declared is not None and rule.higher_is_better is not None and rule.higher_is_better != declared:
            said = "higher" if rule.higher_is_better else "lower"
            real = "higher" if declared else "lower"
            raise PolicyError(
                f"{rule.metric}: the rule says {said} is better, its evaluator says {real} is better",
                path=path,
                field=f"rules[{i}].higher_is_better",
            )
        if rule.higher_is_better is None:
            rule = rule.model_copy(update={"higher_is_better": declared})
        rules.append(rule)
    return policy.model_copy(update={"rules": rules})


def judge_rule(
    rule: Rule, ev: MetricEvidence | None, *, alpha: float = 0.05, fail_alpha: float | None = None
) -> RuleResult:
    """``rule.judge``: PASS only when the whole 1 - alpha interval is on the good side, FAIL only when the
    whole 1 - fail_alpha interval (the family-wise level) is on the wrong side."""
    return rule.judge(ev, alpha=alpha, fail_alpha=fail_alpha)


def decide(
    policy: Policy,
    evidence: dict[str, MetricEvidence],
    counts: Counts,
    policy_sha256: str | None = None,
    judges: dict[str, JudgeCheck] | None = None,
) -> Decision:
    """The overall verdict: intersection-union (every rule must pass), failing closed.

    ``judges``: metric key (an evaluator's) -> the judge behind it, for the policy's ``min_kappa``.
    """
    results = [
        rule.judge(evidence.get(rule.metric), alpha=policy.alpha, fail_alpha=policy.fail_alpha) for rule in policy.rules
    ]
    if policy.min_kappa is not None and judges:
        results = [
            _judge_gate(r, judges[head], policy.min_kappa) if (head := r.rule.metric.split("/")[0]) in judges else r
            for r in results
        ]
    reasons: list[str] = []
    blockers: list[str] = []  # conditions that forbid PASS without being a FAIL
    total = counts.n_pairs + counts.n_unpaired
    if total == 0:
        return Decision(
            verdict=Verdict.ERROR,
            reasons=["no data: zero samples were compared"],
            rules=results,
            policy_name=policy.name,
            policy_sha256=policy_sha256,
            **_levels(policy),
        )
    if counts.n_pairs < policy.n_min:
        blockers.append(f"only {counts.n_pairs} pairs, fewer than n_min={policy.n_min}")
    if counts.n_errors / total > policy.max_error_rate:
        blockers.append(f"error rate {counts.n_errors / total:.1%} above {policy.max_error_rate:.1%}")
    if counts.n_unpaired / total > policy.max_unpaired_fraction:
        blockers.append(f"unpaired {counts.n_unpaired / total:.1%} above {policy.max_unpaired_fraction:.1%}")
    ruled = {rule.metric for rule in policy.rules}
    for metric in sorted(set(evidence) - ruled):
        blockers.append(f"metric {metric} has no rule")

    if any(r.verdict is Verdict.ERROR for r in results):
        verdict = Verdict.ERROR
    elif any(r.verdict is Verdict.FAIL and r.rule.critical for r in results):
        verdict = Verdict.FAIL
    elif blockers or any(r.verdict is not Verdict.PASS for r in results):
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = Verdict.PASS
    reasons = [r.reason for r in results if r.verdict is not Verdict.PASS] + blockers
    return Decision(
        verdict=verdict,
        reasons=reasons or ["every rule passed"],
        rules=results,
        policy_name=policy.name,
        policy_sha256=policy_sha256,
        **_levels(policy),
    )


def _levels(policy: Policy) -> dict[str, float | str]:
    k = policy.n_critical
    return {
        "alpha": policy.alpha,
        "fail_alpha": policy.fail_alpha,
        "multiplicity": (
            f"PASS: every rule at one-sided {policy.alpha / 2:g} (intersection-union, no correction needed); "
            f"FAIL: Bonferroni over {k} critical rule{'s' if k != 1 else ''}, each at one-sided "
            f"{policy.fail_alpha / 2:.3g}, family-wise {policy.alpha / 2:g}"
        ),
    }
