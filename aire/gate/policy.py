"""The promotion gate: a versioned YAML policy of rules, and the verdict it gives on the evidence.

Verdicts, per rule and overall: PASS (every rule passes), FAIL (a critical rule's interval lies wholly
on the wrong side of its threshold or margin), INCONCLUSIVE (anything else: pause, do not guess),
ERROR (could not evaluate). The gate fails closed: missing data, too few samples, too many errors or
unpaired items, a metric without a rule or a rule without a metric never yield PASS.

Error rates. A PASS needs every rule to pass (intersection-union): each rule is read at one-sided
alpha/2 and no correction is needed. A FAIL needs only one critical rule to fail (a union), so the
FAIL side is read from intervals at the family-wise level: Bonferroni over the policy's critical
rules (``Policy.fail_alpha``), which keeps a false FAIL at alpha/2 whatever the number of rules.

This module decides; it does not measure. ``aire.gate.evidence`` computes the evidence and passes it in.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from aire.core.errors import InputError, did_you_mean, from_validation
from aire.core.types import Verdict
from aire.core.yamlfile import read_mapping


class PolicyError(InputError):
    """The gate policy file is invalid."""


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
    # None: the evaluator's declared direction. A value that contradicts it is a policy error.
    higher_is_better: bool | None = None
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
    # A scheduled canary rolls back after this many consecutive FAILs of one version, or at once
    # when a single canary FAILs at the much stricter ``canary_severe_alpha`` (two-sided): a floor
    # tested every 15 minutes would otherwise roll a healthy model back most months.
    canary_confirmations: int = Field(2, ge=1)
    canary_severe_alpha: float = Field(0.0005, gt=0.0, lt=0.5)

    @property
    def n_critical(self) -> int:
        return sum(1 for r in self.rules if r.critical)

    @property
    def fail_alpha(self) -> float:
        """Two-sided level of the intervals a FAIL is read from: Bonferroni over the critical rules."""
        return self.alpha / max(1, self.n_critical)


def level_text(alpha: float) -> str:
    """'95%' for alpha 0.05, '97.5%' for 0.025: what a reason prints as the interval's confidence."""
    return f"{round((1 - alpha) * 100, 3):g}%"


class Interval(BaseModel):
    value: float
    ci_low: float
    ci_high: float
    # The same estimate at the family-wise FAIL level (Policy.fail_alpha): wider when several
    # critical rules could each FAIL. None: the same as [ci_low, ci_high].
    fail_low: float | None = None
    fail_high: float | None = None

    @field_validator("value", mode="before")
    @classmethod
    def _nan(cls, v: object) -> object:
        return math.nan if v is None else v  # decision.json writes NaN as null

    @field_validator("ci_low", mode="before")
    @classmethod
    def _unbounded_low(cls, v: object) -> object:
        return -math.inf if v is None else v  # decision.json writes an unbounded side as null

    @field_validator("ci_high", mode="before")
    @classmethod
    def _unbounded_high(cls, v: object) -> object:
        return math.inf if v is None else v

    @property
    def fail_bounds(self) -> tuple[float, float]:
        low = self.ci_low if self.fail_low is None else self.fail_low
        high = self.ci_high if self.fail_high is None else self.fail_high
        return low, high


