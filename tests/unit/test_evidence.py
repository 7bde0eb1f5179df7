"""From paired scores to the gate's evidence: which method is chosen, and the error rates of the
whole path the gate uses (compare -> decide), validated by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from aire.gate.evidence import PairedData, compare
from aire.gate.policy import (
    Counts,
    LatencyRelativeRule,
    MetricEvidence,
    NonInferiorityRule,
    Policy,
    Rule,
    Verdict,
    decide,
)
from aire.stats.sequential import fixed_n_plan
from aire.testing.simulation import mixture_pairs

ALPHA = 0.05
NI = NonInferiorityRule(metric="em/mean", margin=0.03)


def correlated(rng: np.random.Generator, n: int, p_a: float, p_b: float) -> tuple[np.ndarray, np.ndarray]:
    """0/1 scores of two models on the same inputs: mostly right and wrong on the same items."""
    return mixture_pairs(rng, n, p_a, p_b, keep=0.8)


def data(a: np.ndarray, b: np.ndarray, **kw: object) -> PairedData:
    return PairedData(
        ids=[str(i) for i in range(len(a))], quality={"em/mean": (a, b, True)}, counts=Counts(n_pairs=len(a)), **kw
    )


def test_binary_scores_use_mcnemar_with_t_and_bootstrap_beside_it() -> None:
    a, b = correlated(np.random.default_rng(1), 400, 0.9, 0.85)
    m = compare(data(a, b)).metrics["em/mean"]
    assert m.method == "mcnemar" and m.paired
    assert m.evidence.delta.value == pytest.approx(b.mean() - a.mean())
    methods = {d.method: d for d in m.supplementary}
    assert set(methods) == {"paired_t", "paired_bootstrap"}
    # The methods agree to within a fraction of the interval's width on a sample this size.
    width = m.evidence.delta.ci_high - m.evidence.delta.ci_low
    for d in methods.values():
        assert abs(d.ci_low - m.evidence.delta.ci_low) < 0.2 * width
    assert m.evidence.champion.value == pytest.approx(a.mean())


def test_continuous_scores_use_the_bootstrap_and_groups_use_cluster_robust() -> None:
    rng = np.random.default_rng(2)
    a = rng.random(300)
    b = a + rng.normal(0, 0.1, 300)
    assert compare(data(a, b)).metrics["em/mean"].method == "paired_bootstrap"
    groups = np.repeat(np.arange(30), 10)
    clustered = compare(data(a, b, groups=groups)).metrics["em/mean"]
    assert clustered.method == "cluster_robust" and "30 groups" in clustered.note


def test_unpaired_fallback_is_flagged() -> None:
    rng = np.random.default_rng(3)
    empty = np.array([], dtype=float)
    d = PairedData(
        ids=[],
        quality={"em/mean": (empty, empty, True)},
        unpaired_quality={"em/mean": ((rng.random(50) < 0.9).astype(float), (rng.random(60) < 0.7).astype(float))},
        counts=Counts(n_pairs=0, n_unpaired=110),
    )
    m = compare(d).metrics["em/mean"]
    assert m.method == "welch" and not m.paired and "Mann-Whitney" in m.note


def test_sequential_intervals_are_wider_and_looks_can_skip_the_extras() -> None:
    a, b = correlated(np.random.default_rng(4), 500, 0.9, 0.9)
    fixed = compare(data(a, b)).metrics["em/mean"].evidence.delta
    seq = compare(data(a, b), sequential=True).metrics["em/mean"]
    assert seq.method == "confidence_sequence"
    assert seq.evidence.delta.ci_high - seq.evidence.delta.ci_low > fixed.ci_high - fixed.ci_low
    cheap = compare(data(a, b), sequential=True, supplementary=False, latency=False).metrics["em/mean"]
    assert cheap.supplementary == [] and cheap.evidence.delta == seq.evidence.delta


def test_latency_percentiles_and_which_metrics_the_gate_judges() -> None:
    rng = np.random.default_rng(5)
    base = rng.lognormal(4, 0.3, 400)
    d = data(np.ones(400), np.ones(400), latency={"ttft_ms": (base, base + 20.0)})
    comp = compare(d, n_resamples=2000)
    p95 = comp.metrics["latency/ttft_ms/p95"]
    assert p95.kind == "latency" and p95.evidence.delta.value == pytest.approx(20.0)
    assert p95.evidence.delta.ci_low <= 20.0 <= p95.evidence.delta.ci_high
    assert set(comp.metrics) == {"em/mean"} | {f"latency/ttft_ms/p{q}" for q in (50, 95, 99)}
    # Quality metrics are always judged (no rule -> no PASS); latency only where a rule names it.
    assert set(comp.evidence({"latency/ttft_ms/p95"})) == {"em/mean", "latency/ttft_ms/p95"}
    # Too few samples for a p99 interval: unbounded, so a rule on it can only be INCONCLUSIVE.
    small = compare(data(np.ones(50), np.ones(50), latency={"ttft_ms": (base[:50], base[:50])}), n_resamples=500)
    assert math.isinf(small.metrics["latency/ttft_ms/p99"].evidence.challenger.ci_high)


def gate(a: np.ndarray, b: np.ndarray, rule: Rule, *, sequential: bool = False, n_min: int = 100) -> Verdict:
    policy = Policy(alpha=ALPHA, n_min=n_min, rules=[rule])
    comp = compare(data(a, b), alpha=ALPHA, sequential=sequential, n_resamples=200, supplementary=False, latency=False)
    return decide(policy, comp.evidence(set()), comp.counts).verdict


SIMS = 1000
TOL = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)  # three Monte Carlo standard errors


def test_aa_false_fail_rate_through_the_gate_fixed_n() -> None:
    """The verdict path the gate runs: McNemar interval -> non-inferiority rule -> decide."""
    rng = np.random.default_rng(6)
    rule = NonInferiorityRule(metric="em/mean", margin=0.0)  # hardest case: no margin
    fails = sum(gate(*correlated(rng, 300, 0.9, 0.9), rule) is Verdict.FAIL for _ in range(SIMS))
    assert fails / SIMS <= ALPHA + TOL


def test_aa_false_fail_rate_through_the_gate_with_a_look_every_batch() -> None:
    rng = np.random.default_rng(7)
    rule = NonInferiorityRule(metric="em/mean", margin=0.0)
    fails = 0
    for _ in range(SIMS):
        a, b = correlated(rng, 600, 0.9, 0.9)
        for n in range(50, 601, 50):  # peek after every batch of 50, stop at the first settled verdict
            verdict = gate(a[:n], b[:n], rule, sequential=True)
            if verdict is not Verdict.INCONCLUSIVE:
                break
        fails += verdict is Verdict.FAIL
    assert fails / SIMS <= ALPHA + TOL


def test_five_point_drop_is_failed_with_80_percent_power_at_the_planned_n() -> None:
    rng = np.random.default_rng(8)
    rule = NonInferiorityRule(metric="em/mean", margin=0.01)
    # The plan for this design: one-sided alpha/2 (the gate reads a two-sided 1 - alpha interval).
    n = fixed_n_plan(0.9, 0.01, alpha=ALPHA / 2, power=0.8, true_delta=-0.05)
    sims = 400
    fails = sum(gate(*correlated(rng, n, 0.9, 0.85), rule) is Verdict.FAIL for _ in range(sims))
    assert fails / sims >= 0.8 - 3 * math.sqrt(0.16 / sims)


def test_below_n_min_is_never_pass() -> None:
    rng = np.random.default_rng(9)
    verdicts = {gate(*correlated(rng, 60, 0.95, 0.99), NI, n_min=100) for _ in range(200)}
    assert Verdict.PASS not in verdicts and Verdict.INCONCLUSIVE in verdicts


def test_a_would_be_pass_with_8_clusters_is_inconclusive() -> None:
    """Too few clusters for a trusted cluster-robust interval: the caveat turns a PASS into INCONCLUSIVE."""
    rng = np.random.default_rng(10)

    def verdict(n_groups: int) -> tuple[Verdict, list[str]]:
        groups = np.repeat(np.arange(n_groups), 400 // n_groups)
        a = rng.random(400)
        b = a + rng.normal(0.0, 0.01, n_groups)[groups] + rng.normal(0, 0.02, 400)  # clearly within 0.03
        comp = compare(data(a, b, groups=groups), alpha=ALPHA, n_resamples=200, supplementary=False, latency=False)
        m = comp.metrics["em/mean"]
        assert m.method == "cluster_robust" and m.evidence.delta.ci_low > -0.03  # the interval alone would PASS
        d = decide(Policy(alpha=ALPHA, rules=[NI]), comp.evidence(set()), comp.counts)
        return d.verdict, d.reasons

    few, reasons = verdict(8)
    assert few is Verdict.INCONCLUSIVE and any("within, but only 8 clusters" in r for r in reasons)
    assert verdict(40)[0] is Verdict.PASS


def _latencies(rng: np.random.Generator, n: int, factor: float) -> PairedData:
    """TTFT-like latencies: lognormal, each challenger request correlated with its champion twin."""
    a = rng.lognormal(math.log(100), 0.4, n)
    b = factor * a * rng.lognormal(0, 0.1, n)
    return PairedData(ids=[str(i) for i in range(n)], latency={"ttft_ms": (a, b)}, counts=Counts(n_pairs=n))


def test_latency_relative_on_simulated_latencies() -> None:
    """latency_relative reads the ratio of the percentiles (challenger / champion) from the same
    paired resamples as the difference: PASS under x1.2, FAIL beyond it, never PASS on a tail too thin."""
    rng = np.random.default_rng(11)

    def judge(n: int, factor: float, metric: str = "latency/ttft_ms/p95") -> tuple[Verdict, MetricEvidence, str]:
        rules = [LatencyRelativeRule(metric=m, max_increase=0.2) for m in (metric, "latency/ttft_ms/p50")]
        policy = Policy(alpha=ALPHA, rules=rules)  # two critical rules: a FAIL reads 97.5% intervals
        comp = compare(_latencies(rng, n, factor), alpha=policy.alpha, fail_alpha=policy.fail_alpha, n_resamples=2000)
        d = decide(policy, comp.evidence({r.metric for r in rules}), comp.counts)
        return d.verdict, comp.metrics[metric].evidence, " ".join(d.reasons)

    same, ev, _ = judge(1000, 1.0)
    assert same is Verdict.PASS and ev.ratio.ci_high <= 1.2 and ev.ratio.ci_low <= 1.0 <= ev.ratio.ci_high
    assert ev.higher_is_better is False and ev.caveat is None
    slower, ev, reasons = judge(1000, 1.5)
    low, _ = ev.ratio.fail_bounds  # FAIL reads the family-wise (here 97.5%) interval
    assert slower is Verdict.FAIL and low > 1.2 and "family-wise 97.5% CI" in reasons
    assert ev.ratio.value == pytest.approx(1.5, rel=0.05)
    # p99 on 200 pairs: no distribution-free interval for that tail, so no PASS whatever the ratio.
    thin, ev, reasons = judge(200, 1.0, "latency/ttft_ms/p99")
    assert thin is Verdict.INCONCLUSIVE and ev.caveat is not None and "368 pairs" in ev.caveat
    assert "CI [0, inf] vs 1.2: straddles the bound" in reasons  # unbounded: neither PASS nor FAIL
