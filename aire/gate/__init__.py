"""The promotion gate: policy, evidence, the PASS/FAIL/INCONCLUSIVE/ERROR decision, its report.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.gate.evidence import LATENCY_SLIS, Comparison, PairedData, compare
    from aire.gate.policy import (
        RULE_KINDS,
        CeilingRule,
        Counts,
        Decision,
        FloorRule,
        Interval,
        JudgeCheck,
        LatencyRelativeRule,
        LatencySLORule,
        MetricEvidence,
        NonInferiorityRule,
        Policy,
        PolicyError,
        Rule,
        RuleResult,
        SuperiorityRule,
        Verdict,
        decide,
        judge_rule,
        level_text,
        load_policy,
        resolve_directions,
    )
    from aire.gate.report import plot_latency, render_markdown, write_report

_WHERE = {
    "Comparison": "evidence",
    "LATENCY_SLIS": "evidence",
    "PairedData": "evidence",
    "compare": "evidence",
    "RULE_KINDS": "policy",
    "CeilingRule": "policy",
    "Counts": "policy",
    "Decision": "policy",
    "FloorRule": "policy",
    "Interval": "policy",
    "JudgeCheck": "policy",
    "LatencyRelativeRule": "policy",
    "LatencySLORule": "policy",
    "MetricEvidence": "policy",
    "NonInferiorityRule": "policy",
    "Policy": "policy",
    "PolicyError": "policy",
    "Rule": "policy",
    "RuleResult": "policy",
    "SuperiorityRule": "policy",
    "Verdict": "policy",
    "decide": "policy",
    "judge_rule": "policy",
    "level_text": "policy",
    "load_policy": "policy",
    "resolve_directions": "policy",
    "plot_latency": "report",
    "render_markdown": "report",
    "write_report": "report",
}
__all__ = [
    "LATENCY_SLIS",
    "RULE_KINDS",
    "CeilingRule",
    "Comparison",
    "Counts",
    "Decision",
    "FloorRule",
    "Interval",
    "JudgeCheck",
    "LatencyRelativeRule",
    "LatencySLORule",
    "MetricEvidence",
    "NonInferiorityRule",
    "PairedData",
    "Policy",
    "PolicyError",
    "Rule",
    "RuleResult",
    "SuperiorityRule",
    "Verdict",
    "compare",
    "decide",
    "judge_rule",
    "level_text",
    "load_policy",
    "plot_latency",
    "render_markdown",
    "resolve_directions",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.gate.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.gate' has no attribute {name!r}")
