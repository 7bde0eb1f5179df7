"""The gate's levels: FAIL across several critical rules is controlled family-wise (Bonferroni),
reasons print the real confidence level, and a rule's direction comes from its evaluator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import special

from aire.gate.policy import (
    Counts,
    FloorRule,
    Interval,
    MetricEvidence,
    NonInferiorityRule,
    Policy,
    PolicyError,
    Rule,
    Verdict,
    decide,
    judge_rule,
    level_text,
    resolve_directions,
)
from aire.stats.paired_proportions import latent_cells, score_z, table_log_pmf

ENOUGH = Counts(n_pairs=500)
MARGIN = 0.03


def _ni(metric: str, critical: bool = True) -> Rule:
    return NonInferiorityRule(metric=metric, margin=MARGIN, critical=critical)


def _delta(low: float, high: float, fail: tuple[float, float] | None = None) -> MetricEvidence:
    fl, fh = fail if fail else (None, None)
    return MetricEvidence(delta=Interval(value=(low + high) / 2, ci_low=low, ci_high=high, fail_low=fl, fail_high=fh))


def test_fail_alpha_is_bonferroni_over_critical_rules() -> None:
    policy = Policy(rules=[_ni("a/mean"), _ni("b/mean"), _ni("c/mean"), _ni("d/mean", critical=False)])
    assert policy.n_critical == 3
    assert policy.fail_alpha == pytest.approx(0.05 / 3)
    d = decide(policy, {}, ENOUGH)
    assert "Bonferroni over 3 critical rules" in d.multiplicity and d.fail_alpha == pytest.approx(0.05 / 3)


def test_fail_needs_the_family_wise_interval_beyond_the_bound() -> None:
    policy = Policy(rules=[_ni("a/mean"), _ni("b/mean")])
    fine = _delta(-0.01, 0.02)
    # Beyond at 95% but not at the family-wise level: INCONCLUSIVE, and the reason says why.
    half = decide(policy, {"a/mean": _delta(-0.08, -0.04, fail=(-0.09, -0.02)), "b/mean": fine}, ENOUGH)
    assert half.verdict is Verdict.INCONCLUSIVE
    assert any("family-wise 97.5% CI" in r for r in half.reasons)
    full = decide(policy, {"a/mean": _delta(-0.08, -0.04, fail=(-0.09, -0.035)), "b/mean": fine}, ENOUGH)
    assert full.verdict is Verdict.FAIL


def test_reasons_print_the_real_level() -> None:
    assert level_text(0.05) == "95%" and level_text(0.1) == "90%" and level_text(0.025) == "97.5%"
    r = judge_rule(_ni("a/mean"), _delta(-0.01, 0.02), alpha=0.1)
    assert r.verdict is Verdict.PASS and "90% CI" in r.reason and "95%" not in r.reason


def test_family_wise_false_fail_by_exact_enumeration() -> None:
    """k independent metrics, each truly at its non-inferiority bound: the chance that any critical
    rule FAILs is at most alpha/2 with the Bonferroni level, well above it without."""
    alpha, base, rho, n = 0.05, 0.9, 0.7, 500
    p_b, p_c = latent_cells(base, base - MARGIN, rho)
    b, c, logp = table_log_pmf(n, p_b, p_c)
    p = np.exp(logp)
    z = score_z(b, c, n, -MARGIN)  # FAIL iff the upper bound is below -margin iff z(-margin) < -crit
    for k in (2, 3, 5):
        per_rule = float(p[z < -special.ndtri(1 - Policy(alpha=alpha, rules=[_ni("x")] * k).fail_alpha / 2)].sum())
        uncorrected = float(p[z < -special.ndtri(1 - alpha / 2)].sum())
        family = 1 - (1 - per_rule) ** k
        assert family <= alpha / 2 + 0.002, (k, family)
        assert 1 - (1 - uncorrected) ** k > alpha / 2 + 0.015, (k, uncorrected)  # the union without control


def test_direction_comes_from_the_evaluator() -> None:
    policy = Policy(rules=[_ni("loss/mean"), _ni("exact_match/mean")])
    resolved = resolve_directions(policy, {"loss/mean": False, "exact_match/mean": True})
    assert [r.higher_is_better for r in resolved.rules] == [False, True]
    # A lower-is-better metric whose challenger is higher (worse) by 0.05..0.08 fails non-inferiority.
    worse = MetricEvidence(delta=Interval(value=0.06, ci_low=0.05, ci_high=0.08), higher_is_better=False)
    assert judge_rule(resolved.rules[0], worse).verdict is Verdict.FAIL
    # Without resolution the evidence's own direction is used, never "higher is better" by default.
    assert judge_rule(policy.rules[0], worse).verdict is Verdict.FAIL


def test_contradicting_direction_is_a_policy_error_naming_the_rule() -> None:
    policy = Policy(
        rules=[_ni("exact_match/mean"), FloorRule(metric="loss/mean", threshold=1.0, higher_is_better=True)]
    )
    with pytest.raises(PolicyError) as exc:
        resolve_directions(policy, {"loss/mean": False}, Path("gates/x.yaml"))
    msg = str(exc.value)
    assert "rules[1].higher_is_better" in msg and "gates/x.yaml" in msg and exc.value.exit_code == 3
    # And the gate itself refuses to judge such a rule if it is handed one.
    ev = MetricEvidence(challenger=Interval(value=0.5, ci_low=0.4, ci_high=0.6), higher_is_better=False)
    assert judge_rule(policy.rules[1], ev).verdict is Verdict.ERROR
