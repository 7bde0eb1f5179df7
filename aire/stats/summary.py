"""Aggregate per-sample results into a Summary: every declared aggregation, overall and per slice.

Metric keys are ``evaluator/aggregation[/slice_field:value]``; latency SLIs are
``latency/<sli>/<pXX>[/slice_field:value]`` in milliseconds (output tokens as a count).

A suite with ``repeats: k`` has k rows per sample (aire.core.repeats): a mean's interval then counts
samples, not rows (``clustered_mean_ci``), and every 0/1 metric gains pass@k (some repeat of the
sample right) and pass^k (all k right), with Wilson intervals over samples, keyed ``pass_at_<k>`` and
``pass_hat_<k>`` because MLflow metric names may not hold ``@`` or ``^``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from aire.core.repeats import sample_of
from aire.core.types import Estimate, ReliabilityBin, Summary
from aire.stats.calibration import calibration_metrics
from aire.stats.intervals import AGGREGATIONS, clustered_mean_ci, mean_ci

LATENCY_PERCENTILES = ("p50", "p95", "p99")
_UNSAFE = re.compile(r"[^\w.\- ]")


def slice_suffix(field: str, value: str) -> str:
    """``/field:value`` with characters MLflow rejects in metric names replaced by ``_``."""
    return f"/{field}:{_UNSAFE.sub('_', value) or '_'}"


class ResultLike(Protocol):
    """What the summary needs from one per-sample result (a store row satisfies it)."""

    sample_id: str
    scores: Mapping[str, float]
    slices: Mapping[str, str]
    error_type: str | None
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    output_tokens: int | None


def _estimate(values: np.ndarray, n_missing: int, aggregation: str) -> Estimate:
    value, low, high = AGGREGATIONS[aggregation](values)
    return Estimate(value=value, n=len(values), n_errors=n_missing, ci_low=low, ci_high=high)


def _latency_arrays(rows: Sequence[ResultLike]) -> dict[str, np.ndarray]:
    ok = [r for r in rows if r.error_type is None]

    def col(get: Any, scale: float) -> np.ndarray:
        vals = [get(r) for r in ok]
        return np.array([v * scale for v in vals if v is not None], dtype=float)

    return {
        "ttft_ms": col(lambda r: r.ttft_s, 1000.0),
        "tpot_ms": col(lambda r: r.tpot_s, 1000.0),
        "e2e_ms": col(lambda r: r.e2e_s, 1000.0),
        "output_tokens": col(lambda r: r.output_tokens, 1.0),
    }


def _repeat_metrics(name: str, raw: np.ndarray, clusters: np.ndarray, k: int, suffix: str) -> dict[str, Estimate]:
    """pass@k and pass^k of a 0/1 metric, one value per sample; a sample with an unscored repeat is
    left out of both (its k-th answer is unknown), and counted as missing."""
    per_sample: dict[str, list[float]] = {}
    for value, cluster in zip(raw, clusters, strict=True):
        per_sample.setdefault(str(cluster), []).append(float(value))
    complete = [v for v in per_sample.values() if not any(math.isnan(x) for x in v)]
    missing = len(per_sample) - len(complete)
    any_right = np.array([float(max(v) == 1.0) for v in complete])
    all_right = np.array([float(min(v) == 1.0) for v in complete])
    return {
        f"{name}/pass_at_{k}{suffix}": _estimate(any_right, missing, "mean"),
        f"{name}/pass_hat_{k}{suffix}": _estimate(all_right, missing, "mean"),
    }


def _summarise_group(
    rows: Sequence[ResultLike], aggregations: Mapping[str, Sequence[str]], suffix: str, repeats: int = 1
) -> tuple[dict[str, Estimate], dict[str, Estimate]]:
    metrics: dict[str, Estimate] = {}
    clusters = np.array([sample_of(r.sample_id) for r in rows]) if repeats > 1 else None
    for name, aggs in aggregations.items():
        raw = np.array([r.scores.get(name, math.nan) for r in rows], dtype=float)
        keep = ~np.isnan(raw)
        scored = raw[keep]
        missing = len(raw) - len(scored)
        for agg in aggs:
            metrics[f"{name}/{agg}{suffix}"] = _estimate(scored, missing, agg)
        if clusters is None:
            continue
        if "mean" in aggs:
            value, low, high = clustered_mean_ci(scored, clusters[keep])
            metrics[f"{name}/mean{suffix}"] = Estimate(
                value=value, n=len(scored), n_errors=missing, ci_low=low, ci_high=high
            )
        if len(scored) and np.isin(scored, (0.0, 1.0)).all():
            metrics.update(_repeat_metrics(name, raw, clusters, repeats, suffix))
    latency: dict[str, Estimate] = {}
    n_failed = sum(1 for r in rows if r.error_type is not None)
    for sli, values in _latency_arrays(rows).items():
        for pct in LATENCY_PERCENTILES:
            latency[f"latency/{sli}/{pct}{suffix}"] = _estimate(values, n_failed, pct)
        if sli == "output_tokens":
            latency[f"latency/{sli}/mean{suffix}"] = Estimate(
                value=mean_ci(values)[0], n=len(values), n_errors=n_failed
            )
    return metrics, latency


def cost_slis(
    rows: Sequence[ResultLike], metrics: Mapping[str, Estimate], price: Any | None = None
) -> dict[str, float]:
    """Tokens in and out (total, per request), request time (total, per request) and, given a price
    (``input_per_1k``, ``output_per_1k``), the run's cost: total, per request, and per quality point
    of every mean metric: cost / (sum of that metric's scores), e.g. the cost of one right answer.

    Tokens a server did not report count as zero; requests that failed count in the per-request
    figures, because they were paid for.
    """
    n = len(rows)
    if n == 0:
        return {}
    prompt = sum(getattr(r, "prompt_tokens", None) or 0 for r in rows)
    output = sum(r.output_tokens or 0 for r in rows)
    seconds = sum(r.e2e_s or 0.0 for r in rows)
    out = {
        "cost/prompt_tokens/total": float(prompt),
        "cost/output_tokens/total": float(output),
        "cost/prompt_tokens/per_request": prompt / n,
        "cost/output_tokens/per_request": output / n,
        "cost/request_s/total": seconds,
        "cost/request_s/per_request": seconds / n,
    }
    if price is None:
        return out
    total = prompt / 1000 * price.input_per_1k + output / 1000 * price.output_per_1k
    out["cost/total"] = total
    out["cost/per_request"] = total / n
    for key, est in metrics.items():
        name, _, agg = key.partition("/")
        if agg != "mean" or not math.isfinite(est.value):
            continue
        points = est.value * est.n  # the sum of the scores: right answers, for a 0/1 metric
        out[f"cost/per_point/{name}"] = total / points if points > 0 else math.inf
    return out


def summarise(
    rows: Sequence[ResultLike],
    aggregations: Mapping[str, Sequence[str]],
    slice_fields: Sequence[str] = (),
    price: Any | None = None,
    repeats: int = 1,
    calibration: Sequence[tuple[str, str, float]] = (),
) -> Summary:
    """``aggregations`` maps evaluator name -> the aggregations it declared; ``price`` an endpoint's
    price per 1,000 tokens (``aire.client.config.Price``), for the cost SLIs; ``repeats`` the suite's
    (rows of one sample are then one cluster); ``calibration`` (confidence metric, 0/1 correctness
    metric, coverage) triples, for ``<confidence>/ece``, ``<confidence>/accuracy_at_coverage_<c>``
    and the reliability diagram."""
    metrics, latency = _summarise_group(rows, aggregations, "", repeats)
    cost = cost_slis(rows, metrics, price)
    for field in slice_fields:
        groups: dict[str, list[ResultLike]] = {}
        for r in rows:
            groups.setdefault(r.slices.get(field, ""), []).append(r)
        for value, members in sorted(groups.items()):
            m, lat = _summarise_group(members, aggregations, slice_suffix(field, value), repeats)
            metrics.update(m)
            latency.update(lat)
    reliability: dict[str, list[ReliabilityBin]] = {}
    for confidence, correct, coverage in calibration:
        m, bins = _calibration(rows, confidence, correct, coverage, repeats)
        metrics.update(m)
        if bins:
            reliability[confidence] = bins
    return Summary(
        n_samples=len(rows),
        n_errors=sum(1 for r in rows if r.error_type is not None),
        metrics=metrics,
        latency=latency,
        cost=cost,
        reliability=reliability,
    )


def _calibration(
    rows: Sequence[ResultLike], confidence: str, correct: str, coverage: float, repeats: int
) -> tuple[dict[str, Estimate], list[ReliabilityBin]]:
    conf = np.array([r.scores.get(confidence, math.nan) for r in rows], dtype=float)
    right = np.array([r.scores.get(correct, math.nan) for r in rows], dtype=float)
    scored = right[~np.isnan(right)]
    if not np.isin(scored, (0.0, 1.0)).all():
        # Calibration is against right or wrong; a graded score has no accuracy to compare with.
        right = np.full_like(right, math.nan)
    clusters = np.array([sample_of(r.sample_id) for r in rows]) if repeats > 1 else None
    return calibration_metrics(confidence, conf, right, coverage=coverage, clusters=clusters)
