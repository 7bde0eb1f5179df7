"""Fairness evidence: the largest gap of a metric between the slices of a field, for each arm, and how
much the challenger widens the champion's gap.

Named ``<metric>/gap:<field>`` (``exact_match/mean/gap:op``) and judged by the ``disparity`` rule.

- An arm's gap is the largest slice mean minus the smallest. Its interval comes from simultaneous
  intervals of the K slice means (Bonferroni: each at alpha / K, Wilson for 0/1 scores, Student-t
  otherwise): with all K covering at once, the gap lies in [max(0, max low - min high), max high -
  min low]. Conservative by construction, so a gap at the bound PASSes at most alpha / 2 of the time.
- The widening (challenger's gap minus champion's) is one statistic of paired data: a percentile
  bootstrap that resamples the pairs within each slice (stratified, so every slice keeps its size).
- Clustered pairs (a suite's ``repeats`` or ``group_field``): the slice intervals are cluster-robust
  (``clustered_mean_ci``), the bootstrap resamples whole clusters, and a slice's n is its clusters.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from aire.core.rules import Interval, MetricEvidence
from aire.stats.intervals import clustered_mean_ci

_BOOTSTRAP = 2000  # resamples of the widening: a percentile bootstrap's 2.5% tail needs ~2,000


def _means(
    values: np.ndarray, groups: dict[str, np.ndarray], clusters: np.ndarray, alpha: float
) -> list[tuple[float, float, float]]:
    """(mean, low, high) of each slice at the simultaneous (Bonferroni) level."""
    k = len(groups)
    out = []
    for idx in groups.values():
        mean, low, high = clustered_mean_ci(values[idx], clusters[idx], 1 - alpha / k)
        out.append((mean, mean if low is None else low, mean if high is None else high))
    return out


def _gap(
    values: np.ndarray, groups: dict[str, np.ndarray], clusters: np.ndarray, alpha: float, fail_alpha: float
) -> Interval:
    def bounds(level: float) -> tuple[float, float, float]:
        m = _means(values, groups, clusters, level)
        gap = max(x[0] for x in m) - min(x[0] for x in m)
        low = max(0.0, max(x[1] for x in m) - min(x[2] for x in m))
        high = max(x[2] for x in m) - min(x[1] for x in m)
        return gap, low, high

    gap, low, high = bounds(alpha)
    _, fail_low, fail_high = bounds(fail_alpha)
    return Interval(value=gap, ci_low=low, ci_high=high, fail_low=fail_low, fail_high=fail_high)


def _widening(
    a: np.ndarray,
    b: np.ndarray,
    groups: dict[str, np.ndarray],
    clusters: np.ndarray,
    alpha: float,
    fail_alpha: float,
    seed: int,
) -> Interval:
    rng = np.random.default_rng(seed)
    means_a, means_b = [], []
    for idx in groups.values():
        # Whole clusters are drawn (a cluster of one pair when unclustered): a slice mean is the
        # drawn clusters' score sum over their size.
        _, cluster_idx = np.unique(clusters[idx], return_inverse=True)
        sum_a, sum_b = np.bincount(cluster_idx, a[idx]), np.bincount(cluster_idx, b[idx])
        sizes = np.bincount(cluster_idx).astype(float)
        draw = rng.integers(0, len(sizes), size=(_BOOTSTRAP, len(sizes)))
        means_a.append(sum_a[draw].sum(axis=1) / sizes[draw].sum(axis=1))
        means_b.append(sum_b[draw].sum(axis=1) / sizes[draw].sum(axis=1))
    ma, mb = np.stack(means_a), np.stack(means_b)
    diff = (mb.max(axis=0) - mb.min(axis=0)) - (ma.max(axis=0) - ma.min(axis=0))
    point_a = [a[i].mean() for i in groups.values()]
    point_b = [b[i].mean() for i in groups.values()]
    value = float((max(point_b) - min(point_b)) - (max(point_a) - min(point_a)))
    low, high = np.quantile(diff, [alpha / 2, 1 - alpha / 2])
    fail_low, fail_high = np.quantile(diff, [fail_alpha / 2, 1 - fail_alpha / 2])
    return Interval(
        value=value, ci_low=float(low), ci_high=float(high), fail_low=float(fail_low), fail_high=float(fail_high)
    )


def gap_evidence(
    a: np.ndarray,
    b: np.ndarray,
    labels: np.ndarray,
    *,
    alpha: float,
    fail_alpha: float,
    seed: int = 0,
    clusters: np.ndarray | None = None,
) -> tuple[MetricEvidence, str]:
    """Both arms' gaps and the widening, from paired scores ``a`` (champion), ``b`` (challenger) and
    each pair's slice label (and cluster, where pairs are not independent); and a note naming the
    slices and their sizes (clusters, when clustered)."""
    keep = ~(np.isnan(a) | np.isnan(b))
    clusters = np.arange(len(a)) if clusters is None else np.asarray(clusters)
    a, b, labels, clusters = a[keep], b[keep], labels[keep], clusters[keep]
    groups = {str(g): np.flatnonzero(labels == g) for g in sorted(set(labels.tolist()))}
    sizes = {g: len(np.unique(clusters[i])) for g, i in groups.items()}
    note = "slices " + ", ".join(f"{g} (n={n})" for g, n in sizes.items())
    smallest = min(sizes.values(), default=0)
    if len(groups) < 2 or smallest < 2:
        return MetricEvidence(higher_is_better=False, min_group_n=smallest), note
    return (
        MetricEvidence(
            champion=_gap(a, groups, clusters, alpha, fail_alpha),
            challenger=_gap(b, groups, clusters, alpha, fail_alpha),
            delta=_widening(a, b, groups, clusters, alpha, fail_alpha, seed),
            higher_is_better=False,
            min_group_n=smallest,
        ),
        note,
    )


def gap_comparisons(data: Any, *, alpha: float, fail_alpha: float, seed: int) -> dict[str, tuple[MetricEvidence, str]]:
    """``<metric>/gap:<field>`` -> (evidence, note) for every mean quality metric and every slice field
    of ``data`` (``aire.gate.evidence.PairedData``)."""
    out: dict[str, tuple[MetricEvidence, str]] = {}
    for field, labels in data.slices.items():
        for name, (a, b, _) in data.quality.items():
            if name.endswith("/mean"):
                out[f"{name}/gap:{field}"] = gap_evidence(
                    a, b, labels, alpha=alpha, fail_alpha=fail_alpha, seed=seed, clusters=data.groups
                )
    return out
