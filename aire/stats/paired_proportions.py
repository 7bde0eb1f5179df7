"""The difference of two paired proportions (challenger accuracy - champion accuracy on the same
inputs) with Tango's score interval.

Tango, T. (1998) "Equivalence test and confidence interval for the difference in proportions for
the paired-sample design", Statistics in Medicine 17:891-908. Only the discordant pairs carry
information: ``b`` inputs only the challenger got right, ``c`` only the champion, out of ``n``.
For a hypothesised difference ``theta`` the score statistic is

    z(theta) = (b - c - n theta) / sqrt(n (2 q + theta (1 - theta)))

with ``q`` the maximum-likelihood estimate of P(only the champion right) under the constraint
that the difference is ``theta`` (a closed-form root of a quadratic). The interval is every theta
with |z(theta)| <= z_{1 - alpha/2}.

Why not a Wald interval (plain or Agresti-Min adjusted): its variance is estimated at the observed
point, so with few, lopsided discordant pairs (accuracy near 1) its lower tail is too short and a
non-inferiority PASS at the margin comes too often (4-5% at a nominal 2.5%). The score interval
estimates the variance under each hypothesis instead; tests/unit/test_paired_proportions.py checks
its one-sided error by exact enumeration over every possible table.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def restricted_q(b: np.ndarray | float, c: np.ndarray | float, n: np.ndarray | float, theta: float) -> np.ndarray:
    """MLE of P(only the champion right) when P(only challenger) - P(only champion) = theta."""
    b, c, n = np.asarray(b, float), np.asarray(c, float), np.asarray(n, float)
    w = -b - c + (2 * n - b + c) * theta
    disc = w * w + 8 * n * c * theta * (1 - theta)
    return (np.sqrt(np.maximum(disc, 0.0)) - w) / (4 * n)


def score_z(b: np.ndarray | float, c: np.ndarray | float, n: np.ndarray | float, theta: float) -> np.ndarray:
    """Tango's score statistic for H0: difference == theta (vectorised over tables).

    Decreasing in theta, so "the interval's lower bound is above -m" is exactly "z(-m) > z_crit":
    the exact enumeration tests use that to judge every table at once.
    """
    b, c, n = np.asarray(b, float), np.asarray(c, float), np.asarray(n, float)
    q = restricted_q(b, c, n, theta)
    var = n * (2 * q + theta * (1 - theta))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (b - c - n * theta) / np.sqrt(var)
    # var == 0 only where the numerator is 0 too (theta = 0 and no discordant pair): no evidence.
    return np.where(var > 0, z, 0.0)


def tango_interval(b: int, c: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Two-sided 1 - alpha score interval for (b - c) / n."""
    from scipy import optimize

    if n <= 0 or b < 0 or c < 0 or b + c > n:
        raise ValueError(f"not a paired table: b={b}, c={c}, n={n}")
    crit = float(special.ndtri(1 - alpha / 2))
    est = (b - c) / n
    eps = 1e-12

    def f(theta: float, target: float) -> float:
        return float(score_z(b, c, n, theta)) - target

    # z(theta) falls from +inf-ish near -1 to -inf-ish near +1; each bound is one root.
    lo_edge, hi_edge = -1.0 + eps, 1.0 - eps
    low = -1.0 if f(lo_edge, crit) <= 0 else optimize.brentq(f, lo_edge, est, args=(crit,), xtol=1e-10)
    high = 1.0 if f(hi_edge, -crit) >= 0 else optimize.brentq(f, est, hi_edge, args=(-crit,), xtol=1e-10)
    return max(-1.0, low), min(1.0, high)


def latent_cells(p_champion: float, p_challenger: float, rho: float) -> tuple[float, float]:
    """P(only challenger right), P(only champion right) when both arms' correctness comes from a
    latent bivariate normal with correlation ``rho`` (a model of "the same inputs are hard for both").

    Shared by the enumeration tests, the simulations and the benchmark.
    """
    from scipy import stats

    za, zb = special.ndtri(p_champion), special.ndtri(p_challenger)
    both = float(stats.multivariate_normal(mean=[0, 0], cov=[[1, rho], [rho, 1]]).cdf([za, zb]))
    return max(p_challenger - both, 0.0), max(p_champion - both, 0.0)


def table_log_pmf(n: int, p_b: float, p_c: float, tail: float = 1e-13) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every table (b, c) with b + c <= n and its log probability under the trinomial.

    Tables with more discordant pairs than the binomial's 1 - ``tail`` quantile are left out (their
    total probability is below ``tail``), which keeps n = 1,000 at high accuracy cheap.
    Returns ``b``, ``c`` (grids) and ``logp`` (-inf outside b + c <= n).
    """
    top = n if tail <= 0 else min(n, int(special.bdtrik(1 - tail, n, p_b + p_c)) + 2)
    b, c = np.meshgrid(np.arange(top + 1), np.arange(top + 1), indexing="ij")
    rest = n - b - c
    ok = rest >= n - top
    p_r = 1.0 - p_b - p_c
    safe_rest = np.where(ok, rest, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = (
            special.gammaln(n + 1)
            - special.gammaln(b + 1)
            - special.gammaln(c + 1)
            - special.gammaln(safe_rest + 1)
            + special.xlogy(b, p_b)
            + special.xlogy(c, p_c)
            + special.xlogy(safe_rest, p_r)
        )
    return b, c, np.where(ok, logp, -math.inf)
