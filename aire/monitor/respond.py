"""What a monitor run's findings lead to: a breach (a canary FAIL confirmed by the version's previous canary or
FAILing at the severe level, live quality FAILing at the severe level, or a page-severity SLO burn) opens an
incident and rolls production back (aire.release.incidents); a first FAIL is only suspect. Everything is
recorded in an MLflow run (aire.monitor.record) and exported for Prometheus (aire.monitor.export)."""

from __future__ import annotations

from aire.client.config import EndpointConfig
from aire.core.settings import Settings
from aire.monitor.escalation import CanaryState
from aire.monitor.export import export_metrics
from aire.monitor.record import record_run
from aire.monitor.report import markdown_report
from aire.monitor.results import CanaryResult, LiveResult, MonitorResult, TrafficResult


def breaches(
    canary_result: CanaryResult | None, traffic: TrafficResult | None, live: LiveResult | None = None
) -> list[str]:
    """What warrants an incident and a rollback. Drift and bad rows are reported but page nobody on
    their own: a new kind of traffic is not a broken model."""
    out = []
    if canary_result is not None and canary_result.rolls_back:
        out.append(f"canary: {_escalation_text(canary_result)}: " + "; ".join(canary_result.reasons))
    if traffic is not None:
        out += [f"SLO burn: {f}" for f in traffic.slo_firing if f.endswith("/page")]
    if live is not None:
        out += [f"live quality FAIL at the severe level: {m.reason}" for m in live.breached]
    return out


def suspicions(canary_result: CanaryResult | None, live: LiveResult | None = None) -> list[str]:
    """A canary FAIL that is not (yet) a breach (one of the consecutive FAILs a rollback needs), and a
    live-quality FAIL at the policy's alpha only."""
    out = [f"live quality FAIL: {m.reason}" for m in live.suspected] if live is not None else []
    if canary_result is None or canary_result.escalation is None:
        return out
    if canary_result.escalation.state is not CanaryState.SUSPECT:
        return out
    return [f"canary: {_escalation_text(canary_result)}: " + "; ".join(canary_result.reasons), *out]


def _escalation_text(c: CanaryResult) -> str:
    return c.escalation.text() if c.escalation is not None else f"{c.verdict.value}"


def respond_and_record(
    settings: Settings,
    *,
    model: str,
    version: str,
    endpoint: EndpointConfig,
    canary_result: CanaryResult | None,
    traffic: TrafficResult | None,
    live: LiveResult | None = None,
) -> MonitorResult:
    """Open an incident and roll back on a breach; record the run in MLflow and for Prometheus."""
    from aire.core.errors import RollbackError
    from aire.release.incidents import open_for, update_incident
    from aire.release.rollback import respond
    from aire.store import Store

    store = Store(settings.resolved_store_url)
    reasons = breaches(canary_result, traffic, live)
    result = MonitorResult(
        model=model,
        version=version,
        endpoint=endpoint.name,
        canary=canary_result,
        traffic=traffic,
        live=live,
        breach=bool(reasons),
        reasons=reasons,
        suspect=suspicions(canary_result, live),
    )
    rollback_error: str | None = None
    if reasons:
        evidence = {
            "canary": None if canary_result is None else canary_result.model_dump(mode="json"),
            "slo_firing": [] if traffic is None else traffic.slo_firing,
            "drifted": [] if traffic is None else traffic.drifted,
            "live": None if live is None else live.model_dump(mode="json"),
        }
        try:
            incident, moved = respond(
                settings,
                store,
                model=model,
                version=version,
                severity="page",
                summary=reasons[0][:300],
                evidence=evidence,
                roll_back=True,
            )
            result.incident_id, result.rolled_back_to, result.incident_was_open = incident.id, moved, moved is None
        except RollbackError as exc:
            rollback_error = str(exc)
            opened = open_for(store, model, version)
            result.incident_id = None if opened is None else opened.id
            result.reasons.append(f"rollback impossible: {exc}")
    result.report = markdown_report(result, "" if traffic is None else traffic.markdown)
    result.mlflow_run_id = record_run(settings, result)
    if result.incident_id is not None and not result.incident_was_open:
        update_incident(store, result.incident_id, mlflow_run_id=result.mlflow_run_id)
    export_metrics(settings, result)
    if rollback_error is not None:
        raise RollbackError(f"{rollback_error} (incident #{result.incident_id}, MLflow run {result.mlflow_run_id})")
    return result
