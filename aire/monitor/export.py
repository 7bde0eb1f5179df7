"""A monitor run's SLIs for Prometheus."""

from __future__ import annotations

from aire.core.settings import Settings
from aire.monitor.escalation import CanaryState
from aire.monitor.results import MonitorResult


def export_metrics(settings: Settings, result: MonitorResult) -> None:
    """SLIs for Prometheus: a textfile under <home>/metrics (served by ``aire metrics``), and the
    pushgateway when one is configured."""
    from aire.monitor.metrics import MonitorMetrics
    from aire.release.incidents import list_incidents
    from aire.store import Store

    metrics = MonitorMetrics()
    c, t = result.canary, result.traffic
    main_metric = next(iter(c.accuracy), None) if c else None
    drift: dict[str, tuple[bool, float]] = {}
    burn: dict[tuple[str, str], float] = {}
    if t is not None:
        for f in (t.drift or {}).get("features", []):
            if f.get("p_adjusted") is not None:
                drift[f["feature"]] = (bool(f["drifted"]), float(f["p_adjusted"]))
        for alert in (t.slo or {}).get("alerts", []):
            burn[(alert["slo"], alert["long_window"])] = float(alert["burn_long"])
            burn[(alert["slo"], alert["short_window"])] = float(alert["burn_short"])
    metrics.record(
        model=result.model,
        version=result.version,
        endpoint=result.endpoint,
        accuracy=None if main_metric is None else c.accuracy[main_metric],  # type: ignore[union-attr]
        accuracy_delta=None if main_metric is None or main_metric not in c.delta else c.delta[main_metric][0],  # type: ignore[union-attr]
        error_ratio=None if t is None else t.error_ratio,
        latency={tuple(k.split("/")): v for k, v in t.latency_ms.items()} if t else {},  # type: ignore[misc]
        burn=burn,
        drift=drift,
        incidents_open=len(list_incidents(Store(settings.resolved_store_url), result.model, include_cleared=False)),
        outcome="breach" if result.breach else "suspect" if result.suspect else "ok",
    )
    if c is not None and c.escalation is not None:
        # The escalation of a canary FAIL, on the same registry (the textfile carries them).
        from prometheus_client import Gauge

        labels = (result.model, str(result.version), result.endpoint)
        names = ["model", "version", "endpoint"]
        fails = Gauge(
            "aire_canary_consecutive_fails",
            "Consecutive canary FAILs of the production version (a rollback needs aire_canary_fails_needed).",
            names,
            registry=metrics.registry,
        )
        needed = Gauge(
            "aire_canary_fails_needed",
            "Consecutive canary FAILs that confirm a rollback.",
            names,
            registry=metrics.registry,
        )
        state = Gauge(
            "aire_canary_escalation",
            "1 for the canary's escalation state.",
            [*names, "state"],
            registry=metrics.registry,
        )
        fails.labels(*labels).set(c.escalation.fails)
        needed.labels(*labels).set(c.escalation.needed)
        for s in CanaryState:
            state.labels(*labels, s.value).set(1.0 if c.escalation.state is s else 0.0)
    # One file per model, so monitoring two models does not overwrite one with the other.
    path = settings.resolved_home() / "metrics" / f"{result.model}.prom"
    path.parent.mkdir(parents=True, exist_ok=True)
    metrics.write_textfile(path)
    if settings.pushgateway:
        metrics.push(settings.pushgateway)
