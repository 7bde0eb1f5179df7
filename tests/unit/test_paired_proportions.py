"""Tango's score interval for paired 0/1 differences: its formula, its inversion, that the gate
decides with it, and its one-sided error at the non-inferiority margin by exact enumeration over
every table of discordant pairs (no Monte Carlo error)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, special

from aire.gate.evidence import PairedData, compare
from aire.gate.policy import Counts, NonInferiorityRule, Policy, Verdict, decide
from aire.stats.paired_proportions import latent_cells, restricted_q, score_z, table_log_pmf, tango_interval

ALPHA = 0.05
MARGIN = 0.03
CRIT = float(special.ndtri(1 - ALPHA / 2))
BASELINES = (0.80, 0.90, 0.95, 0.98, 0.99)
RHOS = (0.5, 0.7, 0.9)
NS = (100, 200, 500, 1000)


def test_restricted_mle_is_the_constrained_maximum() -> None:
    rng = np.random.default_rng(1)
    checked = 0
    for _ in range(200):
        n = int(rng.integers(20, 500))
        b, c = int(rng.integers(0, n // 4)), int(rng.integers(0, n // 4))
        theta = float(rng.uniform(-0.3, 0.3))
        lo, hi = max(0.0, -theta) + 1e-12, (1 - theta) / 2 - 1e-12

        def nll(q: float, b: int = b, c: int = c, n: int = n, theta: float = theta) -> float:
            cells = (q + theta, q, 1 - 2 * q - theta)
            if min(cells) <= 0:
                return 1e18
            return -(b * math.log(cells[0]) + c * math.log(cells[1]) + (n - b - c) * math.log(cells[2]))

        best = optimize.minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
        q = float(restricted_q(b, c, n, theta))
        assert nll(q) <= nll(best.x) + 1e-6, (b, c, n, theta)
        checked += 1
    assert checked > 150


def test_interval_inverts_the_statistic() -> None:
    rng = np.random.default_rng(2)
    for _ in range(300):
        n = int(rng.integers(30, 1000))
        b, c = int(rng.integers(0, n // 5)), int(rng.integers(0, n // 5))
        low, high = tango_interval(b, c, n, ALPHA)
        assert low <= (b - c) / n <= high
        if low > -1:
            assert float(score_z(b, c, n, low)) == pytest.approx(CRIT, abs=1e-6)
        # The enumeration below judges a table by z(-m) > crit: the same as "lower bound above -m".
        assert (low > -MARGIN) == bool(score_z(b, c, n, -MARGIN) > CRIT)


def test_no_discordant_pair_is_not_proof_of_equality() -> None:
    low, high = tango_interval(0, 0, 200)
    assert low < -0.01 and high > 0.01  # a tie on 200 items still leaves ~ +-1.9 points
    assert tango_interval(0, 0, 200) == pytest.approx((-high, -low))


def _ni_policy() -> Policy:
    return Policy(n_min=1, rules=[NonInferiorityRule(metric="exact_match/mean", margin=MARGIN)])


def test_the_gate_decides_with_the_score_interval() -> None:
    """compare -> decide on real arrays gives PASS exactly where the statistic says so."""
    rng = np.random.default_rng(3)
    n = 200
    for _ in range(60):
        b, c = int(rng.integers(0, 12)), int(rng.integers(0, 12))
        champion = np.array([0.0] * b + [1.0] * c + [1.0] * (n - b - c))
        challenger = np.array([1.0] * b + [0.0] * c + [1.0] * (n - b - c))
        data = PairedData(
            ids=[str(i) for i in range(n)],
            quality={"exact_match/mean": (champion, challenger, True)},
            counts=Counts(n_pairs=n),
        )
        comp = compare(data, alpha=ALPHA, supplementary=False, latency=False)
        assert comp.metrics["exact_match/mean"].method == "mcnemar"
        verdict = decide(_ni_policy(), comp.evidence(set()), data.counts).verdict
        expected = bool(score_z(b, c, n, -MARGIN) > CRIT)
        assert (verdict is Verdict.PASS) == expected, (b, c, verdict)


def _pass_probability(base: float, delta: float, rho: float, n: int, passes) -> float:
    p_b, p_c = latent_cells(base, base + delta, rho)
    b, c, logp = table_log_pmf(n, p_b, p_c)
    return float(np.exp(logp)[passes(b, c, n)].sum())


def _tango_pass(b: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    return score_z(b, c, n, -MARGIN) > CRIT


def _agresti_min_pass(b: np.ndarray, c: np.ndarray, n: int) -> np.ndarray:
    """The interval the gate used before (Wald after adding 1/2 to each cell), for contrast."""
    champ, chall, m = c + 0.5, b + 0.5, n + 2.0
    centre = (chall - champ) / m
    var = ((champ + chall) - (chall - champ) ** 2 / m) / m**2
    return centre - CRIT * np.sqrt(np.maximum(var, 0.0)) > -MARGIN


def _oracle_power(base: float, rho: float, n: int) -> float:
    """A/A PASS probability of a z test that knew the true variance: what no interval can beat by much."""
    p_b, p_c = latent_cells(base, base, rho)
    sd = math.sqrt(p_b + p_c)
    return float(special.ndtr(MARGIN * math.sqrt(n) / sd - CRIT))


def test_false_pass_at_the_margin_by_exact_enumeration() -> None:
    """True delta = -margin: PASS must come at most alpha/2 + 0.005 of the time, in every cell."""
    worst = (0.0, None)
    worst_old = 0.0
    rows = []
    for base in BASELINES:
        for rho in RHOS:
            for n in NS:
                fp = _pass_probability(base, -MARGIN, rho, n, _tango_pass)
                old = _pass_probability(base, -MARGIN, rho, n, _agresti_min_pass)
                rows.append(f"base {base} rho {rho} n {n}: {fp:.4f} (Agresti-Min {old:.4f})")
                if fp > worst[0]:
                    worst = (fp, (base, rho, n))
                worst_old = max(worst_old, old)
    print("\n".join(rows))
    print(f"worst false PASS {worst[0]:.4f} at {worst[1]}; Agresti-Min worst {worst_old:.4f}")
    assert worst[0] <= ALPHA / 2 + 0.005, f"worst false PASS {worst[0]:.4f} at (base, rho, n) = {worst[1]}"
    # The same enumeration condemns the interval it replaced: the test can fail.
    assert worst_old > ALPHA / 2 + 0.005


def test_aa_pass_power_is_reported_and_does_not_collapse() -> None:
    """A/A (true delta 0): PASS probability by enumeration, beside a known-variance z test's."""
    rows: list[str] = []
    for base in BASELINES:
        for rho in RHOS:
            previous = 0.0
            for n in NS:
                power = _pass_probability(base, 0.0, rho, n, _tango_pass)
                oracle = _oracle_power(base, rho, n)
                p_b, p_c = latent_cells(base, base, rho)
                expected_discordant = n * (p_b + p_c)
                rows.append(
                    f"base {base} rho {rho} n {n}: A/A PASS {power:.3f} (known-variance z {oracle:.3f}; "
                    f"{expected_discordant:.1f} discordant pairs expected)"
                )
                assert power >= previous - 1e-9, rows[-1]  # more data never costs power
                previous = power
                # With enough discordant pairs to estimate a variance, the score interval is as
                # powerful as a test that knew it. With a handful (0.99 at n = 100: ~1 pair) a tie
                # is not proof of equality, so the power is lower by design, never near zero.
                if expected_discordant >= 20:
                    assert power >= oracle - 0.05, rows[-1]
                assert power >= 0.09, rows[-1]
    print("\n".join(rows))
