"""Sequential mode, validated by simulation: peeking at every batch keeps the false-FAIL rate at
most alpha, and a clear regression is settled with far fewer samples than the fixed-n plan."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
from scipy import stats

from aire.gate.policy import Verdict
from aire.stats.sequential import confidence_sequence, fixed_n_plan
from aire.testing.simulation import mixture_pairs

ALPHA = 0.05
SIMS = 1000


class SequentialState(NamedTuple):
    n: int
    delta: float
    ci_low: float
    ci_high: float
    verdict: Verdict  # PASS / FAIL once settled, INCONCLUSIVE while it is not


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
    """The confidence sequence alone, looked at every ``batch`` pairs (the product reads it through
    aire.run.looks, intersected with a fixed-n interval at the cap): stop at the first settled
    verdict, or at the cap.

    PASS when the sequence lies wholly above -margin, FAIL when wholly below; never before n_min.
    """
    d_all = np.asarray(challenger, dtype=float) - np.asarray(champion, dtype=float)
    d_all = d_all[~np.isnan(d_all)]
    cap = min(cap or len(d_all), len(d_all))
    state = SequentialState(n=0, delta=math.nan, ci_low=-math.inf, ci_high=math.inf, verdict=Verdict.INCONCLUSIVE)
    for n in range(batch, cap + batch, batch):
        n = min(n, cap)
        mean, low, high = confidence_sequence(d_all[:n], alpha, planned_n=cap)
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


def pair(rng: np.random.Generator, n: int, p_a: float, p_b: float) -> tuple[np.ndarray, np.ndarray]:
    return mixture_pairs(rng, n, p_a, p_b, keep=0.8)


def test_aa_with_peeking_at_every_batch_fails_at_most_alpha() -> None:
    rng = np.random.default_rng(31)
    seq_fails = naive_fails = 0
    for _ in range(SIMS):
        a, b = pair(rng, 1000, 0.9, 0.9)
        seq_fails += sequential_non_inferiority(a, b, margin=0.0, batch=50, n_min=100).verdict is Verdict.FAIL
        # The naive alternative: a fixed-n t interval recomputed at each look.
        d = b - a
        looks = np.arange(100, 1001, 50)
        means = np.array([d[:n].mean() for n in looks])
        sems = np.array([d[:n].std(ddof=1) / math.sqrt(n) for n in looks])
        naive_fails += bool(np.any(means + stats.t.ppf(1 - ALPHA / 2, looks - 1) * sems < 0))
    tolerance = 3 * math.sqrt(ALPHA * (1 - ALPHA) / SIMS)
    assert seq_fails / SIMS <= ALPHA + tolerance
    assert naive_fails / SIMS > seq_fails / SIMS  # why an always-valid method is needed


def test_ten_point_regression_is_failed_early() -> None:
    rng = np.random.default_rng(32)
    plan = fixed_n_plan(0.9, 0.03)  # the fixed-n design's planned size at the same alpha
    verdicts, used = [], []
    for _ in range(300):
        a, b = pair(rng, plan, 0.9, 0.8)
        state = sequential_non_inferiority(a, b, margin=0.03, batch=25, n_min=50)
        verdicts.append(state.verdict)
        used.append(state.n)
    assert np.mean([v is Verdict.FAIL for v in verdicts]) >= 0.8
    assert np.mean(used) <= 0.5 * plan


def test_never_decides_before_n_min_and_stops_at_cap() -> None:
    a = np.ones(400)
    b = np.zeros(400)  # as bad as it gets
    state = sequential_non_inferiority(a, b, margin=0.03, batch=10, n_min=100)
    assert state.verdict is Verdict.FAIL and state.n == 100
    rng = np.random.default_rng(33)
    a, b = pair(rng, 200, 0.9, 0.9)
    capped = sequential_non_inferiority(a, b, margin=0.0, batch=50, n_min=100, cap=150)
    assert capped.n == 150 and capped.verdict is Verdict.INCONCLUSIVE


def test_fixed_n_plan_matches_the_normal_formula() -> None:
    sd = math.sqrt(2 * 0.9 * 0.1)
    z = stats.norm.ppf(1 - ALPHA / 2) + stats.norm.ppf(0.8)  # one-sided alpha/2: what the gate reads
    assert fixed_n_plan(0.9, 0.03) == math.ceil((z * sd / 0.03) ** 2)
    assert fixed_n_plan(0.9, 0.03, power=0.9) > fixed_n_plan(0.9, 0.03)
    with pytest.raises(ValueError):
        fixed_n_plan(0.9, 0.03, true_delta=-0.03)


def test_plan_command(capsys: pytest.CaptureFixture[str]) -> None:
    from aire.cli.app import main

    assert main(["plan", "--baseline", "0.9", "--margin", "0.03"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{fixed_n_plan(0.9, 0.03, alpha=0.025)} pairs")
    assert "one-sided alpha 0.025 (the gate's two-sided 95% interval)" in out
    assert main(["plan", "--baseline", "0.9", "--margin", "0.03", "--alpha", "0.1"]) == 0
    assert "one-sided alpha 0.05 (the gate's two-sided 90% interval)" in capsys.readouterr().out
    assert main(["plan", "--baseline", "0.9", "--margin", "0.03", "--true-delta", "-0.03"]) == 3
    assert main(["plan", "--baseline", "1.5", "--margin", "0.03"]) == 3


def test_plan_has_its_power_through_the_gate() -> None:
    """At the planned n, an equally good challenger PASSes the gate's non-inferiority rule with the
    planned power: exact enumeration over every table, independent pairs (the plan's variance)."""
    from scipy import special

    from aire.stats.paired_proportions import score_z, table_log_pmf

    crit = float(special.ndtri(1 - ALPHA / 2))
    for baseline in (0.8, 0.9, 0.95):
        p_disc = baseline * (1 - baseline)
        powers = {}
        for name, plan_alpha in (("gate", ALPHA / 2), ("old", ALPHA)):
            n = fixed_n_plan(baseline, 0.03, alpha=plan_alpha)
            b, c, logp = table_log_pmf(n, p_disc, p_disc)
            powers[name] = float(np.exp(logp)[score_z(b, c, n, -0.03) > crit].sum())
        assert 0.77 <= powers["gate"] <= 0.85, (baseline, powers)
        assert powers["old"] < 0.74, (baseline, powers)  # planning at one-sided 0.05 was ~20% too small
