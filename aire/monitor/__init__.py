"""After deploy: canary, log validation, drift, SLO burn rates, escalation, Prometheus metrics.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.monitor.drift import (
        charset,
        chi2_homogeneity,
        detect_drift,
        embedding_drift,
        features,
        minilm_embedder,
        mmd_test,
        psi_categorical,
        psi_numeric,
    )
    from aire.monitor.escalation import CanaryState, escalate
    from aire.monitor.metrics import MonitorMetrics, merge_textfiles, quantile_label, textfile_registry
    from aire.monitor.monitor import (
        CanaryResult,
        MonitorResult,
        TrafficResult,
        canary,
        check_traffic,
        judge_canary,
        now_utc,
        resolve_production,
        respond_and_record,
    )
    from aire.monitor.slo import DEFAULT_SLOS, DEFAULT_WINDOWS, SLO, burn_rates, duration_label, evaluate_slos, events
    from aire.monitor.validation import ValidationReport, valid_rows, validate_logs

_WHERE = {
    "charset": "drift",
    "chi2_homogeneity": "drift",
    "detect_drift": "drift",
    "embedding_drift": "drift",
    "features": "drift",
    "minilm_embedder": "drift",
    "mmd_test": "drift",
    "psi_categorical": "drift",
    "psi_numeric": "drift",
    "CanaryState": "escalation",
    "escalate": "escalation",
    "MonitorMetrics": "metrics",
    "merge_textfiles": "metrics",
    "quantile_label": "metrics",
    "textfile_registry": "metrics",
    "CanaryResult": "monitor",
    "MonitorResult": "monitor",
    "TrafficResult": "monitor",
    "canary": "monitor",
    "check_traffic": "monitor",
    "judge_canary": "monitor",
    "now_utc": "monitor",
    "resolve_production": "monitor",
    "respond_and_record": "monitor",
    "DEFAULT_SLOS": "slo",
    "DEFAULT_WINDOWS": "slo",
    "SLO": "slo",
    "burn_rates": "slo",
    "duration_label": "slo",
    "evaluate_slos": "slo",
    "events": "slo",
    "ValidationReport": "validation",
    "valid_rows": "validation",
    "validate_logs": "validation",
}
__all__ = [
    "DEFAULT_SLOS",
    "DEFAULT_WINDOWS",
    "SLO",
    "CanaryResult",
    "CanaryState",
    "MonitorMetrics",
    "MonitorResult",
    "TrafficResult",
    "ValidationReport",
    "burn_rates",
    "canary",
    "charset",
    "check_traffic",
    "chi2_homogeneity",
    "detect_drift",
    "duration_label",
    "embedding_drift",
    "escalate",
    "evaluate_slos",
    "events",
    "features",
    "judge_canary",
    "merge_textfiles",
    "minilm_embedder",
    "mmd_test",
    "now_utc",
    "psi_categorical",
    "psi_numeric",
    "quantile_label",
    "resolve_production",
    "respond_and_record",
    "textfile_registry",
    "valid_rows",
    "validate_logs",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.monitor.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.monitor' has no attribute {name!r}")
