"""What one monitor run found: the canary's result, the traffic checks', live quality's, and the run's as a whole."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from aire.gate.policy import Verdict
from aire.monitor.escalation import Escalation


class CanaryResult(BaseModel):
    suite: str
    n: int
    verdict: Verdict  # at the policy's alpha
    reasons: list[str]
    accuracy: dict[str, float]  # metric -> production now
    baseline: dict[str, float]  # metric -> the same inputs when the version was evaluated
    delta: dict[str, tuple[float, float, float]]  # metric -> (value, ci_low, ci_high)
    baseline_run: str | None
    offset: int  # where in the suite this run's rotating subset starts
    # The same evidence decided at the policy's canary_severe_alpha, and what the run of FAILs of this
    # version makes of this verdict (aire.monitor.escalation): only ROLLBACK is a breach.
    severe_verdict: Verdict | None = None
    severe_alpha: float | None = None
    escalation: Escalation | None = None
    run_id: str | None = None  # the canary's run in the store
    resumed: bool = False  # a retried task that reused its unfinished run

    @property
    def rolls_back(self) -> bool:
        return self.escalation.rolls_back if self.escalation is not None else self.verdict is Verdict.FAIL


class TrafficResult(BaseModel):
    n_current: int
    n_reference: int
    validation: dict[str, Any]  # ValidationReport, as JSON
    drift: dict[str, Any] | None  # DriftReport, as JSON; None when there was too little data
    slo: dict[str, Any] | None
    drifted: list[str] = Field(default_factory=list)
    slo_firing: list[str] = Field(default_factory=list)  # "slo/severity"
    bad_fraction: float = 0.0  # rows of the current window that failed validation (unparseable included)
    error_ratio: float | None = None  # failed requests in the current window
    latency_ms: dict[str, float] = Field(default_factory=dict)  # "sli/p95" -> ms, current window
    markdown: str = ""


class LiveMetric(BaseModel):
    """One metric of production's live answers (aire.monitor.live): current window vs reference window."""

    metric: str
    margin: float
    n_reference: int  # scored answers
    n_current: int
    unscored: int  # answers the evaluator could not score (an unparseable judge reply), both windows
    reference_mean: float
    current_mean: float
    delta: float | None = None  # current - reference
    ci_low: float | None = None  # at the policy's alpha
    ci_high: float | None = None
    severe_ci: tuple[float, float] | None = None  # at its canary_severe_alpha
    verdict: Verdict  # non-inferiority of the current window at the policy's alpha
    severe_verdict: Verdict
    reason: str


class LiveResult(BaseModel):
    suite: str
    sample: int  # at most this many answers scored per window
    severe_alpha: float
    metrics: list[LiveMetric]

    @property
    def breached(self) -> list[LiveMetric]:
        return [m for m in self.metrics if m.severe_verdict is Verdict.FAIL]

    @property
    def suspected(self) -> list[LiveMetric]:
        return [m for m in self.metrics if m.verdict is Verdict.FAIL and m.severe_verdict is not Verdict.FAIL]

    def markdown(self) -> str:
        lines = [
            "## Live quality (production's logged answers, scored without references)",
            "",
            f"Suite `{self.suite}`'s evaluators, at most {self.sample} answers per window; a FAIL at the severe "
            f"level (two-sided alpha {self.severe_alpha:g}) is a breach.",
            "",
            "| metric | reference | current | delta [CI] | verdict | severe | why |",
            "|---|---:|---:|---|---|---|---|",
        ]
        for m in self.metrics:
            delta = "-" if m.delta is None else f"{m.delta:+.3f} [{m.ci_low:+.3f}, {m.ci_high:+.3f}]"
            lines.append(
                f"| `{m.metric}` | {m.reference_mean:.3f} (n={m.n_reference}) | {m.current_mean:.3f} "
                f"(n={m.n_current}) | {delta} | {m.verdict.value} | {m.severe_verdict.value} | {m.reason} |"
            )
        return "\n".join(lines)


class MonitorResult(BaseModel):
    model: str
    version: str
    endpoint: str
    canary: CanaryResult | None
    traffic: TrafficResult | None
    breach: bool
    live: LiveResult | None = None
    reasons: list[str]
    # A canary FAIL not yet confirmed (aire.monitor.escalation): reported and exported, no incident.
    suspect: list[str] = Field(default_factory=list)
    incident_id: int | None = None
    rolled_back_to: str | None = None
    incident_was_open: bool = False
    mlflow_run_id: str | None = None
    report: str = ""
