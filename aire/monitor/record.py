"""A monitor run recorded in MLflow: tags for the outcome, the canary's, live quality's and traffic's numbers
as metrics, the report and the whole result as artifacts."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from aire.core.settings import Settings
from aire.monitor.results import MonitorResult


def record_run(settings: Settings, result: MonitorResult) -> str:
    """The MLflow run of this monitor run (its id): FINISHED once everything is logged, else FAILED (a
    TrackingError), through the one run lifecycle (aire.tracking.runs.recording)."""
    from mlflow.entities import Metric, RunTag

    from aire.tracking.runs import recording

    tags = {
        "aire.kind": "monitor",
        "aire.model": result.model,
        "aire.version": result.version,
        "aire.breach": str(result.breach).lower(),
    }
    if result.incident_id is not None:
        tags["aire.incident"] = str(result.incident_id)
    c = result.canary
    if c is not None:
        tags["aire.canary_verdict"] = c.verdict.value
    if c is not None and c.escalation is not None:
        tags["aire.canary_escalation"] = c.escalation.state.value  # HEALTHY / SUSPECT / ROLLBACK
        tags["aire.canary_fails"] = f"{c.escalation.fails} of {c.escalation.needed}"
        tags["aire.canary_severe_verdict"] = "" if c.severe_verdict is None else c.severe_verdict.value
    for m in result.live.metrics if result.live is not None else ():
        tags[f"aire.live_verdict.{m.metric}"] = m.verdict.value
    with recording(settings) as runs:
        run_id = runs.start(f"monitor: {result.model} v{result.version}", tags)
        mc = runs.client
        now = int(datetime.now(UTC).timestamp() * 1000)
        metrics = {f"canary/{k}": v for k, v in (result.canary.accuracy if result.canary else {}).items()}
        metrics |= {f"canary_delta/{k}": v[0] for k, v in (result.canary.delta if result.canary else {}).items()}
        if c is not None and c.escalation is not None:
            metrics["canary/consecutive_fails"] = c.escalation.fails
        if result.traffic is not None:
            metrics["traffic/n_current"] = result.traffic.n_current
            metrics["traffic/bad_fraction"] = result.traffic.bad_fraction
            for f in (result.traffic.drift or {}).get("features", []):
                if f.get("p_adjusted") is not None:
                    metrics[f"drift_p/{f['feature']}"] = f["p_adjusted"]
        for m in result.live.metrics if result.live is not None else ():
            metrics[f"live/{m.metric}"] = m.current_mean
            metrics[f"live_reference/{m.metric}"] = m.reference_mean
            if m.delta is not None:
                metrics[f"live_delta/{m.metric}"] = m.delta
        mc.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v is not None and math.isfinite(v)],
            tags=[
                RunTag("aire.reasons", "; ".join(result.reasons)[:5000]),
                RunTag("aire.suspect", "; ".join(result.suspect)[:5000]),
            ],
        )
        mc.log_text(run_id, result.report, "report.md")
        mc.log_dict(run_id, result.model_dump(mode="json", exclude={"report"}), "monitor.json")
    return run_id
