"""Summary statistics: values, n, not-scored counts and confidence intervals that cover the truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pytest

from aire.stats.intervals import mean_ci, quantile_ci, quantile_ci_min_n
from aire.stats.summary import summarise


@dataclass
class Row:
    scores: dict[str, float]
    sample_id: str = "s"
    slices: dict[str, str] = field(default_factory=dict)
    error_type: str | None = None
    ttft_s: float | None = 0.01
    tpot_s: float | None = 0.002
    e2e_s: float | None = 0.02
    output_tokens: int | None = 3
    prompt_tokens: int | None = 10


def test_wilson_interval_for_binary_scores() -> None:
    value, low, high = mean_ci(np.array([1.0] * 90 + [0.0] * 10))
    assert value == pytest.approx(0.9)
    # Reference values of the Wilson score interval for 90/100.
    assert low == pytest.approx(0.8256, abs=1e-3) and high == pytest.approx(0.9448, abs=1e-3)
    # At 100% the interval still has width: no false certainty from a perfect sample.
    _, low, high = mean_ci(np.ones(50))
    assert high == 1.0 and low < 0.95


def test_t_interval_for_continuous_scores() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for _ in range(400):
        _, low, high = mean_ci(rng.normal(5.0, 2.0, size=40))
        covered += low <= 5.0 <= high
    assert 0.92 <= covered / 400 <= 0.98


def test_quantile_ci_covers_true_quantile() -> None:
    rng = np.random.default_rng(1)
    true_p95 = -math.log(0.05)  # exponential(1)
    covered = 0
    for _ in range(400):
        _, low, high = quantile_ci(rng.exponential(1.0, size=300), 0.95)
        covered += low <= true_p95 <= high
    assert covered / 400 >= 0.92


def test_quantile_ci_absent_when_tail_unsupported() -> None:
    value, low, high = quantile_ci(np.array([1.0, 2.0, 3.0]), 0.99)
    assert value == pytest.approx(2.98) and low is None and high is None


def test_nan_is_not_scored_not_zero() -> None:
    rows = [Row({"em": 1.0}), Row({"em": 1.0}), Row({"em": math.nan}), Row({"em": math.nan}, error_type="http")]
    summary = summarise(rows, {"em": ("mean",)})
    est = summary.metrics["em/mean"]
    assert est.value == 1.0 and est.n == 2 and est.n_errors == 2
    assert summary.n_errors == 1
    # Latency only from successful requests.
    assert summary.latency["latency/ttft_ms/p50"].n == 3
    assert summary.latency["latency/ttft_ms/p50"].value == pytest.approx(10.0)


def test_slices_and_declared_aggregations() -> None:
    rows = [Row({"f1": v}, slices={"op": op}) for v, op in [(0.2, "add"), (0.4, "add"), (1.0, "mul/x")]]
    summary = summarise(rows, {"f1": ("mean", "median", "max")}, ["op"])
    assert summary.metrics["f1/mean"].value == pytest.approx(1.6 / 3)
    assert summary.metrics["f1/mean/op:add"].value == pytest.approx(0.3)
    # Characters MLflow rejects in metric names are replaced.
    assert summary.metrics["f1/max/op:mul_x"].value == 1.0
    assert "f1/median/op:add" in summary.metrics
    assert "latency/e2e_ms/p99/op:add" in summary.latency
    flat = summary.flat()
    assert all(math.isfinite(v) for v in flat.values())


def test_all_unscored_metric_is_nan_and_dropped_from_flat() -> None:
    summary = summarise([Row({"em": math.nan}, error_type="timeout")], {"em": ("mean",)})
    assert math.isnan(summary.metrics["em/mean"].value)
    assert "em/mean" not in summary.flat()


@pytest.mark.parametrize("n", [5, 37, 200, 1000])
def test_t_interval_equals_scipy_stats(n: int) -> None:
    """aire.stats.intervals uses scipy.special for import speed; scipy.stats is the reference it must equal.
    (Wilson and the quantile CI are pinned to statsmodels and scipy in test_intervals_reference.py.)"""
    from scipy import stats

    x = np.random.default_rng(n).normal(size=n)
    ref_low, ref_high = stats.t.interval(0.95, df=n - 1, loc=x.mean(), scale=stats.sem(x))
    _, low, high = mean_ci(x)
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)


@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("confidence", [0.95, 0.975, 0.99])
def test_quantile_ci_min_n_is_where_the_interval_starts(q: float, confidence: float) -> None:
    n = quantile_ci_min_n(q, confidence)
    assert quantile_ci(np.arange(n, dtype=float), q, confidence)[2] is not None
    assert quantile_ci(np.arange(n - 1, dtype=float), q, confidence)[2] is None
    if (q, confidence) == (0.99, 0.95):
        assert n == 368


def test_cost_slis_count_tokens_time_and_price_per_quality_point() -> None:
    from aire.client.config import Price

    rows = [Row(scores={"em": 1.0}) for _ in range(6)] + [Row(scores={"em": 0.0}) for _ in range(2)]
    rows.append(Row(scores={}, error_type="http", output_tokens=None, prompt_tokens=None, e2e_s=0.5))
    summary = summarise(rows, {"em": ["mean"]}, price=Price(input_per_1k=0.5, output_per_1k=2.0))
    cost = summary.cost
    assert cost["cost/prompt_tokens/total"] == 80 and cost["cost/output_tokens/total"] == 24
    assert cost["cost/prompt_tokens/per_request"] == pytest.approx(80 / 9)  # the failed request was paid for
    assert cost["cost/request_s/total"] == pytest.approx(8 * 0.02 + 0.5)
    total = 80 / 1000 * 0.5 + 24 / 1000 * 2.0
    assert cost["cost/total"] == pytest.approx(total) and cost["cost/per_request"] == pytest.approx(total / 9)
    assert cost["cost/per_point/em"] == pytest.approx(total / 6)  # six right answers
    assert summary.flat()["cost/total"] == pytest.approx(total)
    # No price: tokens and time only; no right answer: a point costs infinitely much (not logged).
    assert "cost/total" not in summarise(rows, {"em": ["mean"]}).cost
    wrong = summarise([Row(scores={"em": 0.0})], {"em": ["mean"]}, price=Price(output_per_1k=1.0))
    assert wrong.cost["cost/per_point/em"] == math.inf and "cost/per_point/em" not in wrong.flat()
