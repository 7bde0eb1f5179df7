"""Agreement of a judge with human labels: accuracy, Cohen's kappa with a bootstrap interval, the
confusion matrix and a length-bias check. What ``aire judge calibrate`` reports before a judge may gate.

Kappa is computed vectorised over bootstrap resamples (scipy's ``bootstrap``, percentile method:
BCa's jackknife breaks down on the degenerate resamples small label sets produce); the point estimate
equals scikit-learn's ``cohen_kappa_score`` (tests hold them together).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from aire.stats.intervals import mean_ci


@dataclass(frozen=True)
class Agreement:
    n: int  # items the judge gave a verdict on
    accuracy: float
    accuracy_ci: tuple[float, float]
    kappa: float
    kappa_ci: tuple[float, float]
    labels: tuple[str, ...]
    # confusion[human][judge] = count
    confusion: dict[str, dict[str, int]]
    # Spearman correlation of answer length with (judge score - human score): a judge that rewards
    # length scores long answers above their labels (> 0). NaN when it cannot be computed.
    length_bias: float
    length_bias_p: float


def kappa_of(human: np.ndarray, judge: np.ndarray, k: int) -> np.ndarray:
    """Cohen's kappa of integer-coded labels along the last axis (vectorised over leading axes).

    NaN where chance agreement is 1 (both raters used a single, identical label): kappa is undefined.
    """
    observed = (human == judge).mean(axis=-1)
    expected = sum((human == c).mean(axis=-1) * (judge == c).mean(axis=-1) for c in range(k))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(expected < 1.0, (observed - expected) / (1.0 - expected), np.nan)


def agreement(
    human: Sequence[str],
    judge: Sequence[str],
    labels: Sequence[str],
    lengths: Sequence[int] | None = None,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Agreement:
    """Agreement of paired labels (only items the judge answered: the caller counts the others)."""
    from scipy import stats

    if len(human) != len(judge):
        raise ValueError("human and judge labels must pair up")
    index = {label: i for i, label in enumerate(labels)}
    h = np.array([index[x] for x in human], dtype=int)
    j = np.array([index[x] for x in judge], dtype=int)
    n, k = len(h), len(labels)
    confusion = {a: {b: int(np.sum((h == index[a]) & (j == index[b]))) for b in labels} for a in labels}
    if n == 0:
        nan2 = (math.nan, math.nan)
        return Agreement(0, math.nan, nan2, math.nan, nan2, tuple(labels), confusion, math.nan, math.nan)
    hit = (h == j).astype(float)
    _, acc_low, acc_high = mean_ci(hit, confidence)  # Wilson: 0/1 values
    kappa = float(kappa_of(h, j, k))
    if n >= 2 and not math.isnan(kappa):
        res = stats.bootstrap(
            (h, j),
            lambda a, b, axis=-1: kappa_of(a, b, k),
            paired=True,
            vectorized=True,
            n_resamples=resamples,
            confidence_level=confidence,
            method="percentile",
            random_state=np.random.default_rng(seed),
        )
        low, high = res.confidence_interval
        # Resamples where kappa is undefined are dropped by nan-aware percentiles in scipy; an
        # interval that is still NaN means the data cannot bound it.
        kappa_ci = (float(low), float(high))
    else:
        kappa_ci = (math.nan, math.nan)
    rho, p = math.nan, math.nan
    if lengths is not None and n >= 3:
        # Scores on the label scale (worst first, 0..1), so "judge above human" is a positive gap.
        gap = (j - h) / max(k - 1, 1)
        if np.ptp(gap) > 0 and np.ptp(np.asarray(lengths)) > 0:
            result = stats.spearmanr(lengths, gap)
            rho, p = float(result.statistic), float(result.pvalue)
    return Agreement(
        n=n,
        accuracy=float(hit.mean()),
        accuracy_ci=(float(acc_low), float(acc_high)),  # type: ignore[arg-type]
        kappa=kappa,
        kappa_ci=kappa_ci,
        labels=tuple(labels),
        confusion=confusion,
        length_bias=rho,
        length_bias_p=p,
    )
