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
from pydantic import BaseModel

from aire.gate import Verdict


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

    @property
    def fraction_of_plan(self) -> float | None:
        return self.n_used / self.fixed_n_plan if self.fixed_n_plan else None


class SequentialState(BaseModel):
    n: int
    delta: float
    ci_low: float
    ci_high: float
    verdict: Verdict  # PASS / FAIL once settled, INCONCLUSIVE while it is not


def confidence_sequence(
    d: np.ndarray, alpha: float = 0.05, *, planned_n: int | None = None, rho: float | None = None
) -> tuple[float, float, float]:
    """Running mean of ``d`` with its two-sided always-valid (asymptotic) confidence sequence.

    ``rho`` tunes where the boundary is tightest; by default it is optimised for ~500 samples of
    unit variance, a typical suite size.
    """
    t = len(d)
    mean = float(d.mean())
    var = float(d.var(ddof=1)) if t > 1 else 1.0
    var = max(var, 1e-12)
    if rho is None:
        # Tightest near t* = 500 (Waudby-Smith et al.): rho^2 = (-2 log a + log(-2 log a + 1)) / t*.
        a = alpha
        rho = math.sqrt((-2 * math.log(a) + math.log(-2 * math.log(a) + 1)) / (planned_n or 500))
    r2 = rho * rho
    half = math.sqrt((2 * (t * r2 * var + 1) / (t * t * r2)) * math.log(math.sqrt(t * r2 * var + 1) / alpha))
    return mean, mean - half, mean + half


def sequential_non_inferiority(
    champion: np.ndarray,
    challenger: np.ndarray,
    *,
    margin: float,
    alpha: float = 0.05,
    batch: int = 50,
    n_min: int = 100,
    cap: int | None = None,
) -> SequentialState:
    """Walk through the pairs batch by batch; stop at the first settled verdict, or at the cap.

    PASS when the sequence lies wholly above -margin, FAIL when wholly below; never before n_min.
    """
    d_all = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    d_all = d_all[~np.isnan(d_all)]
    cap = min(cap or len(d_all), len(d_all))
    state = SequentialState(n=0, delta=math.nan, ci_low=-math.inf, ci_high=math.inf, verdict=Verdict.INCONCLUSIVE)
    for n in range(batch, cap + batch, batch):
        n = min(n, cap)
        mean, low, high = confidence_sequence(d_all[:n], alpha)
        verdict = Verdict.INCONCLUSIVE
        if n >= n_min:
            if low > -margin:
                verdict = Verdict.PASS
            elif high < -margin:
                verdict = Verdict.FAIL
        state = SequentialState(n=n, delta=mean, ci_low=low, ci_high=high, verdict=verdict)
        if verdict is not Verdict.INCONCLUSIVE or n == cap:
            break
    return state


def fixed_n_plan(
    baseline: float,
    margin: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    true_delta: float = 0.0,
    sd: float | None = None,
) -> int:
    """Pairs needed by a one-sided paired non-inferiority test (normal approximation, statsmodels).

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
