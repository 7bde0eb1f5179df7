"""Sequential non-inferiority: look after every batch, stop as soon as the answer is settled.

A fixed-n test checked after every batch inflates its false-alarm rate well past alpha. An
*always-valid* interval does not: the asymptotic confidence sequence of Waudby-Smith, Arbour,
Sinha, Kennedy and Ramdas ("Time-uniform central limit theory", 2021, eq. for the normal-mixture
boundary) covers the running mean at every sample size simultaneously with probability 1 - alpha.
No library in this stack ships it, so the boundary is written out below; the simulations in
tests/unit/test_sequential.py check its error rates.

The fixed-n plan for comparison comes from statsmodels' power solver.
"""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, computed_field

from aire.core.types import Verdict


class Look(BaseModel):
    """One interim analysis: how many pairs had been seen and what the quality rules said."""

    n: int
    verdict: Verdict


class SequentialInfo(BaseModel):
    """What a sequential comparison did, for the report: samples used vs the fixed-n plan."""

    batch: int
    cap: int
    n_used: int
    looks: list[Look]
    fixed_n_plan: int | None = None  # pairs a fixed-n design needs (None: no non-inferiority rule)
    plan_basis: str = ""  # baseline, margin, alpha and power the plan was computed for

    @computed_field  # in model_dump and decision.json, for readers without this class
    @property
    def fraction_of_plan(self) -> float | None:
        return self.n_used / self.fixed_n_plan if self.fixed_n_plan else None


# Share of alpha spent on the always-valid sequence at the interim looks; the rest is spent once, on
# a fixed-n interval at the final look (the cap, fixed before the first request). A union bound
# keeps the whole design at alpha. Chosen by benchmarks/sequential.py: 0.6 settles a 10-point
# regression in under a quarter of the fixed-n plan and keeps most of the fixed-n design's A/A PASS
# rate at the cap (a sequence alone is ~1.5x wider than a fixed-n interval at its own sample size).
SEQUENCE_SHARE = 0.6
# Pseudo-observations of squared deviation 1 added to the variance: with zero discordant pairs in
# the first looks the sample variance is 0 and an asymptotic sequence would shrink to a point.
VARIANCE_FLOOR = 2.0


def split_alpha(alpha: float) -> tuple[float, float]:
    """(alpha of the sequence at every look, alpha of the fixed-n interval at the final look)."""
    return alpha * SEQUENCE_SHARE, alpha * (1 - SEQUENCE_SHARE)


def tuned_for(planned_n: int | None) -> int:
    """Where the sequence is tightest: a quarter of the planned sample size, where a clear regression
    should already be settled (the final look covers the cap itself). 500 when nothing is planned."""
    return max(50, planned_n // 4) if planned_n else 500


def confidence_sequence(
    d: np.ndarray, alpha: float = 0.05, *, planned_n: int | None = None, rho: float | None = None
) -> tuple[float, float, float]:
    """Running mean of ``d`` with its two-sided always-valid (asymptotic) confidence sequence.

    Waudby-Smith et al. (2021), Theorem 2.2 with the normal-mixture boundary: the sample standard
    deviation sits outside the boundary, so ``rho`` is scale-free and is tuned by sample size only
    (``tuned_for(planned_n)``):

        mean +- sd * sqrt(2 (t rho^2 + 1) / (t^2 rho^2) * log(sqrt(t rho^2 + 1) / alpha))
    """
    t = len(d)
    mean = float(d.mean())
    ss = float(((d - mean) ** 2).sum())
    sd = math.sqrt((ss + VARIANCE_FLOOR) / (t - 1 + VARIANCE_FLOOR))
    if rho is None:
        a = alpha
        rho = math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / tuned_for(planned_n))
    r2 = rho * rho
    half = sd * math.sqrt((2 * (t * r2 + 1) / (t * t * r2)) * math.log(math.sqrt(t * r2 + 1) / alpha))
    return mean, mean - half, mean + half


def intersect(sequence: tuple[float, float], fixed: tuple[float, float] | None) -> tuple[float, float]:
    """At the final look: both intervals hold together with probability >= 1 - alpha (union bound
    over their two shares), so their intersection does too."""
    if fixed is None:
        return sequence
    return max(sequence[0], fixed[0]), min(sequence[1], fixed[1])


def fixed_n_plan(
    baseline: float,
    margin: float,
    *,
    alpha: float = 0.025,
    power: float = 0.8,
    true_delta: float = 0.0,
    sd: float | None = None,
) -> int:
    """Pairs needed by a one-sided paired non-inferiority test (normal approximation, statsmodels).

    ``alpha`` is one-sided: the gate with policy alpha 0.05 reads the lower end of a two-sided 95%
    interval, a one-sided test at 0.025 (planning at 0.05 gave ~70% power, not 80%).

    ``true_delta`` is the difference the plan must detect (0: the challenger is as good). The variance
    of a paired 0/1 difference is taken at its independent-pairs bound 2p(1-p), conservative for
    correlated pairs; ``sd`` overrides it with a measured standard deviation of the paired differences.
    """
    from statsmodels.stats.power import NormalIndPower

    p = baseline
    sd = sd if sd is not None and sd > 0 else math.sqrt(max(2 * p * (1 - p), 1e-9))
    effect = abs(true_delta + margin) / sd
    if effect == 0:
        raise ValueError("true_delta equals -margin: no sample size can tell them apart")
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=0, alternative="larger")
    return math.ceil(n)
