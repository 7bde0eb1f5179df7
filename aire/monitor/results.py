"""What one monitor run found: the canary's result, the traffic checks', and the run's as a whole."""

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


class MonitorResult(BaseModel):
    model: str
    version: str
    endpoint: str
    canary: CanaryResult | None
    traffic: TrafficResult | None
    breach: bool
    reasons: list[str]
    # A canary FAIL not yet confirmed (aire.monitor.escalation): reported and exported, no incident.
    suspect: list[str] = Field(default_factory=list)
    incident_id: int | None = None
    rolled_back_to: str | None = None
    incident_was_open: bool = False
    mlflow_run_id: str | None = None
    report: str = ""
