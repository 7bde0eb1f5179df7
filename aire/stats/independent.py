"""Two independent samples compared: the current window's scores against the reference window's.

Live traffic is not paired (the inputs of two windows differ), so the difference of means needs an
interval for independent samples. For 0/1 scores it is Newcombe's hybrid interval (Newcombe 1998,
method 10) built on exact Clopper-Pearson limits of each proportion, not on Wilson's: measured by
exact enumeration (tests/unit/test_independent.py), the Wilson-based one puts 3.0% of the mass beyond
a 95% interval's upper end at the margin (n = 20, p = 0.5; nominal 2.5%), the Clopper-Pearson-based
one at most 2.0% across n = 10..100, p = 0.5..1. A monitor rolls production back on this interval, so
it errs on the side of not acting. Other scores: Welch's interval (``aire.stats.paired.unpaired``).

Conventions as in aire.stats.paired: ``delta = current - reference``, a two-sided CI at ``1 - alpha``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from aire.stats.paired import Difference, unpaired


def proportions_difference(
    ref_k: ArrayLike, ref_n: ArrayLike, cur_k: ArrayLike, cur_n: ArrayLike, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(delta, low, high) of p_cur - p_ref, Newcombe's hybrid on Clopper-Pearson limits; counts may
    be arrays (broadcast), which is how the tests enumerate every outcome."""
    from statsmodels.stats.proportion import proportion_confint

    ref_k, ref_n, cur_k, cur_n = (np.asarray(a, dtype=float) for a in (ref_k, ref_n, cur_k, cur_n))
    if np.any(ref_n < 1) or np.any(cur_n < 1):
        raise ValueError("each window needs at least one scored value")
    p_cur, p_ref = cur_k / cur_n, ref_k / ref_n
    cur_low, cur_high = proportion_confint(cur_k, cur_n, alpha=alpha, method="beta")
    ref_low, ref_high = proportion_confint(ref_k, ref_n, alpha=alpha, method="beta")
    delta = p_cur - p_ref
    low = delta - np.sqrt((p_cur - cur_low) ** 2 + (ref_high - p_ref) ** 2)
    high = delta + np.sqrt((cur_high - p_cur) ** 2 + (p_ref - ref_low) ** 2)
    return delta, np.maximum(-1.0, low), np.minimum(1.0, high)


def independent_difference(reference: np.ndarray, current: np.ndarray, alpha: float = 0.05) -> Difference:
    """current - reference of two independent samples (NaN dropped): proportions when both are 0/1."""
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[~np.isnan(ref)], cur[~np.isnan(cur)]
    binary = all(np.isin(a, (0.0, 1.0)).all() for a in (ref, cur))
    if not binary:
        return unpaired(ref, cur, alpha=alpha)
    delta, low, high = proportions_difference(int(ref.sum()), len(ref), int(cur.sum()), len(cur), alpha)
    return Difference(
        method="newcombe",
        delta=float(delta),
        ci_low=float(low),
        ci_high=float(high),
        n=min(len(ref), len(cur)),
        paired=False,
        note=f"independent windows: {int(cur.sum())}/{len(cur)} vs {int(ref.sum())}/{len(ref)}",
    )
