"""The disparity rule: the largest gap of a metric between slices, judged on simultaneous (Bonferroni)
intervals. Error rates by simulation at the bound (two and three slices, at high accuracy, at small
n), the min_n floor, the paired "must not widen the champion's gap" form, and a planted disparity (a
challenger wrong only on one slice) caught through the shadow engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aire.core.rules import DisparityRule
from aire.core.types import Verdict
from aire.gate.disparity import gap_evidence
from aire.gate.evidence import compare
from aire.gate.policy import Policy, decide

ROOT = Path(__file__).resolve().parents[2]
RULE = DisparityRule(metric="em/mean/gap:s", max_gap=0.10, min_n=20)


def simulate(
    means: list[float], n: int, reps: int, rule: DisparityRule, seed: int, champion: list[float] | None = None
) -> dict[Verdict, float]:
    rng = np.random.default_rng(seed)
    labels = np.repeat([f"g{i}" for i in range(len(means))], n)
    counts = {v: 0 for v in Verdict}
    for rep in range(reps):
        b = np.concatenate([rng.random(n) < m for m in means]).astype(float)
        a = np.concatenate([rng.random(n) < m for m in (champion or means)]).astype(float)
        ev, _ = gap_evidence(a, b, labels, alpha=0.05, fail_alpha=0.05, seed=rep)
        counts[rule.judge(ev, alpha=0.05, fail_alpha=0.05).verdict] += 1
    return {k: v / reps for k, v in counts.items()}


@pytest.mark.parametrize(
    ("means", "n"),
    [
        ([0.80, 0.70], 200),  # gap exactly at the bound
        ([0.99, 0.89], 200),  # high accuracy
        ([0.80, 0.75, 0.70], 150),  # three slices
        ([0.80, 0.70], 25),  # small n, just above min_n
    ],
)
def test_a_gap_at_the_bound_rarely_passes(means: list[float], n: int) -> None:
    rates = simulate(means, n, reps=400, rule=RULE, seed=n)
    print(f"means {means} n={n}: {rates}")
    assert rates[Verdict.PASS] <= 0.025 + 0.015  # nominal alpha/2, plus simulation error (400 runs)


def test_a_gap_well_below_the_bound_passes_and_one_well_above_fails() -> None:
    assert simulate([0.80, 0.79], 1500, reps=100, rule=RULE, seed=1)[Verdict.PASS] > 0.8
    assert simulate([0.90, 0.60], 200, reps=100, rule=RULE, seed=2)[Verdict.FAIL] > 0.95


def test_slices_smaller_than_min_n_are_inconclusive() -> None:
    labels = np.array(["a"] * 10 + ["b"] * 100)
    ev, note = gap_evidence(np.ones(110), np.ones(110), labels, alpha=0.05, fail_alpha=0.05)
    result = RULE.judge(ev, alpha=0.05)
    assert result.verdict is Verdict.INCONCLUSIVE and "only 10 scored pairs" in result.reason
    assert note == "slices a (n=10), b (n=100)"


def test_the_paired_form_bounds_how_much_the_challenger_widens_the_gap() -> None:
    paired = RULE.model_copy(update={"paired": True, "max_gap": 0.05})
    # The champion already has a 10-point gap; a challenger with the same gap widens nothing.
    same = simulate([0.85, 0.75], 2000, reps=40, rule=paired, seed=3, champion=[0.85, 0.75])
    assert same[Verdict.PASS] > 0.5
    # A challenger that widens it by 15 points FAILs the paired rule.
    wider = simulate([0.90, 0.65], 1000, reps=60, rule=paired, seed=4, champion=[0.85, 0.75])
    assert wider[Verdict.FAIL] > 0.85
    # At the margin (widening by exactly 0.05) the bootstrap PASSes about alpha/2 of the time, at most.
    margin = simulate([0.875, 0.725], 400, reps=200, rule=paired, seed=5, champion=[0.85, 0.75])
    assert margin[Verdict.PASS] <= 0.025 + 0.03


def test_a_gap_rule_needs_a_gap_metric_and_a_slice_field() -> None:
    with pytest.raises(ValueError, match="gap:"):
        DisparityRule(metric="em/mean", max_gap=0.1)
    assert RULE.judge(None).verdict is Verdict.ERROR


async def test_a_planted_disparity_is_caught_through_the_shadow_engine(tmp_path: Path) -> None:
    from aire.core.settings import Settings
    from aire.run import prepare_shadow, sending_pairs
    from aire.run.pairs import paired_data, run_pairs
    from aire.testing.fake_openai import FakeOpenAI, arithmetic_answer

    def worse_on_products(prompt: str) -> str:
        right = arithmetic_answer(prompt)
        return " 0" if "*" in prompt and right.strip() != "0" else right  # every product wrong

    policy_file = tmp_path / "fair.yaml"
    policy_file.write_text(
        "name: fair\nn_min: 50\nrules:\n"
        "  - {metric: exact_match/mean, kind: floor, threshold: 0.3, critical: false}\n"
        "  - {metric: numeric/mean, kind: floor, threshold: 0.3, critical: false}\n"
        "  - {metric: exact_match/mean/gap:op, kind: disparity, max_gap: 0.1, min_n: 30}\n"
    )
    async with FakeOpenAI(latency_s=0) as champion, FakeOpenAI(latency_s=0, answer=worse_on_products) as challenger:
        config = tmp_path / "aire.yaml"
        eps = {"champion": champion, "challenger": challenger}
        config.write_text(
            json.dumps({"endpoints": {k: {"base_url": s.base_url, "model": "fake"} for k, s in eps.items()}})
        )
        settings = Settings(home=tmp_path / "home", datasets_dir=ROOT / "datasets", config=config, max_attempts=1)
        plan = await prepare_shadow(
            settings, policy=policy_file, champion="champion", challenger="challenger", suite="arith"
        )
        async with sending_pairs(plan):
            await run_pairs(plan, plan.samples)
        data = await paired_data(plan)
    comparison = compare(data, alpha=plan.policy.alpha, fail_alpha=plan.policy.fail_alpha)
    gap = comparison.gaps["exact_match/mean/gap:op"].evidence
    assert gap.champion is not None and gap.champion.value == 0.0
    assert gap.challenger is not None and gap.challenger.value > 0.8  # additions right, products wrong
    decision = decide(plan.policy, comparison.evidence({r.metric for r in plan.policy.rules}), data.counts)
    (rule,) = [r for r in decision.rules if r.rule.kind == "disparity"]
    assert rule.verdict is Verdict.FAIL and decision.verdict is Verdict.FAIL
    # A policy with no disparity rule is not blocked by the (descriptive) gap metrics.
    plain = Policy(rules=[r.rule for r in decision.rules if r.rule.kind == "floor"], n_min=50)
    assert all("gap:" not in reason for reason in decide(plain, comparison.evidence(set()), data.counts).reasons)
