"""The promotion gate: a versioned YAML policy of rules, and the verdict it gives on the evidence.

Verdicts, per rule and overall: PASS (every rule passes), FAIL (a critical rule's interval lies wholly
on the wrong side of its threshold or margin), INCONCLUSIVE (anything else: pause, do not guess),
ERROR (could not evaluate). The gate fails closed: missing data, too few samples, too many errors or
unpaired items, a metric without a rule or a rule without a metric never yield PASS.

This module decides; it does not measure. The shadow flow (issue 3, not built yet) computes the
evidence with ``aire.comparison`` and passes it in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aire.errors import EXIT_ERROR, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS, InputError, did_you_mean
from aire.yamlfile import read_mapping


class PolicyError(InputError):
    """The gate policy file is invalid."""


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INCONCLUSIVE = "INCONCLUSIVE"
    ERROR = "ERROR"

    @property
    def exit_code(self) -> int:
        return {"PASS": EXIT_PASS, "FAIL": EXIT_FAIL, "INCONCLUSIVE": EXIT_INCONCLUSIVE}.get(self.value, EXIT_ERROR)


RuleKind = Literal["floor", "ceiling", "non_inferiority", "superiority", "latency_slo", "latency_relative"]
_COMPARATIVE = {"non_inferiority", "superiority", "latency_relative"}


class Rule(BaseModel):
    """One rule on one metric. Thresholds are data (in the spirit of MLflow's MetricThreshold)."""

    model_config = ConfigDict(extra="forbid")

    metric: str
    kind: RuleKind
    threshold: float | None = None  # floor, ceiling, latency_slo
    margin: float = Field(0.0, ge=0.0)  # non_inferiority, superiority: in the metric's units
    max_increase: float | None = Field(None, ge=0.0)  # latency_relative: 0.2 = at most +20%
    higher_is_better: bool = True
    critical: bool = True

    @model_validator(mode="after")
    def _needs(self) -> Rule:
        if self.kind in ("floor", "ceiling", "latency_slo") and self.threshold is None:
            raise ValueError(f"a {self.kind} rule needs 'threshold'")
        if self.kind == "latency_relative" and self.max_increase is None:
            raise ValueError("a latency_relative rule needs 'max_increase'")
        return self


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = "default"
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    n_min: int = Field(100, ge=1)
    max_error_rate: float = Field(0.05, ge=0.0, le=1.0)
    max_unpaired_fraction: float = Field(0.05, ge=0.0, le=1.0)
    rules: list[Rule] = Field(min_length=1)


class Interval(BaseModel):
    value: float
    ci_low: float
    ci_high: float


class MetricEvidence(BaseModel):
    """What the comparison measured for one metric: each arm, and the paired difference."""

    champion: Interval | None = None
    challenger: Interval | None = None
    delta: Interval | None = None  # challenger - champion


class Counts(BaseModel):
    n_pairs: int
    n_errors: int = 0  # requests that failed, either arm
    n_unpaired: int = 0  # items answered by one arm only


class RuleResult(BaseModel):
    rule: Rule
    verdict: Verdict
    reason: str


class Decision(BaseModel):
    verdict: Verdict
    reasons: list[str]
    rules: list[RuleResult]
    policy_name: str
    policy_sha256: str | None = None


def load_policy(path: Path) -> tuple[Policy, str]:
    """The policy and the sha256 of its file (its version, for provenance)."""
    if not path.is_file():
        raise PolicyError("file not found", path=path)
    raw = read_mapping(path, Policy.model_fields, PolicyError)
    for i, rule in enumerate(raw.get("rules") or []):
        unknown = sorted(set(rule) - set(Rule.model_fields)) if isinstance(rule, dict) else []
        if unknown:
            raise PolicyError(
                f"unknown key{did_you_mean(unknown[0], Rule.model_fields)}", path=path, field=f"rules[{i}].{unknown[0]}"
            )
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise PolicyError(err["msg"], path=path, field=".".join(str(p) for p in err["loc"]) or None) from None
    return policy, hashlib.sha256(path.read_bytes()).hexdigest()


def judge_rule(rule: Rule, ev: MetricEvidence | None) -> RuleResult:
    """One rule against its evidence: PASS/FAIL only when the whole interval is on one side."""

    def result(verdict: Verdict, reason: str) -> RuleResult:
        return RuleResult(rule=rule, verdict=verdict, reason=f"{rule.metric} {rule.kind}: {reason}")

    if ev is None:
        return result(Verdict.ERROR, "no such metric in the evidence")
    sign = 1.0 if rule.higher_is_better else -1.0
    if rule.kind in _COMPARATIVE:
        d = ev.delta
        if d is None:
            return result(Verdict.ERROR, "no paired difference measured")
        if rule.kind == "latency_relative":
            if ev.champion is None:
                return result(Verdict.ERROR, "no champion value to be relative to")
            limit = ev.champion.value * rule.max_increase  # type: ignore[operator]
            return _side(result, low=d.ci_low, high=d.ci_high, bound=limit, good_below=True)
        # In "better" units: positive is good for the challenger whatever the metric's direction.
        low, high = sorted((sign * d.ci_low, sign * d.ci_high))
        bound = -rule.margin if rule.kind == "non_inferiority" else rule.margin
        return _side(result, low=low, high=high, bound=bound, good_below=False)
    est = ev.challenger
    if est is None:
        return result(Verdict.ERROR, "no challenger value measured")
    assert rule.threshold is not None
    good_below = rule.kind in ("ceiling", "latency_slo")
    return _side(result, low=est.ci_low, high=est.ci_high, bound=rule.threshold, good_below=good_below)


def _side(
    result: Callable[[Verdict, str], RuleResult], *, low: float, high: float, bound: float, good_below: bool
) -> RuleResult:
    span = f"95% CI [{low:.4g}, {high:.4g}] vs {bound:.4g}"
    if good_below:
        if high <= bound:
            return result(Verdict.PASS, f"{span}: wholly within")
        if low > bound:
            return result(Verdict.FAIL, f"{span}: wholly beyond")
    else:
        if low > bound:
            return result(Verdict.PASS, f"{span}: wholly within")
        if high < bound:
            return result(Verdict.FAIL, f"{span}: wholly beyond")
    return result(Verdict.INCONCLUSIVE, f"{span}: straddles the bound")


def decide(
    policy: Policy, evidence: dict[str, MetricEvidence], counts: Counts, policy_sha256: str | None = None
) -> Decision:
    """The overall verdict: intersection-union (every rule must pass), failing closed."""
    results = [judge_rule(rule, evidence.get(rule.metric)) for rule in policy.rules]
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
    )