class MetricEvidence(BaseModel):
    """What the comparison measured for one metric: each arm, and the paired difference."""

    champion: Interval | None = None
    challenger: Interval | None = None
    delta: Interval | None = None  # challenger - champion
    ratio: Interval | None = None  # challenger / champion (latency percentiles, from the same resamples)
    higher_is_better: bool | None = None  # the evaluator's declared direction, where one is known
    # Why a PASS on this metric cannot be trusted (too few clusters, too few samples for a tail
    # percentile): a rule that would PASS is INCONCLUSIVE instead.
    caveat: str | None = None


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
    alpha: float = 0.05  # two-sided level of the intervals a PASS reads (one-sided alpha/2 per rule)
    fail_alpha: float = 0.05  # two-sided level a FAIL reads: Bonferroni, alpha / critical rules
    multiplicity: str = ""


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
        raise from_validation(exc, PolicyError, path=path) from None
    return policy, hashlib.sha256(path.read_bytes()).hexdigest()


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
    """One rule against its evidence: PASS only when the whole 1 - alpha interval is on the good side,
    FAIL only when the whole 1 - fail_alpha interval (the family-wise level) is on the wrong side."""

    def result(verdict: Verdict, reason: str) -> RuleResult:
        return RuleResult(rule=rule, verdict=verdict, reason=f"{rule.metric} {rule.kind}: {reason}")

    if ev is None:
        return result(Verdict.ERROR, "no such metric in the evidence")
    hib = rule.higher_is_better
    if hib is not None and ev.higher_is_better is not None and hib != ev.higher_is_better:
        return result(Verdict.ERROR, "the rule's direction contradicts the evaluator's")
    hib = hib if hib is not None else (ev.higher_is_better if ev.higher_is_better is not None else True)
    rule = rule.model_copy(update={"higher_is_better": hib})  # the result (and its report) shows it resolved
    levels = (level_text(alpha), level_text(fail_alpha if fail_alpha is not None else alpha))
    side = partial(_side, result, levels=levels, caveat=ev.caveat)
    if rule.kind == "latency_relative":
        r = ev.ratio
        if r is None:
            return result(Verdict.ERROR, "no paired ratio of the percentiles measured")
        return side(r, bound=1.0 + rule.max_increase, good_below=True)  # type: ignore[operator]
    if rule.kind in _COMPARATIVE:
        d = ev.delta
        if d is None:
            return result(Verdict.ERROR, "no paired difference measured")
        if not hib:  # in "better" units: positive is good for the challenger whatever the direction
            fl, fh = d.fail_bounds
            d = Interval(value=-d.value, ci_low=-d.ci_high, ci_high=-d.ci_low, fail_low=-fh, fail_high=-fl)
        bound = -rule.margin if rule.kind == "non_inferiority" else rule.margin
        return side(d, bound=bound, good_below=False)
    est = ev.challenger
    if est is None:
        return result(Verdict.ERROR, "no challenger value measured")
    assert rule.threshold is not None
    return side(est, bound=rule.threshold, good_below=rule.kind in ("ceiling", "latency_slo"))


def _side(
    result: Callable[[Verdict, str], RuleResult],
    iv: Interval,
    *,
    bound: float,
    good_below: bool,
    levels: tuple[str, str],
    caveat: str | None,
) -> RuleResult:
    low, high = iv.ci_low, iv.ci_high
    fail_low, fail_high = iv.fail_bounds
    span = f"{levels[0]} CI [{low:.4g}, {high:.4g}] vs {bound:.4g}"
    passes = high <= bound if good_below else low > bound
    fails = fail_low > bound if good_below else fail_high < bound
    if passes and caveat:
        return result(Verdict.INCONCLUSIVE, f"{span}: within, but {caveat}")
    if passes:
        return result(Verdict.PASS, f"{span}: wholly within")
    if fails:
        fail_span = "" if levels[1] == levels[0] else f" (family-wise {levels[1]} CI [{fail_low:.4g}, {fail_high:.4g}])"
        return result(Verdict.FAIL, f"{span}{fail_span}: wholly beyond")
    if (low > bound) if good_below else (high < bound):
        return result(
            Verdict.INCONCLUSIVE,
            f"{span}: beyond, but the family-wise {levels[1]} CI [{fail_low:.4g}, {fail_high:.4g}] is not",
        )
    return result(Verdict.INCONCLUSIVE, f"{span}: straddles the bound")


def decide(
    policy: Policy, evidence: dict[str, MetricEvidence], counts: Counts, policy_sha256: str | None = None
) -> Decision:
    """The overall verdict: intersection-union (every rule must pass), failing closed."""
    results = [
        judge_rule(rule, evidence.get(rule.metric), alpha=policy.alpha, fail_alpha=policy.fail_alpha)
        for rule in policy.rules
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
