"""Two-sample tests and effect sizes between a reference and a current window.

Numeric values: the Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``) and the population stability index
(PSI, on the reference's deciles). Categories: the chi-square test of homogeneity
(``scipy.stats.chi2_contingency``) and the PSI over categories. Vectors (sentence embeddings): the maximum
mean discrepancy (MMD², RBF kernel) with a permutation p-value.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel

PSI_BINS = 10
PSI_EPS = 1e-4  # stands in for an empty bin, whose log ratio would be infinite


class MMDResult(BaseModel):
    """An MMD² permutation test between two sets of vectors."""

    mmd2: float  # unbiased estimate; can be slightly negative when there is no difference
    p_value: float
    bandwidth: float  # sigma of the RBF kernel: the median pairwise distance of the pooled sample
    n_reference: int
    n_current: int
    n_permutations: int


def _psi(ref_share: np.ndarray, cur_share: np.ndarray, eps: float) -> float:
    r = np.clip(ref_share, eps, None)
    c = np.clip(cur_share, eps, None)
    return float(np.sum((c - r) * np.log(c / r)))


def psi_numeric(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS, eps: float = PSI_EPS) -> float:
    """Population stability index on the reference's quantile bins (0 for identical windows).

    Bins are right-closed between the unique reference quantiles, so a discrete feature gets fewer bins
    than ``bins`` rather than empty ones; values outside the reference range fall in the end bins.
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(current, dtype=float)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        raise ValueError("PSI needs values in both windows")
    cuts = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(cuts, ref, side="left"), minlength=len(cuts) + 1) / len(ref)
    cur_share = np.bincount(np.searchsorted(cuts, cur, side="left"), minlength=len(cuts) + 1) / len(cur)
    return _psi(ref_share, cur_share, eps)


def category_table(reference: Sequence[Any], current: Sequence[Any]) -> tuple[list[Any], np.ndarray]:
    """Categories of both windows (a category seen in one window only counts 0 in the other) and a 2 x K
    table of counts."""
    from collections import Counter

    ref, cur = Counter(reference), Counter(current)
    categories = sorted(set(ref) | set(cur), key=str)
    table = np.array([[ref[c] for c in categories], [cur[c] for c in categories]], dtype=float)
    return categories, table


def psi_categorical(reference: Sequence[Any], current: Sequence[Any], eps: float = PSI_EPS) -> float:
    """PSI over the categories of both windows (0 for identical windows)."""
    _, table = category_table(reference, current)
    if table[0].sum() == 0 or table[1].sum() == 0:
        raise ValueError("PSI needs values in both windows")
    return _psi(table[0] / table[0].sum(), table[1] / table[1].sum(), eps)


def chi2_homogeneity(reference: Sequence[Any], current: Sequence[Any]) -> tuple[float, float]:
    """Chi-square test that both windows share one category distribution: ``(statistic, p)``.

    With a single category overall there is nothing that could differ: ``(0, 1)``. A 2 x 2 table (the
    refusal rate) gets scipy's Yates correction, which errs towards fewer false alarms when counts are small.
    """
    from scipy import stats

    _, table = category_table(reference, current)
    if table[0].sum() == 0 or table[1].sum() == 0:
        raise ValueError("a chi-square test needs values in both windows")
    if table.shape[1] < 2:
        return 0.0, 1.0
    res = stats.chi2_contingency(table)
    return float(res.statistic), float(res.pvalue)


def ks_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: ``(D, p)``."""
    from scipy import stats

    # KS is exact for continuous data and conservative with ties (lengths, token counts): false alarms
    # stay under alpha either way. When scipy's exact p-value does not converge it falls back to the
    # asymptotic one, which is what we want at these sizes, and warns: not worth a warning per report.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="ks_2samp: Exact calculation unsuccessful")
        ks = stats.ks_2samp(reference, current)
    return float(ks.statistic), float(ks.pvalue)


def mmd_test(
    reference: np.ndarray, current: np.ndarray, *, n_permutations: int = 500, seed: int | np.random.Generator = 0
) -> MMDResult:
    """Unbiased MMD² between two sets of vectors (rows), RBF kernel, permutation p-value.

    The bandwidth (median heuristic) comes from the pooled sample, which every permutation shares, so the
    permutation distribution is exact under "same distribution" and ``p = (1 + #{perm >= observed}) /
    (1 + n_permutations)`` is a valid p-value.
    """
    x = np.asarray(reference, dtype=float)
    y = np.asarray(current, dtype=float)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need two 2-d arrays with the same number of columns, got {x.shape} and {y.shape}")
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError("MMD needs at least 2 vectors per window")
    if n_permutations < 1:
        raise ValueError("n_permutations must be at least 1")
    rng = np.random.default_rng(seed)
    z = np.vstack([x, y])
    total_n = n + m
    sq = np.einsum("ij,ij->i", z, z)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * (z @ z.T), 0.0)
    off = d2[np.triu_indices(total_n, 1)]
    median = float(np.median(off))
    if median <= 0.0:  # more than half the pairs coincide: fall back on the distinct ones
        positive = off[off > 0]
        median = float(np.median(positive)) if positive.size else 1.0
    k = np.exp(-d2 / (2.0 * median))
    diag = np.diag(k)
    row_sums = k.sum(axis=1)
    total = float(row_sums.sum())

    def statistics(a: np.ndarray) -> np.ndarray:
        # a: (N, B) 0/1 membership of the "reference" side, one column per labelling. Block sums of K
        # follow from a'Ka and a'K1 alone, so a permutation costs one matrix product, not a new kernel.
        aka = np.einsum("ib,ib->b", a, k @ a)
        ak1 = a.T @ row_sums
        xx = (aka - a.T @ diag) / (n * (n - 1))
        yy = (total - 2.0 * ak1 + aka - (1.0 - a).T @ diag) / (m * (m - 1))
        xy = (ak1 - aka) / (n * m)
        return xx + yy - 2.0 * xy

    observed_labels = np.zeros((total_n, 1))
    observed_labels[:n] = 1.0
    observed = float(statistics(observed_labels)[0])
    exceed = 0
    chunk = max(1, min(n_permutations, 4_000_000 // total_n))  # bounds memory at large windows
    done = 0
    while done < n_permutations:
        size = min(chunk, n_permutations - done)
        order = np.argsort(rng.random((size, total_n)), axis=1)[:, :n]
        labels = np.zeros((total_n, size))
        labels[order.T, np.arange(size)] = 1.0
        # The tolerance counts a permutation that reproduces the observed split as a tie despite rounding.
        exceed += int(np.sum(statistics(labels) >= observed - 1e-12 * max(1.0, abs(observed))))
        done += size
    return MMDResult(
        mmd2=observed,
        p_value=(1 + exceed) / (1 + n_permutations),
        bandwidth=math.sqrt(median),
        n_reference=n,
        n_current=m,
        n_permutations=n_permutations,
    )
