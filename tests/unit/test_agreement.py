"""Traffic has no references: the challenger is scored against the champion's output (agreement
metrics). Through the gate's own path (compare -> decide) on paired data, with no network."""

from __future__ import annotations

import numpy as np
import pytest

from aire.core.types import Verdict
from aire.gate.evidence import PairedData, compare
from aire.gate.policy import Counts, FloorRule, Policy, decide
from aire.stats.intervals import mean_ci

KEY = "agreement_exact/mean"


def _data(agree: np.ndarray) -> PairedData:
    return PairedData(
        ids=[str(i) for i in range(len(agree))], agreement={KEY: agree}, counts=Counts(n_pairs=len(agree))
    )


def test_agreement_is_a_wilson_interval_on_the_challenger_only() -> None:
    agree = np.array([1.0] * 190 + [0.0] * 10)
    m = compare(_data(agree), latency=False).metrics[KEY]
    assert m.kind == "agreement" and m.method == "wilson"
    assert m.evidence.champion is None and m.evidence.delta is None and m.evidence.higher_is_better is True
    _, low, high = mean_ci(agree)
    assert m.evidence.challenger is not None
    assert (m.evidence.challenger.ci_low, m.evidence.challenger.ci_high) == pytest.approx((low, high))


@pytest.mark.parametrize(
    ("agreeing", "verdict"),
    [(200, Verdict.PASS), (190, Verdict.PASS), (150, Verdict.FAIL), (182, Verdict.INCONCLUSIVE)],
)
def test_a_floor_on_agreement_decides_like_any_floor(agreeing: int, verdict: Verdict) -> None:
    """200 inputs, floor 0.9: 190/200 has a 95% Wilson interval [0.91, 0.97] (PASS); 182/200 straddles."""
    agree = np.array([1.0] * agreeing + [0.0] * (200 - agreeing))
    policy = Policy(rules=[FloorRule(metric=KEY, threshold=0.9)], n_min=100)
    comparison = compare(_data(agree), alpha=policy.alpha, fail_alpha=policy.fail_alpha, latency=False)
    assert decide(policy, comparison.evidence({KEY}), comparison.counts).verdict is verdict


def test_an_agreement_metric_without_a_rule_blocks_a_pass() -> None:
    policy = Policy(rules=[FloorRule(metric="other/mean", threshold=0.5)], n_min=10)
    comparison = compare(_data(np.ones(50)), latency=False)
    decision = decide(policy, comparison.evidence(set()), comparison.counts)
    assert decision.verdict is not Verdict.PASS
