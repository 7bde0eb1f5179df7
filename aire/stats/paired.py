"""Champion vs challenger statistics: paired differences with confidence intervals.

The building blocks of the promotion gate. Everything here is a pure function of arrays;
distributions and tests come from scipy and statsmodels, not from hand-written formulas.

Conventions: ``delta = challenger - champion``, so a positive delta means the challenger scores higher.
A CI is two-sided at ``1 - alpha``; a non-inferiority decision at level alpha/2 per side reads it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import BaseModel

from aire.stats.paired_proportions import tango_interval

Method = Literal[
    "paired_t",
    "paired_bootstrap",
    "cluster_robust",
    "mcnemar",
    "welch",
    "mann_whitney",
    "confidence_sequence",
    "newcombe",
]


class Bounds(BaseModel):
    """An estimate with its interval and, where asked, the same at the FAIL level."""

    value: float
    ci_low: float
    ci_high: float
    fail_low: float | None = None
    fail_high: float | None = None


class Difference(BaseModel):
    """An estimate of challenger - champion with its confidence interval."""

    method: Method
    delta: float
    ci_low: float
    ci_high: float
    n: int  # pairs (or, unpaired, the smaller arm)
    p_value: float | None = None  # of H0: delta == 0
    paired: bool = True
    note: str = ""
    # The same interval at the FAIL level, where the function computed it (latency percentiles).
    fail_low: float | None = None
    fail_high: float | None = None
    ratio: Bounds | None = None  # challenger / champion (latency percentiles, from the same resamples)
    # Why a PASS read from this interval cannot be trusted (too few clusters, too few samples for a
    # tail percentile); the evidence passes it to the gate, which then says INCONCLUSIVE instead.
    caveat: str | None = None


# Below this many pairs that differ, the BCa interval of a mean difference undercovers: 89-91% with
# 5-8 differing pairs of 100 (token-F1-like scores, most pairs tied), 93% with 12-16, 94% with 26-31,
# and 92-93% on continuous skewed differences at n = 30-49 (2,000 simulations each; the measurements
# are in tests/unit/test_comparison.py). It is widened there (see ``paired_bootstrap``).
FEW_DIFFERING_PAIRS = 50
# Below this many clusters a cluster-robust interval is not trusted for a PASS, even with t(G - 1)
# critical values: the sandwich variance is itself too noisy (Cameron & Miller 2015 put the usual
# rule of thumb at 30-50 balanced clusters; fewer or unbalanced ones call for a wild bootstrap).
MIN_CLUSTERS = 30


def _paired_arrays(champion: np.ndarray, challenger: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired arrays must be 1-d and of equal length, got {a.shape} and {b.shape}")
    keep = ~(np.isnan(a) | np.isnan(b))  # a pair with either side unscored carries no paired evidence
    return a[keep], b[keep]


def paired_t(champion: np.ndarray, challenger: np.ndarray, alpha: float = 0.05) -> Difference:
    """Mean paired difference with a Student-t interval (scipy)."""
    from scipy import stats

    a, b = _paired_arrays(champion, challenger)
    d = b - a
    n = len(d)
    if n < 2:
        raise ValueError("a paired t interval needs at least 2 pairs")
    mean = float(d.mean())
    sem = float(stats.sem(d))
    if sem == 0.0:  # every pair differs by the same amount: no sampling spread to report
        return Difference(method="paired_t", delta=mean, ci_low=mean, ci_high=mean, n=n, p_value=None)
    low, high = stats.t.interval(1 - alpha, df=n - 1, loc=mean, scale=sem)
    p = float(stats.ttest_rel(b, a).pvalue)
    return Difference(method="paired_t", delta=mean, ci_low=float(low), ci_high=float(high), n=n, p_value=p)


def _adjusted_t(d: np.ndarray, alpha: float, scale: float) -> tuple[float, float]:
    """The paired t interval after adding pseudo-pairs: half a pair at +scale, half at -scale and one
    at 0 (for 0/1 scores, scale 1, this is Agresti and Min's adjustment for paired proportions).

    It keeps an interval from trusting a spread seen on a handful of differing pairs: with 5-8 of 100
    pairs differing the plain t interval missed on one side 3.5-5.8% of the time (nominal 2.5%).
    """
    from scipy import special

    n = len(d)
    x = np.concatenate([d, [scale, -scale, 0.0]])
    w = np.concatenate([np.ones(n), [0.5, 0.5, 1.0]])
    size = n + 2.0
    centre = float(np.sum(w * x) / size)
    var = float(np.sum(w * (x - centre) ** 2) / (size - 1))
    half = float(special.stdtrit(n - 1, 1 - alpha / 2)) * math.sqrt(var / size)
    return centre - half, centre + half


def paired_bootstrap(
    champion: np.ndarray,
    challenger: np.ndarray,
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Difference:
    """Mean paired difference with a seeded BCa bootstrap interval (scipy.stats.bootstrap).

    Fewer than ``FEW_DIFFERING_PAIRS`` pairs that differ (small n, or most pairs tied: sparse
    token-F1-like scores) and BCa undercovers; the interval is then the hull of BCa and the adjusted
    paired t (``_adjusted_t``, pseudo-pairs at +-the largest difference seen), and the note says so.
    """
    from scipy import stats

    a, b = _paired_arrays(champion, challenger)
    d = b - a
    n = len(d)
    if n < 2:
        raise ValueError("a bootstrap interval needs at least 2 pairs")
    mean = float(d.mean())
    differing = int(np.count_nonzero(d))

    def interval(method: str) -> tuple[float, float]:
        res = stats.bootstrap(
            (d,),
            np.mean,
            n_resamples=n_resamples,
            confidence_level=1 - alpha,
            method=method,
            rng=np.random.default_rng(seed),
            vectorized=True,
        )
        return float(res.confidence_interval.low), float(res.confidence_interval.high)

    constant = bool(np.all(d == d[0]))
    if constant:  # no resampling spread at all
        low = high = mean
    else:
        low, high = interval("BCa")
        if not (math.isfinite(low) and math.isfinite(high)):  # BCa degenerates on very lumpy data
            low, high = interval("percentile")
    note = ""
    if differing < FEW_DIFFERING_PAIRS or constant:
        # The scale of the pseudo-pairs: the largest difference seen; with every pair tied, the
        # range of the scores (a tie on 100 items is not proof of equality).
        scale = float(np.abs(d).max()) or float(np.ptp(np.concatenate([a, b])))
        if scale > 0:
            adj_low, adj_high = _adjusted_t(d, alpha, scale)
            low, high = min(low, adj_low), max(high, adj_high)
        note = (
            f"only {differing} of {n} pairs differ (BCa undercovers below {FEW_DIFFERING_PAIRS}): "
            "hull of BCa and the adjusted paired t"
        )
    return Difference(method="paired_bootstrap", delta=mean, ci_low=low, ci_high=high, n=n, note=note)


def cluster_robust(champion: np.ndarray, challenger: np.ndarray, groups: np.ndarray, alpha: float = 0.05) -> Difference:
    """Mean paired difference with a cluster-robust standard error (statsmodels OLS, clustered).

    For samples that share a group (several questions about one document, one conversation):
    treating them as independent would make the interval too narrow. Critical values and the p-value
    come from t with G - 1 degrees of freedom (statsmodels' ``use_t=True`` with clustered errors sets
    ``df_resid_inference = n_groups - 1``; the variance has its CR1 factor G/(G-1) (N-1)/(N-K)): with
    8 clusters normal critical values covered 90.8%. Below ``MIN_CLUSTERS`` the result carries a
    caveat: the gate does not PASS on it.
    """
    import statsmodels.api as sm

    a, b = np.asarray(champion, dtype=float), np.asarray(challenger, dtype=float)
    g = np.asarray(groups)
    keep = ~(np.isnan(a) | np.isnan(b))
    d, g = (b - a)[keep], g[keep]
    n_groups = len(np.unique(g))
    if n_groups < 2:
        raise ValueError("cluster-robust errors need at least 2 groups")
    fit = sm.OLS(d, np.ones((len(d), 1))).fit(cov_type="cluster", cov_kwds={"groups": g}, use_t=True)
    low, high = fit.conf_int(alpha=alpha)[0]
    caveat = None
    if n_groups < MIN_CLUSTERS:
        caveat = f"only {n_groups} clusters (a cluster-robust interval needs at least {MIN_CLUSTERS} to be trusted)"
    return Difference(
        method="cluster_robust",
        delta=float(fit.params[0]),
        ci_low=float(low),
        ci_high=float(high),
        n=len(d),
        p_value=float(fit.pvalues[0]),
        note=f"{n_groups} groups, t({n_groups - 1}) critical values",
        caveat=caveat,
    )


def mcnemar(champion: np.ndarray, challenger: np.ndarray, alpha: float = 0.05) -> Difference:
    """Difference of two paired proportions: McNemar's test (statsmodels; exact binomial when fewer
    than 25 pairs disagree) for the p-value, and Tango's score interval for the difference."""
    from statsmodels.stats.contingency_tables import mcnemar as mcnemar_test

    a, b = _paired_arrays(champion, challenger)
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("McNemar needs 0/1 scores")
    n = len(a)
    if n == 0:
        raise ValueError("no pairs")
    only_champion = int(((a == 1) & (b == 0)).sum())
    only_challenger = int(((a == 0) & (b == 1)).sum())
    both = int(((a == 1) & (b == 1)).sum())
    neither = n - only_champion - only_challenger - both
    discordant = only_champion + only_challenger
    exact = discordant < 25
    test = mcnemar_test([[both, only_champion], [only_challenger, neither]], exact=exact, correction=not exact)
    delta = (only_challenger - only_champion) / n
    # Tango's score interval (aire.stats.paired_proportions): a Wald interval, even Agresti-Min adjusted,
    # gave a non-inferiority PASS at the margin 4-5% of the time near 98% accuracy (nominal 2.5%).
    low, high = tango_interval(only_challenger, only_champion, n, alpha)
    return Difference(
        method="mcnemar",
        delta=delta,
        ci_low=low,
        ci_high=high,
        n=n,
        p_value=float(test.pvalue),
        note=f"{discordant} discordant pairs ({'exact' if exact else 'chi-square'} test)",
    )


