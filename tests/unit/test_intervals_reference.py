"""aire.stats.intervals computes its intervals with scipy.special (a third of scipy.stats' import time,
which every run pays); these tests pin them to the libraries' own implementations, number for number:
Wilson to statsmodels' ``proportion_confint(method="wilson")``, the quantile CI to scipy's
``quantile_test(...).confidence_interval()``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from aire.stats.intervals import mean_ci, quantile_ci, quantile_ci_min_n


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
def test_wilson_is_statsmodels_wilson(confidence: float) -> None:
    for n in (1, 2, 3, 5, 10, 37, 100, 1000):
        for k in range(n + 1):
            _, low, high = mean_ci(np.array([1.0] * k + [0.0] * (n - k)), confidence)
            ref_low, ref_high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
            assert (low, high) == pytest.approx((ref_low, ref_high), abs=1e-12), (n, k)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_quantile_ci_is_scipys_order_statistic_interval(q: float) -> None:
    rng = np.random.default_rng(7)
    for n in (2, 5, 20, 71, 72, 100, 367, 368, 1000):
        x = rng.lognormal(size=n)
        _, low, high = quantile_ci(x, q)
        ref = stats.quantile_test(x, q=float(np.quantile(x, q)), p=q).confidence_interval(0.95)
        if low is None:
            # scipy says the same with a NaN side: the data cannot bound this tail at this n.
            assert math.isnan(ref.low) or math.isnan(ref.high), (n, q)
            assert n < quantile_ci_min_n(q), (n, q)
        else:
            assert (low, high) == pytest.approx((ref.low, ref.high)), (n, q)
