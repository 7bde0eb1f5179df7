"""The gate's verdicts: intersection-union over rules, and failing closed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aire.core.errors import EXIT_ERROR, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_PASS
from aire.gate.policy import (
    Counts,
    FloorRule,
    Interval,
    JudgeCheck,
    LatencyRelativeRule,
    LatencySLORule,
    MetricEvidence,
    NonInferiorityRule,
    Policy,
    PolicyError,
    Rule,
    Verdict,
    decide,
    load_policy,
)
from aire.stats.paired import paired_t
from aire.testing.simulation import mixture_pairs

REPO = Path(__file__).resolve().parents[2]
NI = NonInferiorityRule(metric="em/mean", margin=0.03)


def ev(delta: tuple[float, float], challenger: tuple[float, float] = (0.9, 0.95)) -> dict[str, MetricEvidence]:
    lo, hi = delta
    return {
        "em/mean": MetricEvidence(
            champion=Interval(value=0.9, ci_low=0.88, ci_high=0.92),
            challenger=Interval(value=sum(challenger) / 2, ci_low=challenger[0], ci_high=challenger[1]),
            delta=Interval(value=(lo + hi) / 2, ci_low=lo, ci_high=hi),
        )
    }


def policy(*rules: Rule, n_min: int = 100) -> Policy:
    return Policy(rules=list(rules or [NI]), n_min=n_min)


ENOUGH = Counts(n_pairs=500)


def test_exit_codes_are_the_ci_contract() -> None:
    assert [v.exit_code for v in Verdict] == [EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE, EXIT_ERROR]


@pytest.mark.parametrize(
    "delta, verdict",
    [((-0.01, 0.02), Verdict.PASS), ((-0.08, -0.04), Verdict.FAIL), ((-0.05, 0.01), Verdict.INCONCLUSIVE)],
)
def test_non_inferiority_reads_the_whole_interval(delta: tuple[float, float], verdict: Verdict) -> None:
    assert decide(policy(), ev(delta), ENOUGH).verdict is verdict


def test_non_critical_failure_is_inconclusive_not_fail() -> None:
    rule = NI.model_copy(update={"critical": False})
    assert decide(policy(rule), ev((-0.08, -0.04)), ENOUGH).verdict is Verdict.INCONCLUSIVE


def test_every_rule_must_pass() -> None:
    floor = FloorRule(metric="em/mean", threshold=0.95)
    d = decide(policy(NI, floor), ev((-0.01, 0.02), challenger=(0.90, 0.97)), ENOUGH)
    assert d.verdict is Verdict.INCONCLUSIVE and any("floor" in r for r in d.reasons)


def test_latency_rules() -> None:
    lat = {
        "ttft/p95": MetricEvidence(
            champion=Interval(value=100, ci_low=95, ci_high=105),
            challenger=Interval(value=130, ci_low=125, ci_high=140),
            delta=Interval(value=30, ci_low=22, ci_high=38),
            ratio=Interval(value=1.3, ci_low=1.22, ci_high=1.38),  # from the same paired resamples
        )
    }
    slo = LatencySLORule(metric="ttft/p95", threshold=150, higher_is_better=False)
    rel = LatencyRelativeRule(metric="ttft/p95", max_increase=0.2, higher_is_better=False)
    assert decide(policy(slo), lat, ENOUGH).verdict is Verdict.PASS
    assert decide(policy(rel), lat, ENOUGH).verdict is Verdict.FAIL  # x1.22..1.38 is beyond x1.2
    loose = rel.model_copy(update={"max_increase": 0.4})
    assert decide(policy(loose), lat, ENOUGH).verdict is Verdict.PASS  # x1.38 is within x1.4
    tight = slo.model_copy(update={"threshold": 120})
    assert decide(policy(tight), lat, ENOUGH).verdict is Verdict.FAIL


@pytest.mark.parametrize(
    "counts, fragment",
    [
        (Counts(n_pairs=50), "fewer than n_min"),
        (Counts(n_pairs=500, n_errors=60), "error rate"),
        (Counts(n_pairs=500, n_unpaired=60), "unpaired"),
    ],
)
def test_fails_closed_on_thin_or_dirty_data(counts: Counts, fragment: str) -> None:
    d = decide(policy(), ev((-0.01, 0.02)), counts)
    assert d.verdict is Verdict.INCONCLUSIVE and any(fragment in r for r in d.reasons)


def test_no_data_metric_without_rule_and_rule_without_metric() -> None:
    assert decide(policy(), {}, Counts(n_pairs=0)).verdict is Verdict.ERROR
    extra = {**ev((-0.01, 0.02)), "f1/mean": MetricEvidence()}
    d = decide(policy(), extra, ENOUGH)
    assert d.verdict is Verdict.INCONCLUSIVE and "metric f1/mean has no rule" in d.reasons
    orphan = FloorRule(metric="bleu/mean", threshold=0.1)
    assert decide(policy(NI, orphan), ev((-0.01, 0.02)), ENOUGH).verdict is Verdict.ERROR


def test_aa_simulation_never_fails_more_than_alpha_and_small_n_never_passes() -> None:
    """A/A comparisons through the real statistics: false FAIL rate at most alpha/2 + MC tolerance."""
    rng = np.random.default_rng(21)
    sims, fails, passes_small = 1000, 0, 0
    margin_zero = NonInferiorityRule(metric="em/mean", margin=0.0)
    for i in range(sims):
        n = 400 if i % 2 == 0 else 40
        a, b = mixture_pairs(rng, n, 0.9, 0.9, keep=0.8)
        d = paired_t(a, b) if (a != b).any() else None
        delta = (
            Interval(value=0.0, ci_low=0.0, ci_high=0.0)
            if d is None
            else Interval(value=d.delta, ci_low=d.ci_low, ci_high=d.ci_high)
        )
        evidence = {"em/mean": MetricEvidence(delta=delta)}
        verdict = decide(policy(margin_zero), evidence, Counts(n_pairs=n)).verdict
        if n == 400:
            fails += verdict is Verdict.FAIL
        else:
            passes_small += verdict is Verdict.PASS
    rate = fails / (sims / 2)
    assert rate <= 0.025 + 3 * np.sqrt(0.025 * 0.975 / (sims / 2))
    assert passes_small == 0


def test_shipped_policy_loads_and_is_versioned() -> None:
    pol, digest = load_policy(REPO / "gates" / "default.yaml")
    assert pol.name == "default" and len(digest) == 64 and any(r.kind == "non_inferiority" for r in pol.rules)


def test_unknown_policy_key_suggests(tmp_path: Path) -> None:
    path = tmp_path / "gate.yaml"
    path.write_text("alpah: 0.05\nrules: [{metric: em/mean, kind: floor, threshold: 0.9}]\n")
    with pytest.raises(PolicyError, match="did you mean: alpha"):
        load_policy(path)
    path.write_text("rules: [{metric: em/mean, kind: floor, treshold: 0.9}]\n")
    with pytest.raises(PolicyError, match=r"rules\[0\]\.treshold.*did you mean: threshold"):
        load_policy(path)
    path.write_text("rules: [{metric: em/mean, kind: floor}]\n")
    with pytest.raises(PolicyError, match=r"field 'rules\[0\]\.threshold': Field required"):
        load_policy(path)


@pytest.mark.parametrize(
    ("kappa", "verdict", "fragment"),
    [
        (None, Verdict.ERROR, "is not calibrated"),
        (0.45, Verdict.ERROR, "kappa 0.450 < the policy's min_kappa 0.6"),
        (0.6, Verdict.PASS, "every rule passed"),  # at the bound: calibrated enough
    ],
)
def test_min_kappa_makes_a_judged_metric_error_unless_its_judge_is_calibrated(
    kappa: float | None, verdict: Verdict, fragment: str
) -> None:
    gated = policy().model_copy(update={"min_kappa": 0.6})
    judges = {"em": JudgeCheck(judge="judge", judge_id="ab" * 32, kappa=kappa)}
    decision = decide(gated, ev((-0.01, 0.02)), ENOUGH, judges=judges)
    assert decision.verdict is verdict
    assert fragment in " ".join(decision.reasons)
    # Without min_kappa the same evidence passes whatever the calibration, and unjudged metrics are untouched.
    assert decide(policy(), ev((-0.01, 0.02)), ENOUGH, judges=judges).verdict is Verdict.PASS
    assert decide(gated, ev((-0.01, 0.02)), ENOUGH, judges={}).verdict is Verdict.PASS
