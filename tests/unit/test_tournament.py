"""Tournaments (aire.gate.tournament): the family-wise chance that any of three challengers exactly at the
margin PASSes, simulated through the gate's own compare() and decide() at small n, at high accuracy and
at n = 1,000, stays within the one-sided alpha / 2 with Bonferroni and is about three times it without;
the standings rank PASSes by their difference, at most one wins, and only the winner's decision can be
promoted."""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from scipy import special

from aire.core.errors import PromotionRefused
from aire.core.rules import NonInferiorityRule
from aire.core.types import Verdict
from aire.gate import tournament
from aire.gate.evidence import PairedData, compare
from aire.gate.policy import Counts, Policy, decide
from aire.gate.record import read_decision

M = "exact_match/mean"
BASE = Policy(n_min=100, rules=[NonInferiorityRule(metric=M, margin=0.05)])
POLICIES = {1: BASE, 3: tournament.family_policy(BASE, 3)}


@cache
def verdict(k: int, n: int, both: int, only_a: int, only_b: int) -> Verdict:
    """The gate's verdict on one challenger's 2x2 table against the champion, under POLICIES[k]."""
    neither = n - both - only_a - only_b
    a = np.array([1.0] * both + [1.0] * only_a + [0.0] * only_b + [0.0] * neither)
    b = np.array([1.0] * both + [0.0] * only_a + [1.0] * only_b + [0.0] * neither)
    policy = POLICIES[k]
    data = PairedData(ids=[str(i) for i in range(n)], quality={M: (a, b, True)}, counts=Counts(n_pairs=n))
    comparison = compare(data, alpha=policy.alpha, fail_alpha=policy.fail_alpha, supplementary=False, latency=False)
    return decide(policy, comparison.evidence(set()), data.counts).verdict


def any_pass_rate(p_a: float, p_b: float, n: int, sims: int, k: int = 3, rho: float = 0.5) -> dict[int, float]:
    """Share of tournaments of k challengers (all at accuracy p_b, each correlated rho with the one
    champion's latent difficulty) in which at least one PASSes, uncorrected (1) and Bonferroni (k)."""
    rng = np.random.default_rng(7)
    z1 = rng.standard_normal((sims, n))
    champion = z1 < special.ndtri(p_a)
    hits = {1: 0, k: 0}
    for s in range(sims):
        passed = {1: False, k: False}
        for _ in range(k):
            z2 = rho * z1[s] + math.sqrt(1 - rho * rho) * rng.standard_normal(n)
            ch = z2 < special.ndtri(p_b)
            table = (int((champion[s] & ch).sum()), int((champion[s] & ~ch).sum()), int((~champion[s] & ch).sum()))
            for fam in hits:
                passed[fam] |= verdict(fam, n, *table) is Verdict.PASS
        for fam in hits:
            hits[fam] += passed[fam]
    return {fam: h / sims for fam, h in hits.items()}


@pytest.mark.parametrize(
    ("n", "p_a", "sims"), [(300, 0.9, 2000), (100, 0.9, 1000), (300, 0.98, 1000), (1000, 0.9, 1000)]
)
def test_bonferroni_holds_the_family_wise_false_pass_rate_at_the_margin(n: int, p_a: float, sims: int) -> None:
    rates = any_pass_rate(p_a, p_a - 0.05, n, sims)
    # Measured: 0.0235 / 0.025 / 0.021 / 0.020 with Bonferroni; 0.058-0.070 without (nominal 0.025).
    assert rates[3] <= 0.025 + 3 * math.sqrt(0.025 * 0.975 / sims), rates
    assert rates[1] >= 2 * rates[3] and rates[1] > 0.045, rates


def test_the_price_of_control_equal_challengers_still_usually_produce_a_winner() -> None:
    rates = any_pass_rate(0.9, 0.9, 300, 500)
    assert 0.65 <= rates[3] < rates[1]  # measured 0.74 vs 0.90 uncorrected


def decision_file(folder: Path, delta: float, low: float, high: float) -> Path:
    folder.mkdir(parents=True)
    doc = {
        "verdict": "PASS",
        "exit_code": 0,
        "reasons": [],
        "rules": [],
        "counts": {"n_pairs": 200},
        "metrics": {M: {"delta": {"value": delta, "ci_low": low, "ci_high": high}, "higher_is_better": True}},
        "provenance": {},
        "registry": {"model": "aire-model", "champion_version": "1", "challenger_version": folder.name},
        "mlflow": {"run_id": "r", "tracking_uri": "sqlite:///x"},
    }
    (folder / "decision.json").write_text(json.dumps(doc))
    return folder


def test_standings_rank_passes_by_difference_and_only_the_winner_is_promotable(tmp_path: Path) -> None:
    from aire.cli.app import main

    out = tmp_path / "t"
    results = {
        "b": (Verdict.PASS, decision_file(out / "b", -0.01, -0.03, 0.01)),
        "c": (Verdict.FAIL, decision_file(out / "c", -0.2, -0.26, -0.15)),
        "a": (Verdict.PASS, decision_file(out / "a", 0.02, -0.01, 0.05)),
        "d": (Verdict.INCONCLUSIVE, decision_file(out / "d", 0.05, -0.2, 0.3)),
    }
    rows = tournament.standings(BASE, results)
    assert [r.challenger for r in rows] == ["a", "b", "d", "c"]  # PASSes by delta, then INCONCLUSIVE, FAIL
    assert tournament.winner(rows) == "a" and tournament.exit_code(rows) == 0
    tournament.write(out, rows, BASE, "champion")
    assert read_decision(out / "decision.json").registry.challenger_version == "a"
    assert "**Winner: a**" in (out / "tournament.md").read_text()
    loser = read_decision(out / "b" / "decision.json")
    assert loser.tournament is not None and loser.tournament.winner == "a" and not loser.tournament.promotable
    with pytest.raises(PromotionRefused, match="the tournament's winner is a"):
        # The CLI refuses before it touches a registry (none exists here).
        from aire.cli import gate_cmds

        gate_cmds.promote_cmd(decision=out / "b" / "decision.json", alias="production")
    assert main(["promote", "--decision", str(out / "b" / "decision.json"), "--alias", "production"]) == 1

    # No PASS at all: no winner, nothing promotable left from an earlier tournament in the folder.
    none = {"c": results["c"], "d": results["d"]}
    rows = tournament.standings(BASE, none)
    tournament.write(out, rows, BASE, "champion")
    assert tournament.winner(rows) is None and tournament.exit_code(rows) == 2
    assert not (out / "decision.json").exists()
    assert tournament.exit_code(tournament.standings(BASE, {"c": results["c"]})) == 1
