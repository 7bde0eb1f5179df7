"""From paired per-sample results to the evidence the gate reads: one interval per arm and one for
the difference, per metric, with the statistical method that produced it.

Which method gives the gate's difference interval:

- samples share a group (``group_field`` in the suite): cluster-robust SE (statsmodels), t(G - 1)
  critical values; fewer than 30 clusters: a caveat, so the gate does not PASS on it;
- 0/1 scores: McNemar's test with the paired-proportions interval;
- other scores: seeded paired BCa bootstrap (10,000 resamples), widened to the adjusted paired t
  when fewer than 50 pairs differ;
- pairing impossible (fewer than 2 pairs, both arms scored): Welch, flagged ``paired=False``;
- sequential mode: the always-valid confidence sequence, for every quality metric.

The paired t interval (and the bootstrap, where it is not the chosen one) is reported beside it,
so a reviewer sees the methods agree. Latency percentiles get a paired bootstrap of the difference and
the ratio, widened to the MOVER interval of the arms' order-statistic CIs (``percentile_differences``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from aire.gate.policy import Counts, Interval, MetricEvidence
from aire.stats.intervals import mean_ci, quantile_ci
from aire.stats.paired import (
    Difference,
    cluster_robust,
    mcnemar,
    paired_bootstrap,
    paired_t,
    percentile_differences,
    unpaired,
)
from aire.stats.sequential import confidence_sequence

LATENCY_SLIS = ("ttft_ms", "tpot_ms", "e2e_ms")
PERCENTILES = {"p50": 0.5, "p95": 0.95, "p99": 0.99}

MetricKind = Literal["quality", "agreement", "latency", "disparity"]


@dataclass
class PairedData:
    """Scores and latencies of both arms, aligned by sample id (index i is one input)."""

    ids: list[str]
    # metric -> (champion, challenger, higher_is_better); NaN where an evaluator could not score
    quality: dict[str, tuple[np.ndarray, np.ndarray, bool]] = field(default_factory=dict)
    # metric -> challenger only (agreement with the champion's output: the champion is the reference)
    agreement: dict[str, np.ndarray] = field(default_factory=dict)
    # pairwise judge key -> share of pairs judged by position, not answer (the same place both orders)
    position_bias: dict[str, float] = field(default_factory=dict)
    # SLI -> (champion, challenger) in ms; NaN where the arm did not report it
    latency: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    groups: np.ndarray | None = None
    counts: Counts = field(default_factory=lambda: Counts(n_pairs=0))
    # Scores of items only one arm answered, for the unpaired fallback.
    unpaired_quality: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    # slice field -> each pair's value, for the disparity gaps (aire.gate.disparity)
    slices: dict[str, np.ndarray] = field(default_factory=dict)


class MetricComparison(BaseModel):
    metric: str
    kind: MetricKind
    higher_is_better: bool = True
    evidence: MetricEvidence
    method: str  # what produced evidence.delta (or the challenger interval, for agreement)
    p_value: float | None = None  # of the chosen method's test of "no difference", where it has one
    supplementary: list[Difference] = Field(default_factory=list)
    paired: bool = True
    note: str = ""


class Comparison(BaseModel):
    counts: Counts
    sequential: bool = False
    metrics: dict[str, MetricComparison]  # every quality/agreement metric and every latency percentile
    # ``<metric>/gap:<field>`` per slice field: descriptive unless a disparity rule reads one
    gaps: dict[str, MetricComparison] = Field(default_factory=dict)

    def evidence(self, ruled: set[str]) -> dict[str, MetricEvidence]:
        """What the gate judges: every quality and agreement metric (a metric nobody ruled on must
        block a PASS), and the latency percentiles and slice gaps the policy has rules for (the rest
        are descriptive)."""
        out = {k: m.evidence for k, m in self.metrics.items() if m.kind != "latency" or k in ruled}
        out.update({k: m.evidence for k, m in self.gaps.items() if k in ruled})
        return out


def _interval(value: float, low: float | None, high: float | None) -> Interval:
    return Interval(
        value=value,
        ci_low=-math.inf if low is None else low,
        ci_high=math.inf if high is None else high,
    )


def _finite(x: np.ndarray) -> np.ndarray:
    return x[~np.isnan(x)]


@dataclass(frozen=True)
class Levels:
    """The two-sided levels a comparison computes: ``alpha`` (what a PASS reads) and ``fail_alpha``
    (what a FAIL reads: Bonferroni over the policy's critical rules); ``planned_n`` tunes sequences."""

    alpha: float
    fail_alpha: float
    planned_n: int | None = None


def _with_fail(iv: Interval | None, fail: Interval | None) -> Interval | None:
    if iv is None or fail is None:
        return iv
    return iv.model_copy(update={"fail_low": fail.ci_low, "fail_high": fail.ci_high})


def _mean_at(v: np.ndarray, alpha: float, sequential: bool, planned_n: int | None) -> Interval:
    if sequential:
        return _interval(*confidence_sequence(v, alpha, planned_n=planned_n))
    return _interval(*mean_ci(v, 1 - alpha))


def _mean(values: np.ndarray, levels: Levels, sequential: bool) -> Interval | None:
    v = _finite(values)
    if len(v) == 0:
        return None
    iv = _mean_at(v, levels.alpha, sequential, levels.planned_n)
    if levels.fail_alpha == levels.alpha:
        return iv
    return _with_fail(iv, _mean_at(v, levels.fail_alpha, sequential, levels.planned_n))


def _count(values: np.ndarray) -> tuple[int, int] | None:
    """(events, scored samples) of a 0/1 metric, for exact binomial rules; None for any other."""
    v = _finite(values)
    if len(v) == 0 or not np.isin(v, (0.0, 1.0)).all():
        return None
    return int(v.sum()), len(v)


def _is_binary(a: np.ndarray, b: np.ndarray) -> bool:
    both = np.concatenate([_finite(a), _finite(b)])
    return bool(np.isin(both, (0.0, 1.0)).all())


def _quality(
    name: str,
    a: np.ndarray,
    b: np.ndarray,
    higher_is_better: bool,
    data: PairedData,
    levels: Levels,
    sequential: bool,
    seed: int,
    n_resamples: int,
    supplementary_methods: bool,
) -> MetricComparison:
    keep = ~(np.isnan(a) | np.isnan(b))
    n = int(keep.sum())
    alpha = levels.alpha
    supplementary: list[Difference] = []
    chosen: Difference | None = None
    method: Callable[[float], Difference] | None = None
    paired = True
    if n >= 2:
        if sequential:
            d = b[keep] - a[keep]

            def method(level: float) -> Difference:
                mean, low, high = confidence_sequence(d, level, planned_n=levels.planned_n)
                return Difference(method="confidence_sequence", delta=mean, ci_low=low, ci_high=high, n=n)

        elif data.groups is not None and len(np.unique(data.groups[keep])) >= 2:
            groups = data.groups

            def method(level: float) -> Difference:
                return cluster_robust(a, b, groups, level)

        elif _is_binary(a, b):

            def method(level: float) -> Difference:
                return mcnemar(a, b, level)

        else:

            def method(level: float) -> Difference:
                return paired_bootstrap(a, b, level, n_resamples=n_resamples, seed=seed)

        chosen = method(alpha)
        if supplementary_methods:
            with np.errstate(all="ignore"):
                supplementary.append(paired_t(a, b, alpha))
                if chosen.method != "paired_bootstrap":
                    supplementary.append(paired_bootstrap(a, b, alpha, n_resamples=n_resamples, seed=seed))
    elif name in data.unpaired_quality:
        ua, ub = data.unpaired_quality[name]
        if min(len(_finite(ua)), len(_finite(ub))) >= 2:

            def method(level: float) -> Difference:
                return unpaired(ua, ub, level)

            chosen = method(alpha)
            paired = False
    # Each arm's own interval: over the pairs, or over what each arm answered when nothing paired.
    arm_a, arm_b = (a[keep], b[keep]) if n else data.unpaired_quality.get(name, (a, b))
    champion, challenger = _mean(arm_a, levels, sequential), _mean(arm_b, levels, sequential)
    delta = None
    if chosen is not None and method is not None:
        delta = Interval(value=chosen.delta, ci_low=chosen.ci_low, ci_high=chosen.ci_high)
        if levels.fail_alpha != alpha:
            wide = method(levels.fail_alpha)
            delta = delta.model_copy(update={"fail_low": wide.ci_low, "fail_high": wide.ci_high})
    return MetricComparison(
        metric=name,
        kind="quality",
        higher_is_better=higher_is_better,
        evidence=MetricEvidence(
            champion=champion,
            challenger=challenger,
            delta=delta,
            higher_is_better=higher_is_better,
            caveat=chosen.caveat if chosen else None,
            challenger_count=_count(arm_b),
        ),
        method=chosen.method if chosen else "none",
        p_value=chosen.p_value if chosen else None,
        supplementary=supplementary,
        paired=paired,
        note=chosen.note if chosen else "fewer than 2 scored pairs",
    )


def _latency(
    sli: str, a: np.ndarray, b: np.ndarray, levels: Levels, seed: int, n_resamples: int
) -> list[MetricComparison]:
    keep = ~(np.isnan(a) | np.isnan(b))
    a, b = a[keep], b[keep]
    out: list[MetricComparison] = []
    qs = list(PERCENTILES.values())
    diffs: list[Difference | None] = [None] * len(qs)
    if len(a) >= 2:
        diffs = list(percentile_differences(a, b, qs, levels.alpha, n_resamples, seed, fail_alpha=levels.fail_alpha))

    def arm(values: np.ndarray, q: float) -> Interval | None:
        if not len(values):
            return None
        iv = _interval(*quantile_ci(values, q, 1 - levels.alpha))
        return _with_fail(iv, _interval(*quantile_ci(values, q, 1 - levels.fail_alpha)))

    for (name, q), diff in zip(PERCENTILES.items(), diffs, strict=True):
        delta = ratio = None
        if diff is not None:
            delta = Interval(
                value=diff.delta,
                ci_low=diff.ci_low,
                ci_high=diff.ci_high,
                fail_low=diff.fail_low,
                fail_high=diff.fail_high,
            )
            ratio = Interval.model_validate(diff.ratio.model_dump()) if diff.ratio else None
        out.append(
            MetricComparison(
                metric=f"latency/{sli}/{name}",
                kind="latency",
                higher_is_better=False,
                evidence=MetricEvidence(
                    champion=arm(a, q),
                    challenger=arm(b, q),
                    delta=delta,
                    ratio=ratio,
                    higher_is_better=False,
                    caveat=diff.caveat if diff else None,
                ),
                method="paired_bootstrap" if delta else "none",
                note=(
                    "difference and ratio: hull of the paired bootstrap of the percentile and the MOVER interval "
                    "of the arms' order-statistic CIs; arms: order-statistic CI"
                ),
            )
        )
    return out


def compare(
    data: PairedData,
    *,
    alpha: float = 0.05,
    fail_alpha: float | None = None,
    planned_n: int | None = None,
    sequential: bool = False,
    seed: int = 0,
    n_resamples: int = 10_000,
    supplementary: bool = True,
    latency: bool = True,
) -> Comparison:
    """Every metric of both arms, compared pairwise. Pure: same data and seed, same numbers.

    ``supplementary=False`` and ``latency=False`` compute only what a sequential look decides on
    (quality metrics, always-valid intervals): a look runs after every batch and must be cheap.
    ``fail_alpha`` (default ``alpha``): the level of the FAIL-side bounds (``Policy.fail_alpha``);
    ``planned_n`` tunes the confidence sequence in sequential mode.
    """
    levels = Levels(alpha=alpha, fail_alpha=alpha if fail_alpha is None else fail_alpha, planned_n=planned_n)
    metrics: dict[str, MetricComparison] = {}
    for name, (a, b, hib) in data.quality.items():
        metrics[name] = _quality(name, a, b, hib, data, levels, sequential, seed, n_resamples, supplementary)
    for name, values in data.agreement.items():
        interval = _mean(values, levels, sequential)
        metrics[name] = MetricComparison(
            metric=name,
            kind="agreement",
            evidence=MetricEvidence(challenger=interval, higher_is_better=True),
            method="confidence_sequence" if sequential else "wilson",
            note="share of inputs where the challenger's output agrees with the champion's",
        )
    for sli, (a, b) in data.latency.items() if latency else ():
        for m in _latency(sli, a, b, levels, seed, n_resamples):
            metrics[m.metric] = m
    gaps: dict[str, MetricComparison] = {}
    if data.slices and not sequential:
        from aire.gate.disparity import gap_comparisons

        gaps = {
            key: MetricComparison(
                metric=key,
                kind="disparity",
                higher_is_better=False,
                evidence=evidence,
                method="bonferroni_slice_means+stratified_bootstrap",
                note=note,
            )
            for key, (evidence, note) in gap_comparisons(
                data, alpha=levels.alpha, fail_alpha=levels.fail_alpha, seed=seed
            ).items()
        }
    return Comparison(counts=data.counts, sequential=sequential, metrics=metrics, gaps=gaps)
