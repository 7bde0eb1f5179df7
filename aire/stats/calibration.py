"""How well a confidence score predicts correctness: reliability bins, expected calibration error
(ECE) and selective accuracy, with bootstrap intervals.

A suite pairs a confidence metric with a 0/1 correctness metric (``calibration:`` in suite.yaml);
``calibration_metrics`` gives the summary's ``<confidence>/ece`` and
``<confidence>/accuracy_at_coverage_<c>`` (the accuracy on the share ``c`` of answers the model was
surest of: what abstaining on the rest would buy).

- ECE: 10 equal-width bins of confidence, sum over bins of (bin share) x |accuracy - mean confidence|
  (Guo et al. 2017). Its plug-in estimate is biased upwards (each bin's |.| adds its sampling noise),
  most at small n and near perfect calibration, so its interval is the basic bootstrap's, which
  reflects that bias (``METHODS``; coverage simulated in tests/unit/test_confidence.py).
- Intervals: scipy's bootstrap over samples (whole clusters, with ``repeats``), seeded.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

from aire.core.types import Estimate, ReliabilityBin

BINS = 10
RESAMPLES = 2000
# ECE: the basic (reflected) bootstrap, which carries the plug-in's upward bias to the other side of
# the estimate. Simulated at n 100 / 300 / 1,000 (300 runs a cell): it holds a true ECE of 0 in 73-77%
# of runs (BCa: never) and a true 0.05 / 0.15 in 85-92% (BCa: 84-93%). Selective accuracy: BCa (94-98%).
METHODS = ("basic", "BCa")
MIN_N = 10  # fewer scored pairs: the values alone, no interval


def _bin_index(confidence: np.ndarray, bins: int) -> np.ndarray:
    # [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]: 1.0 falls in the last bin.
    return np.minimum((confidence * bins).astype(int), bins - 1)


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> list[ReliabilityBin]:
    """The non-empty bins of a reliability diagram: their range, size, mean confidence and accuracy."""
    idx = _bin_index(confidence, bins)
    out = []
    for b in range(bins):
        inside = idx == b
        if inside.any():
            out.append(
                ReliabilityBin(
                    low=b / bins,
                    high=(b + 1) / bins,
                    n=int(inside.sum()),
                    confidence=float(confidence[inside].mean()),
                    accuracy=float(correct[inside].mean()),
                )
            )
    return out


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = BINS) -> float:
    idx = _bin_index(confidence, bins)
    gap = np.bincount(idx, correct - confidence, minlength=bins)  # per bin: n x (accuracy - confidence)
    return float(np.abs(gap).sum() / len(confidence))


def selective_accuracy(confidence: np.ndarray, correct: np.ndarray, coverage: float) -> float:
    """Accuracy on the ``coverage`` share of answers with the highest confidence (ties: stable order)."""
    keep = max(1, math.ceil(coverage * len(confidence)))
    order = np.argsort(-confidence, kind="stable")
    return float(correct[order[:keep]].mean())


def calibration_metrics(
    name: str,
    confidence: np.ndarray,
    correct: np.ndarray,
    *,
    coverage: float,
    clusters: np.ndarray | None = None,
    seed: int = 0,
) -> tuple[dict[str, Estimate], list[ReliabilityBin]]:
    """``<name>/ece`` and ``<name>/accuracy_at_coverage_<c>`` with 95% BCa intervals, and the
    reliability bins, from paired confidence and 0/1 correctness (NaN in either: left out)."""
    keep = ~(np.isnan(confidence) | np.isnan(correct))
    missing = int((~keep).sum())
    conf, right = np.clip(confidence[keep], 0.0, 1.0), correct[keep]
    n = len(conf)
    ece_key, sel_key = f"{name}/ece", f"{name}/accuracy_at_coverage_{coverage:g}"
    if not n:
        nan = Estimate(value=math.nan, n=0, n_errors=missing)
        return {ece_key: nan, sel_key: nan}, []
    # What the bootstrap resamples: rows, or whole clusters (a sample's repeats) when clustered.
    rows_of: list[np.ndarray] | None = None
    if clusters is not None:
        _, unit = np.unique(np.asarray(clusters)[keep], return_inverse=True)
        rows_of = [np.flatnonzero(unit == u) for u in range(int(unit.max()) + 1)]
    units = n if rows_of is None else len(rows_of)

    def rows(drawn: np.ndarray) -> np.ndarray:
        return drawn if rows_of is None else np.concatenate([rows_of[u] for u in drawn])

    statistics = (
        lambda r: expected_calibration_error(conf[r], right[r]),
        lambda r: selective_accuracy(conf[r], right[r], coverage),
    )
    values = [f(np.arange(n)) for f in statistics]
    lows: list[float | None] = [None, None]
    highs: list[float | None] = [None, None]
    for i, f in enumerate(statistics if units >= MIN_N else ()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # degenerate resamples (all one value): NaN, handled below
            res = stats.bootstrap(
                (np.arange(units),),
                lambda drawn, f=f: f(rows(drawn)),
                vectorized=False,
                n_resamples=RESAMPLES,
                method=METHODS[i],
                rng=np.random.default_rng(seed + i),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isnan(low) or math.isnan(high):  # every resample equal: the value is the interval
            low = high = values[i]
        lows[i], highs[i] = max(0.0, low), min(1.0, high)  # both are shares
    return (
        {
            ece_key: Estimate(value=values[0], n=n, n_errors=missing, ci_low=lows[0], ci_high=highs[0]),
            sel_key: Estimate(value=values[1], n=n, n_errors=missing, ci_low=lows[1], ci_high=highs[1]),
        },
        reliability(conf, right),
    )
