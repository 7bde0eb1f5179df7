"""The live-quality interval (aire.stats.independent): its error rate at the margin, by exact enumeration
of every outcome of two binomial windows, at small n, at high accuracy and at the monitor's severe level."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.stats import binom

from aire.stats.independent import independent_difference, proportions_difference


def fail_probability(n_ref: int, n_cur: int, p_ref: float, margin: float, alpha: float, interval=None) -> float:
    """P(the interval's upper end < -margin) when the current window is exactly ``margin`` worse: the
    chance that a non-inferiority check FAILs a version that is (just) within its margin."""
    p_cur = max(0.0, p_ref - margin)
    x = np.arange(n_ref + 1)[:, None]
    y = np.arange(n_cur + 1)[None, :]
    _, _, high = (interval or proportions_difference)(x, n_ref, y, n_cur, alpha)
    mass = binom.pmf(x, n_ref, p_ref) * binom.pmf(y, n_cur, p_cur)
    return float(mass[high < -margin].sum())


@pytest.mark.parametrize("alpha", [0.05, 0.0005])  # the policy's alpha and the monitor's severe level
@pytest.mark.parametrize("n_ref,n_cur", [(10, 10), (20, 20), (60, 60), (100, 100), (200, 40), (30, 200)])
def test_false_fail_rate_at_the_margin_is_within_alpha(n_ref: int, n_cur: int, alpha: float) -> None:
    worst = max(
        fail_probability(n_ref, n_cur, p, m, alpha)
        for p in (0.5, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
        for m in (0.03, 0.05, 0.1)
    )
    assert worst <= alpha / 2, f"one-sided FAIL rate {worst:.5f} > {alpha / 2} at n={n_ref}/{n_cur}"


def test_the_wilson_based_newcombe_interval_would_not_hold() -> None:
    """Why the Clopper-Pearson limits: statsmodels' Newcombe (Wilson) interval FAILs 3.0% at the margin."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    def wilson(x, n_ref, y, n_cur, alpha):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bounds = np.vectorize(
                lambda a, b: confint_proportions_2indep(b, n_cur, a, n_ref, method="newcomb", alpha=alpha)
            )(*np.broadcast_arrays(x, y))
        return None, bounds[0], bounds[1]

    assert fail_probability(20, 20, 0.5, 0.03, 0.05, interval=wilson) > 0.028
    assert fail_probability(20, 20, 0.5, 0.03, 0.05) <= 0.025


def test_a_real_drop_fails_even_at_the_severe_level() -> None:
    # The demo's silent switch: every answer right before, 79 of 100 after.
    _, _, high = proportions_difference(100, 100, 79, 100, 0.0005)
    assert high < -0.03
    # Power by enumeration, a 20-point drop from 99% at the severe level: 200 vs 200 rows (the demo's
    # windows) FAIL it 99.6% of the time; 100 vs 100 only 73% (a run that misses, the next catches).
    for n, power in ((200, 0.99), (100, 0.70)):
        x, y = np.arange(n + 1)[:, None], np.arange(n + 1)[None, :]
        _, _, high = proportions_difference(x, n, y, n, 0.0005)
        mass = binom.pmf(x, n, 0.99) * binom.pmf(y, n, 0.79)
        assert mass[high < -0.03].sum() > power


def test_edges_and_other_scores() -> None:
    same = independent_difference(np.ones(100), np.ones(100))
    assert same.method == "newcombe" and same.ci_low < 0 < same.ci_high and same.delta == 0
    tiny = independent_difference(np.ones(1), np.zeros(1))
    assert tiny.ci_low >= -1.0 and tiny.ci_high <= 1.0 and tiny.ci_high > -0.03  # one sample proves nothing
    with_nan = independent_difference(np.array([1.0, np.nan, 1.0]), np.array([0.0, 1.0]))
    assert with_nan.note == "independent windows: 1/2 vs 2/2"
    graded = independent_difference(np.array([0.5, 0.75, 1.0, 0.25]), np.array([0.0, 0.25, 0.5, 0.25]))
    assert graded.method == "welch" and graded.delta == pytest.approx(-0.375)
    with pytest.raises(ValueError):
        proportions_difference(0, 0, 1, 1)
