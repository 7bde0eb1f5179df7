"""After deploy: canary, log validation, drift, SLO burn rates, escalation, Prometheus metrics.

The ``monitor`` flow's steps: resolve_production (production), canary (canaries, judged by judge, escalated by
escalation, its store queries in history), check_traffic (traffic: validation, drift/, slo), live_quality (live:
production's logged answers scored by a judge, current vs reference window), respond_and_record
(respond: incident and rollback on a breach, the run recorded in MLflow by record, exported by export, its
report by report); the results of each step are in results.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.monitor.canaries import canary
    from aire.monitor.drift.detect import detect_drift
    from aire.monitor.drift.embeddings import embedding_drift, minilm_embedder
    from aire.monitor.drift.features import charset, features
    from aire.monitor.drift.twosample import chi2_homogeneity, mmd_test, psi_categorical, psi_numeric
    from aire.monitor.escalation import CanaryState, escalate
    from aire.monitor.judge import judge_canary
    from aire.monitor.live import live_quality
    from aire.monitor.metrics import MonitorMetrics, merge_textfiles, quantile_label, textfile_registry
    from aire.monitor.production import canary_suite, resolve_production
    from aire.monitor.respond import respond_and_record
    from aire.monitor.results import CanaryResult, LiveResult, MonitorResult, TrafficResult
    from aire.monitor.slo import DEFAULT_SLOS, DEFAULT_WINDOWS, SLO, burn_rates, duration_label, evaluate_slos, events
    from aire.monitor.traffic import check_traffic, now_utc
    from aire.monitor.validation import ValidationReport, valid_rows, validate_logs

_WHERE = {
    "charset": "drift.features",
    "chi2_homogeneity": "drift.twosample",
    "detect_drift": "drift.detect",
    "embedding_drift": "drift.embeddings",
    "features": "drift.features",
    "minilm_embedder": "drift.embeddings",
    "mmd_test": "drift.twosample",
    "psi_categorical": "drift.twosample",
    "psi_numeric": "drift.twosample",
    "CanaryState": "escalation",
    "escalate": "escalation",
    "MonitorMetrics": "metrics",
    "merge_textfiles": "metrics",
    "quantile_label": "metrics",
    "textfile_registry": "metrics",
    "CanaryResult": "results",
    "LiveResult": "results",
    "live_quality": "live",
    "MonitorResult": "results",
    "TrafficResult": "results",
    "canary": "canaries",
    "check_traffic": "traffic",
    "judge_canary": "judge",
    "now_utc": "traffic",
    "canary_suite": "production",
    "resolve_production": "production",
    "respond_and_record": "respond",
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
    "LiveResult",
    "MonitorMetrics",
    "MonitorResult",
    "TrafficResult",
    "ValidationReport",
    "burn_rates",
    "canary",
    "canary_suite",
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
    "live_quality",
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