def unpaired(champion: np.ndarray, challenger: np.ndarray, alpha: float = 0.05) -> Difference:
    """Welch's interval for the difference of means, for when pairing is impossible.

    Flagged ``paired=False``: it ignores the correlation a shared input creates and is wider.
    The Mann-Whitney p-value is reported in the note as a distribution-free check.
    """
    from scipy import stats

    a = np.asarray(champion, dtype=float)
    b = np.asarray(challenger, dtype=float)
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if min(len(a), len(b)) < 2:
        raise ValueError("an unpaired comparison needs at least 2 values per arm")
    res = stats.ttest_ind(b, a, equal_var=False)
    ci = res.confidence_interval(confidence_level=1 - alpha)
    mw = stats.mannwhitneyu(b, a, alternative="two-sided")
    return Difference(
        method="welch",
        delta=float(b.mean() - a.mean()),
        ci_low=float(ci.low),
        ci_high=float(ci.high),
        n=min(len(a), len(b)),
        p_value=float(res.pvalue),
        paired=False,
        note=f"unpaired fallback; Mann-Whitney p={float(mw.pvalue):.3g}",
    )


def _percentile_draws(
    a: np.ndarray, b: np.ndarray, qs: Sequence[float], n_resamples: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each arm's percentiles in the same seeded paired resamples: (champion, challenger), each
    (n_resamples, len(qs))."""
    n = len(a)
    rng = np.random.default_rng(seed)
    # Resample in chunks: one (n_resamples x n) index matrix is 80 MB at n = 1,000.
    chunk = max(1, 2_000_000 // n)
    qa = np.empty((n_resamples, len(qs)))
    qb = np.empty((n_resamples, len(qs)))
    for start in range(0, n_resamples, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_resamples - start), n))
        qa[start : start + len(idx)] = np.quantile(a[idx], qs, axis=1).T
        qb[start : start + len(idx)] = np.quantile(b[idx], qs, axis=1).T
    return qa, qb


def _mover(
    est_a: float,
    est_b: float,
    arm_a: tuple[float | None, float | None],
    arm_b: tuple[float | None, float | None],
    r: float,
) -> tuple[float, float]:
    """MOVER interval (Zou & Donner 2008) for est_b - est_a from each arm's own interval and the
    correlation r of the two estimates: each side adds the two arms' distances to their bounds in
    quadrature. A side whose arm bound is missing (None) is unbounded."""

    def reach(x: float, y: float) -> float:
        return math.sqrt(max(x * x + y * y - 2 * r * x * y, 0.0))

    (la, ua), (lb, ub) = arm_a, arm_b
    d = est_b - est_a
    low = -math.inf if lb is None or ua is None else d - reach(est_b - lb, ua - est_a)
    high = math.inf if ub is None or la is None else d + reach(ub - est_b, est_a - la)
    return low, high


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.clip(np.corrcoef(x, y)[0, 1], -1.0, 1.0))


Span = tuple[float, float]


def _percentile_bounds(
    a: np.ndarray, b: np.ndarray, da: np.ndarray, db: np.ndarray, q: float, positive: bool, level: float
) -> tuple[Span, Span]:
    """(difference, ratio) bounds of the q percentile at one two-sided level: the hull of the paired
    bootstrap (draws ``da``, ``db``) and the MOVER interval from each arm's order-statistic CI."""
    from aire.stats.intervals import quantile_ci

    tails = [level / 2, 1 - level / 2]
    ea, eb = float(np.quantile(a, q)), float(np.quantile(b, q))
    _, la, ua = quantile_ci(a, q, 1 - level)
    _, lb, ub = quantile_ci(b, q, 1 - level)
    boot_low, boot_high = (float(x) for x in np.quantile(db - da, tails))
    mover_low, mover_high = _mover(ea, eb, (la, ua), (lb, ub), _correlation(da, db))
    diff = (min(boot_low, mover_low), max(boot_high, mover_high))
    if not positive:  # no log scale: the ratio is not bounded (a rule on it cannot PASS)
        return diff, (-math.inf, math.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(da > 0, db / da, np.inf)
        log_da, log_db = np.log(da), np.log(db)
    ratio_low, ratio_high = (float(x) for x in np.quantile(ratios, tails))
    logs = [None if x is None else math.log(x) for x in (la, ua, lb, ub)]
    log_low, log_high = _mover(
        math.log(ea), math.log(eb), (logs[0], logs[1]), (logs[2], logs[3]), _correlation(log_da, log_db)
    )
    return diff, (min(ratio_low, math.exp(log_low)), max(ratio_high, math.exp(log_high)))


def percentile_differences(
    champion: np.ndarray,
    challenger: np.ndarray,
    qs: Sequence[float],
    alpha: float = 0.05,
    n_resamples: int = 10_000,
    seed: int = 0,
    *,
    fail_alpha: float | None = None,
) -> list[Difference]:
    """Differences (challenger - champion) and ratios (challenger / champion) of latency percentiles,
    one seeded paired bootstrap for all; ``fail_alpha``: the same at the FAIL level, from the same draws.

    Guard (issue 8). The percentile bootstrap alone undercovers in the tail: with a heavier-tailed
    challenger its upper bound of the p99 difference was below the truth 7.8% of the time at n = 200
    and 4.1% at n = 400 (nominal 2.5%; the side a latency PASS reads), and of the p95 difference 4.8%
    / 3.9% with queueing spikes. So each interval is the hull of the bootstrap one and the MOVER
    interval built from each arm's distribution-free order-statistic CI (``aire.stats.quantile_ci``)
    with the two percentiles' bootstrap correlation; the ratio's on the log scale. Below the n at
    which the arm CI exists (``quantile_ci_min_n``: p99 at 95%, 368 pairs) the interval is unbounded
    and carries a caveat naming the n needed: no PASS, and no FAIL, on a tail the data cannot reach.
    The measurements are in tests/unit/test_comparison.py.
    """
    from aire.stats.intervals import quantile_ci_min_n

    a, b = _paired_arrays(champion, challenger)
    n = len(a)
    if n < 2:
        raise ValueError("a percentile comparison needs at least 2 pairs")
    qa, qb = _percentile_draws(a, b, qs, n_resamples, seed)
    positive = bool((a > 0).all() and (b > 0).all())
    out = []
    for j, q in enumerate(qs):
        draws = (a, b, qa[:, j], qb[:, j], q, positive)
        ea, eb = float(np.quantile(a, q)), float(np.quantile(b, q))
        diff, ratio = _percentile_bounds(*draws, alpha)
        wide = _percentile_bounds(*draws, fail_alpha) if fail_alpha is not None and fail_alpha != alpha else None
        need = quantile_ci_min_n(q, 1 - alpha)
        caveat = None
        if n < need:
            caveat = (
                f"p{q * 100:g} needs at least {need} pairs for a distribution-free interval at "
                f"{(1 - alpha) * 100:g}% (have {n})"
            )
        out.append(
            Difference(
                method="paired_bootstrap",
                delta=eb - ea,
                ci_low=diff[0],
                ci_high=diff[1],
                fail_low=wide[0][0] if wide else None,
                fail_high=wide[0][1] if wide else None,
                ratio=Bounds(
                    value=eb / ea if ea > 0 else math.inf,
                    ci_low=ratio[0],
                    ci_high=ratio[1],
                    fail_low=wide[1][0] if wide else None,
                    fail_high=wide[1][1] if wide else None,
                ),
                n=n,
                note=f"p{q * 100:g}: hull of the paired bootstrap and the order-statistic MOVER interval",
                caveat=caveat,
            )
        )
    return out
