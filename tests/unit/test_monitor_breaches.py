"""What a monitor run calls a breach (incident + rollback) and what only a suspicion, and the tables
the CLI prints: pure functions, reached before only through the integration suite."""

from __future__ import annotations

import pytest
from rich.console import Console

from aire.cli.console import floors_lines, rules_lines, summary_table
from aire.core.types import Estimate, Summary, Verdict
from aire.gate.policy import FloorRule, RuleResult
from aire.monitor.escalation import escalate
from aire.monitor.respond import breaches, suspicions
from aire.monitor.results import CanaryResult, TrafficResult

F, P = Verdict.FAIL, Verdict.PASS


def _canary(verdict: Verdict, severe: Verdict | None, previous: list[Verdict]) -> CanaryResult:
    return CanaryResult(
        suite="arith",
        n=200,
        verdict=verdict,
        reasons=["exact_match/mean floor: 95% CI [0.74, 0.85] vs 0.9: wholly beyond"],
        accuracy={"exact_match/mean": 0.8},
        baseline={"exact_match/mean": 1.0},
        delta={"exact_match/mean": (-0.2, -0.26, -0.15)},
        baseline_run="b",
        offset=0,
        severe_verdict=severe,
        escalation=escalate(verdict, severe, previous, confirmations=2),
    )


def _traffic(firing: list[str]) -> TrafficResult:
    return TrafficResult(n_current=200, n_reference=1000, validation={}, drift=None, slo=None, slo_firing=firing)


def test_a_first_fail_is_a_suspicion_not_a_breach() -> None:
    c = _canary(F, P, previous=[P])
    assert breaches(c, None) == []
    assert suspicions(c) == [f"canary: FAIL 1 of 2 needed (suspect, no rollback yet): {c.reasons[0]}"]


def test_a_confirmed_or_severe_fail_is_a_breach() -> None:
    confirmed = _canary(F, P, previous=[F])
    assert breaches(confirmed, None) == [f"canary: FAIL 2 of 2: confirmed: {confirmed.reasons[0]}"]
    assert suspicions(confirmed) == []
    severe = _canary(F, F, previous=[])
    assert breaches(severe, None)[0].startswith("canary: FAIL at the severe level: rolled back at once")


def test_only_page_burns_are_breaches_and_drift_pages_nobody() -> None:
    traffic = _traffic(["error_rate/page", "ttft_p95/ticket"])
    traffic.drifted = ["response_chars"]
    assert breaches(None, traffic) == ["SLO burn: error_rate/page"]
    assert breaches(_canary(P, P, []), _traffic(["ttft_p95/ticket"])) == []


def test_a_canary_without_an_escalation_breaches_on_its_fail() -> None:
    c = _canary(F, None, [])
    c.escalation = None  # a result from before escalations were recorded
    assert c.rolls_back and breaches(c, None)[0].startswith("canary: FAIL: ")
    assert suspicions(c) == []


def _text(lines: list[str]) -> list[str]:
    console = Console(width=200, color_system=None)
    with console.capture() as cap:
        for line in lines:
            console.print(line)
    return cap.get().splitlines()


def test_console_rule_and_floor_lines() -> None:
    rule = FloorRule(metric="exact_match/mean", threshold=0.9)
    lines = _text(rules_lines([RuleResult(rule=rule, verdict=Verdict.INCONCLUSIVE, reason="straddles")]))
    assert lines == ["INCONCLUSIVE straddles"]
    assert _text(floors_lines([("exact_match/mean >= 0.9", 0.8, False), ("numeric/mean >= 0.5", None, True)])) == [
        "FAIL  exact_match/mean >= 0.9  (value 0.800)",
        "PASS  numeric/mean >= 0.5  (value —)",
    ]


def test_summary_table_shows_metrics_and_overall_latency_not_latency_per_slice() -> None:
    summary = Summary(
        n_samples=200,
        n_errors=3,
        metrics={
            "exact_match/mean": Estimate(value=0.95, n=197, n_errors=3, ci_low=0.91, ci_high=0.97),
            "exact_match/mean/op=add": Estimate(value=1.0, n=100, ci_low=0.96, ci_high=1.0),
        },
        latency={
            "latency/ttft_ms/p95": Estimate(value=140.6, n=200, ci_low=94.8, ci_high=143.4),
            "latency/ttft_ms/p95/op=add": Estimate(value=120.0, n=100),
        },
    )
    console = Console(width=200, color_system=None)
    with console.capture() as cap:
        console.print(summary_table("arith @ champion", summary))
    out = cap.get()
    assert "exact_match/mean/op=add" in out and "latency/ttft_ms/p95 " in out
    assert "op=add │  120" not in out and "latency/ttft_ms/p95/op=add" not in out
    row = next(line for line in out.splitlines() if "exact_match/mean " in line)
    assert "0.950" in row and "[0.910, 0.970]" in row and "197" in row and "3" in row


@pytest.mark.parametrize("n_errors", [0, 5])
def test_summary_table_counts_what_was_not_scored(n_errors: int) -> None:
    summary = Summary(
        n_samples=10, n_errors=n_errors, metrics={"f1/mean": Estimate(value=0.5, n=10 - n_errors, n_errors=n_errors)}
    )
    console = Console(width=200, color_system=None)
    with console.capture() as cap:
        console.print(summary_table("t", summary))
    row = next(line for line in cap.get().splitlines() if "f1/mean" in line)
    assert row.rstrip(" │").endswith(str(n_errors))
