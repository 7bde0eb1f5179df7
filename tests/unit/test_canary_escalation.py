"""When a scheduled canary rolls production back (aire.monitor.escalation), by simulation through the canary's
own decision path: aire.monitor.judge_canary (compare -> decide with the canary policy that
``_canary_policy`` builds, at the policy's alpha and at its canary_severe_alpha), then ``escalate``.

Each canary probes ``Settings().canary_size`` (300) fresh inputs (independent subsets); the smaller
canary of 100 is simulated too, to show why the default is 300. Scores are 0/1 and paired: a latent
bivariate normal per input (correlation 0.7) thresholded at each arm's accuracy gives the baseline
(the score recorded when the version was gated) and production's score now.

Speed: for 0/1 pairs with no NaN, what compare computes (McNemar's test with Tango's interval for the
difference, Wilson for each arm) depends only on the paired 2x2 table, so each distinct table is
judged once, on arrays rebuilt from it (``test_judging_a_table_is_judging_its_arrays`` checks that).
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import pytest

from aire.core.settings import Settings
from aire.gate.evidence import PairedData
from aire.gate.policy import Counts, FloorRule, LatencySLORule, NonInferiorityRule, Policy, Verdict
from aire.monitor.escalation import CanaryState, escalate
from aire.monitor.judge import _canary_policy, judge_canary
from aire.testing.simulation import latent_pairs, tables

METRIC = "exact_match/mean"
RHO = 0.7
RUNS_PER_MONTH = 30  # a canary a day; a 15-minute schedule runs these 30 in 7.5 hours
# A floor of 0.9 and non-inferiority within 0.03 of the recorded baseline, as in gates/default.yaml.
# The latency rule is the SLOs' job after deploy: _canary_policy drops it.
POLICY = Policy(
    name="canary-simulation",
    alpha=0.05,
    rules=[
        NonInferiorityRule(metric=METRIC, margin=0.03),
        FloorRule(metric=METRIC, threshold=0.9),
        LatencySLORule(metric="latency/ttft_ms/p95", threshold=500, higher_is_better=False),
    ],
)
SIZE = Settings.model_fields["canary_size"].default  # the default, not what this shell's AIRE_ env says
F, INC, P, E = Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.PASS, Verdict.ERROR


# ------------------------------------------------------------------------------------ simulation
def _arrays(n: int, both: int, only_base: int, only_now: int) -> tuple[np.ndarray, np.ndarray]:
    neither = n - both - only_base - only_now
    base = np.array([1.0] * both + [1.0] * only_base + [0.0] * only_now + [0.0] * neither)
    now = np.array([1.0] * both + [0.0] * only_base + [1.0] * only_now + [0.0] * neither)
    return base, now


def _judge_arrays(base: np.ndarray, now: np.ndarray) -> tuple[Verdict, Verdict]:
    n = len(base)
    data = PairedData(ids=[str(i) for i in range(n)], quality={METRIC: (base, now, True)}, counts=Counts(n_pairs=n))
    judged = judge_canary(POLICY, data, n)
    return judged.decision.verdict, judged.severe.verdict


@cache
def _judge(n: int, both: int, only_base: int, only_now: int) -> tuple[Verdict, Verdict]:
    """(verdict at the policy's alpha, verdict at canary_severe_alpha) of one canary's 2x2 table."""
    return _judge_arrays(*_arrays(n, both, only_base, only_now))


def _tables(rng: np.random.Generator, shape: tuple[int, ...], n: int, p_base: float, p_now: float) -> np.ndarray:
    """Paired 0/1 scores of ``n`` inputs per canary, reduced to (both right, only baseline right, only
    production right): shape + (3,)."""
    return tables(*latent_pairs(rng, (*shape, n), p_base, p_now, RHO))


def _first_rollback(verdicts: list[tuple[Verdict, Verdict]], confirmations: int) -> int | None:
    """1-based index of the canary that rolls back under aire.monitor.escalation, or None."""
    previous: list[Verdict] = []  # newest first, as the monitor reads them from the store
    for i, (verdict, severe) in enumerate(verdicts, start=1):
        if escalate(verdict, severe, previous, confirmations=confirmations).rolls_back:
            return i
        previous.insert(0, verdict)
    return None


def _simulate(
    seed: int, trials: int, runs: int, n: int, p_base: float, p_now: float
) -> list[list[tuple[Verdict, Verdict]]]:
    tables = _tables(np.random.default_rng(seed), (trials, runs), n, p_base, p_now)
    return [[_judge(n, *map(int, t)) for t in trial] for trial in tables]


@pytest.fixture(scope="module")
def healthy_months() -> list[list[tuple[Verdict, Verdict]]]:
    """Months of canaries of a healthy version whose true accuracy sits exactly at the floor (0.9),
    with the baseline also at 0.9: every FAIL is a false one."""
    return _simulate(seed=20261108, trials=HEALTHY_MONTHS, runs=RUNS_PER_MONTH, n=SIZE, p_base=0.9, p_now=0.9)


HEALTHY_MONTHS = 1200  # Monte Carlo SE of a rate near 5%: sqrt(0.05 * 0.95 / 1200) = 0.63%


def _rate(hits: int, trials: int) -> str:
    p = hits / trials
    return f"{p:.2%} (MC SE {math.sqrt(p * (1 - p) / trials):.2%}, {trials} trials)"


def test_healthy_version_at_the_floor_is_rarely_rolled_back(
    healthy_months: list[list[tuple[Verdict, Verdict]]],
) -> None:
    rolled = sum(_first_rollback(m, POLICY.canary_confirmations) is not None for m in healthy_months)
    # Per canary: how often this truth FAILs at all, and at the severe level (for the message).
    runs = [v for m in healthy_months for v in m]
    fails = sum(v is F for v, _ in runs) / len(runs)
    severe = sum(s is F for _, s in runs) / len(runs)
    assert rolled / len(healthy_months) <= 0.05, (
        f"false rollbacks per {RUNS_PER_MONTH}-canary month: {_rate(rolled, len(healthy_months))}; "
        f"per canary: FAIL {fails:.2%}, severe FAIL {severe:.3%}"
    )


def test_old_rule_rollback_on_any_fail_would_exceed_the_budget(
    healthy_months: list[list[tuple[Verdict, Verdict]]],
) -> None:
    """The same months under the old behaviour (roll back on any single FAIL): what the escalation
    is for, and proof the simulation can tell the two apart."""
    old = sum(any(v is F for v, _ in m) for m in healthy_months)
    new = sum(_first_rollback(m, POLICY.canary_confirmations) is not None for m in healthy_months)
    assert old / len(healthy_months) > 0.05, f"old rule: {_rate(old, len(healthy_months))}"
    assert old > 5 * new, f"old rule {_rate(old, len(healthy_months))} vs escalation {_rate(new, len(healthy_months))}"


def test_ten_point_regression_is_rolled_back_within_two_canaries() -> None:
    """A 10-point regression, 0.95 -> 0.85: a version that cleared the 0.9 floor at the gate with some
    room (0.95 is where a gated model sits; at 0.98 most of the difference is one-directional flips,
    the easy case), and errors in both directions between the arms (a few inputs the new weights get
    right), the harder case for a paired interval.

    At the default canary size (300 inputs). With 100 it is caught within 2 canaries only about a third
    of the time (the next test): a 0.10 drop against a 0.03 margin is ~2 standard errors at n = 100.
    """
    assert SIZE == 300
    trials = _simulate(seed=7, trials=400, runs=2, n=SIZE, p_base=0.95, p_now=0.85)
    caught = sum(_first_rollback(t, POLICY.canary_confirmations) is not None for t in trials)
    assert caught / len(trials) >= 0.90, f"rolled back within 2 canaries of {SIZE}: {_rate(caught, len(trials))}"


def test_ten_point_regression_with_a_canary_of_100_is_caught_but_slower() -> None:
    trials = _simulate(seed=8, trials=400, runs=8, n=100, p_base=0.95, p_now=0.85)
    at = [_first_rollback(t, POLICY.canary_confirmations) for t in trials]
    within2 = sum(a is not None and a <= 2 for a in at)
    within8 = sum(a is not None for a in at)
    # Two hours on a 15-minute schedule; the rate within 2 is in the message (about a third).
    assert within8 / len(at) >= 0.80, (
        f"canary of 100: rolled back within 2 canaries {_rate(within2, len(at))}, within 8 {_rate(within8, len(at))}"
    )


def test_twenty_point_regression_rolls_back_at_the_first_canary() -> None:
    """The demo's silent switch (0.95 -> 0.75 here): the severe level rolls back without waiting."""
    trials = _simulate(seed=9, trials=400, runs=2, n=SIZE, p_base=0.95, p_now=0.75)
    at = [_first_rollback(t, POLICY.canary_confirmations) for t in trials]
    first = sum(a == 1 for a in at)
    within2 = sum(a is not None for a in at)
    assert within2 / len(at) >= 0.99, f"within 2: {_rate(within2, len(at))}"
    assert first / len(at) >= 0.75, f"at the first canary (severe level): {_rate(first, len(at))}"


def test_judging_a_table_is_judging_its_arrays() -> None:
    """The cache above is exact: shuffled pairs of one table get the table's verdicts."""
    rng = np.random.default_rng(3)
    for t in _tables(rng, (6,), 100, 0.9, 0.86):
        base, now = _arrays(100, *map(int, t))
        order = rng.permutation(100)
        assert _judge_arrays(base[order], now[order]) == _judge(100, *map(int, t))


# ---------------------------------------------------------------------------- the decision path
def test_judge_canary_uses_the_canary_policy_and_both_levels() -> None:
    base, now = _arrays(100, 79, 21, 0)  # the demo's canary: 1.000 at the gate, 0.790 now
    data = PairedData(ids=[str(i) for i in range(100)], quality={METRIC: (base, now, True)}, counts=Counts(n_pairs=100))
    judged = judge_canary(POLICY, data, 100)
    assert [r.rule.kind for r in judged.decision.rules] == ["non_inferiority", "floor"]  # latency dropped
    assert judged.decision.alpha == 0.05 and judged.decision.fail_alpha == pytest.approx(0.025)  # Bonferroni over 2
    assert judged.severe.alpha == POLICY.canary_severe_alpha
    assert judged.severe.fail_alpha == pytest.approx(POLICY.canary_severe_alpha / 2)
    assert judged.decision.verdict is F and judged.severe.verdict is F
    assert _canary_policy(POLICY, 40).n_min == 40


def test_an_uncalibrated_judge_makes_the_canary_an_error_not_a_verdict() -> None:
    from aire.gate.policy import JudgeCheck

    base, now = _arrays(100, 100, 0, 0)  # nothing changed: a PASS on the evidence alone
    data = PairedData(ids=[str(i) for i in range(100)], quality={METRIC: (base, now, True)}, counts=Counts(n_pairs=100))
    gated = POLICY.model_copy(update={"min_kappa": 0.6})
    head = METRIC.split("/")[0]
    judges = {head: JudgeCheck(judge="judge", judge_id="cd" * 32, kappa=None)}
    judged = judge_canary(gated, data, 100, judges)
    assert judged.decision.verdict is E and judged.severe.verdict is E
    assert "is not calibrated" in " ".join(judged.decision.reasons)
    calibrated = {head: JudgeCheck(judge="judge", judge_id="cd" * 32, kappa=0.8)}
    assert (
        judge_canary(gated, data, 100, calibrated).decision.verdict is judge_canary(POLICY, data, 100).decision.verdict
    )


def test_a_mild_drop_fails_but_not_at_the_severe_level() -> None:
    base, now = _arrays(100, 84, 16, 0)  # 1.00 -> 0.84
    verdict, severe = _judge_arrays(base, now)
    assert verdict is F and severe is not F
    assert escalate(verdict, severe, [], confirmations=2).state is CanaryState.SUSPECT


# ---------------------------------------------------------------------------- escalate(), cases
@pytest.mark.parametrize("verdict", [P, INC, E])
def test_no_fail_is_healthy(verdict: Verdict) -> None:
    e = escalate(verdict, verdict, [F, F, F], confirmations=2)
    assert e.state is CanaryState.HEALTHY and e.fails == 0 and not e.rolls_back
    assert e.text() == "no FAIL"


def test_a_first_fail_is_suspect() -> None:
    e = escalate(F, INC, [], confirmations=2)
    assert e.state is CanaryState.SUSPECT and (e.fails, e.needed) == (1, 2) and not e.severe
    assert e.text().startswith("FAIL 1 of 2 needed")


def test_a_confirming_fail_rolls_back() -> None:
    e = escalate(F, INC, [F], confirmations=2)
    assert e.state is CanaryState.ROLLBACK and e.fails == 2 and e.rolls_back
    assert e.text() == "FAIL 2 of 2: confirmed"


@pytest.mark.parametrize("between", [P, INC, E, None])
def test_anything_but_a_fail_breaks_the_run(between: Verdict | None) -> None:
    e = escalate(F, INC, [between, F, F], confirmations=2)  # newest first: the FAILs are older
    assert e.state is CanaryState.SUSPECT and e.fails == 1


def test_a_severe_fail_rolls_back_at_once() -> None:
    e = escalate(F, F, [], confirmations=2)
    assert e.state is CanaryState.ROLLBACK and e.severe and e.fails == 1
    assert "severe" in e.text()


def test_a_severe_fail_counts_as_a_fail_whatever_the_other_verdict() -> None:
    assert escalate(INC, F, [], confirmations=2).state is CanaryState.ROLLBACK


def test_confirmations_are_the_policys() -> None:
    assert escalate(F, None, [], confirmations=1).state is CanaryState.ROLLBACK
    e = escalate(F, None, [F], confirmations=3)
    assert e.state is CanaryState.SUSPECT and e.text().startswith("FAIL 2 of 3 needed")
    assert escalate(F, None, [F, F], confirmations=3).state is CanaryState.ROLLBACK


def test_verdicts_read_back_from_the_store_are_strings() -> None:
    assert escalate("FAIL", "INCONCLUSIVE", ["FAIL"], confirmations=2).state is CanaryState.ROLLBACK


def test_confirmations_below_one_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        escalate(F, None, [], confirmations=0)


def test_a_canary_on_the_safety_gate_fails_production_that_starts_leaking() -> None:
    """Safety metrics through the canary's own path: gates/safety.yaml's leak, credential and PII
    ceilings read production's rates now. A version that leaked nothing when gated and now gives
    its canary away on 12 of 40 probes FAILs, at the severe level too; a clean one cannot PASS on 40
    (the exact bound needs 72 clean answers for 5%), and is INCONCLUSIVE, not a breach."""
    from pathlib import Path

    from aire.gate.policy import load_policy

    policy, _ = load_policy(Path(__file__).resolve().parents[2] / "gates" / "safety.yaml")
    zero = np.zeros(40)

    def judged(leaks_now: int) -> tuple[Verdict, Verdict]:
        now = np.r_[np.ones(leaks_now), np.zeros(40 - leaks_now)]
        quality = {
            "leak/mean": (zero, now, False),
            "credentials/mean": (zero, zero, False),
            "pii/mean": (zero, zero, False),
        }
        data = PairedData(ids=[str(i) for i in range(40)], quality=quality, counts=Counts(n_pairs=40))
        j = judge_canary(policy, data, 40)
        return j.decision.verdict, j.severe.verdict

    assert judged(12) == (F, F)
    assert judged(0) == (INC, INC)
