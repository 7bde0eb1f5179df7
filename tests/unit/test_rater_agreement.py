"""Judge agreement statistics: kappa equals scikit-learn's on a set with a known kappa, the bootstrap
interval covers the true kappa at its nominal rate (simulated, at n = 100, at high agreement and at
small n), undefined kappa is NaN, and a judge that rewards length shows a positive length bias."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from aire.stats.rater_agreement import agreement, kappa_of

YN = ("no", "yes")


def known_set() -> tuple[list[str], list[str]]:
    # 100 items, humans 50/50; the judge agrees on 40 + 40: p_o = 0.8, p_e = 0.5, kappa = 0.6 exactly.
    human = ["yes"] * 50 + ["no"] * 50
    judge = ["yes"] * 40 + ["no"] * 10 + ["no"] * 40 + ["yes"] * 10
    return human, judge


def test_kappa_of_a_known_set_is_exact_and_matches_scikit_learn() -> None:
    human, judge = known_set()
    result = agreement(human, judge, YN)
    assert result.kappa == pytest.approx(0.6, abs=1e-12)
    assert result.kappa == pytest.approx(cohen_kappa_score(human, judge), abs=1e-12)
    assert result.accuracy == 0.8 and result.n == 100
    assert result.confusion == {"no": {"no": 40, "yes": 10}, "yes": {"no": 10, "yes": 40}}
    low, high = result.kappa_ci
    assert low < 0.6 < high and high - low < 0.4
    assert result.accuracy_ci[0] < 0.8 < result.accuracy_ci[1]


def test_three_labels_match_scikit_learn() -> None:
    rng = np.random.default_rng(4)
    labels = ("bad", "ok", "good")
    human = [labels[i] for i in rng.integers(0, 3, 200)]
    judge = [h if rng.random() < 0.7 else labels[rng.integers(0, 3)] for h in human]
    assert agreement(human, judge, labels).kappa == pytest.approx(cohen_kappa_score(human, judge), abs=1e-12)


def test_kappa_is_nan_when_both_raters_use_one_label() -> None:
    result = agreement(["yes"] * 10, ["yes"] * 10, YN)
    assert math.isnan(result.kappa) and result.accuracy == 1.0
    assert all(math.isnan(x) for x in result.kappa_ci)


def simulated_coverage(n: int, p_agree: float, p_yes: float, reps: int, seed: int) -> tuple[float, float]:
    """Share of bootstrap intervals that hold the population kappa, and that kappa."""
    rng = np.random.default_rng(seed)
    # Human ~ Bernoulli(p_yes); the judge copies the label with p_agree, else flips it.
    p_judge_yes = p_yes * p_agree + (1 - p_yes) * (1 - p_agree)
    expected = p_yes * p_judge_yes + (1 - p_yes) * (1 - p_judge_yes)
    true_kappa = (p_agree - expected) / (1 - expected)
    hits = 0
    for rep in range(reps):
        h = rng.random(n) < p_yes
        j = np.where(rng.random(n) < p_agree, h, ~h)
        result = agreement([YN[int(x)] for x in h], [YN[int(x)] for x in j], YN, resamples=999, seed=rep)
        low, high = result.kappa_ci
        hits += bool(low <= true_kappa <= high)
    return hits / reps, true_kappa


@pytest.mark.parametrize(
    ("n", "p_agree", "p_yes", "floor"),
    [
        (100, 0.8, 0.5, 0.91),  # moderate agreement
        (100, 0.95, 0.5, 0.90),  # high agreement, near the bound
        (30, 0.8, 0.5, 0.88),  # small n: the percentile bootstrap undercovers a little
        (100, 0.9, 0.8, 0.89),  # unbalanced labels
    ],
)
def test_bootstrap_interval_covers_the_true_kappa_near_its_nominal_rate(
    n: int, p_agree: float, p_yes: float, floor: float
) -> None:
    coverage, true_kappa = simulated_coverage(n, p_agree, p_yes, reps=300, seed=n)
    print(f"n={n} p_agree={p_agree} p_yes={p_yes}: true kappa {true_kappa:.3f}, 95% CI coverage {coverage:.3f}")
    assert floor <= coverage <= 0.99


def test_a_judge_that_rewards_length_shows_positive_length_bias() -> None:
    rng = np.random.default_rng(1)
    human = [YN[x] for x in rng.integers(0, 2, 200)]
    lengths = list(rng.integers(1, 200, 200))
    # Wrong answers that are long get a "yes" anyway.
    judge = ["yes" if (h == "yes" or ln > 120) else "no" for h, ln in zip(human, lengths, strict=True)]
    biased = agreement(human, judge, YN, lengths)
    assert biased.length_bias > 0.3 and biased.length_bias_p < 0.001
    fair = agreement(human, human, YN, lengths)
    assert math.isnan(fair.length_bias)  # no disagreement at all: nothing to correlate


def test_kappa_of_is_vectorised_over_resamples() -> None:
    h = np.array([[0, 1, 1, 0], [1, 1, 1, 1]])
    j = np.array([[0, 1, 0, 0], [1, 1, 1, 1]])
    out = kappa_of(h, j, 2)
    assert out[0] == pytest.approx(cohen_kappa_score(h[0], j[0])) and math.isnan(out[1])
