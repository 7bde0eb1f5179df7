"""``monitor``: one post-deploy check of the version holding ``production`` (see aire.monitor).

Scheduled by ``aire schedule`` (``flow.serve``: no work pool) or by ``prefect deploy`` with
infra/prefect.yaml (a process worker, as in the compose stack). Tasks: canary, check-traffic,
live-quality (with a live suite), respond-and-record; a breach (a confirmed or severe canary FAIL, a
severe live-quality FAIL, a paging SLO burn) opens an incident
and rolls production back; a first canary FAIL is only suspect (aire.monitor.escalation).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path

from prefect import flow, task
from prefect.cache_policies import NONE
from prefect.runtime import flow_run

from aire.client.config import EndpointConfig
from aire.core.settings import get_settings
from aire.monitor import (
    CanaryResult,
    LiveResult,
    MonitorResult,
    TrafficResult,
    canary,
    canary_suite,
    check_traffic,
    live_quality,
    now_utc,
    resolve_production,
    respond_and_record,
)


@task(name="canary", retries=1, retry_delay_seconds=5, cache_policy=NONE)
async def canary_task(
    model: str, version: str, endpoint: EndpointConfig, suite: str, policy: Path, size: int, probe_id: str
) -> CanaryResult | None:
    # probe_id is the flow run's: a retry of this task reuses the canary run the failed attempt began.
    return await canary(
        get_settings(),
        model=model,
        version=version,
        endpoint=endpoint,
        suite=suite,
        policy_path=policy,
        size=size,
        probe_id=probe_id,
    )


def _windows(window_s: float, since: str | None) -> tuple[datetime, timedelta]:
    """(now, current window): `since` pins the window's start (e.g. a deploy time); else it trails now."""
    now = now_utc()
    return now, now - datetime.fromisoformat(since) if since else timedelta(seconds=window_s)


@task(name="check-traffic", cache_policy=NONE)
def traffic_task(
    log_dir: Path | str, window_s: float, reference_s: float, endpoint: str, embeddings: bool, since: str | None
) -> TrafficResult | None:
    now, window = _windows(window_s, since)
    return check_traffic(
        log_dir,
        now=now,
        window=window,
        reference=timedelta(seconds=reference_s),
        endpoint=endpoint,
        embeddings=embeddings,
        store_url=get_settings().resolved_store_url,
    )


@task(name="live-quality", cache_policy=NONE)
async def live_task(
    log_dir: Path | str,
    window_s: float,
    reference_s: float,
    endpoint: str,
    since: str | None,
    suite: str,
    metrics: list[str] | None,
    policy: Path,
    sample: int,
) -> LiveResult | None:
    now, window = _windows(window_s, since)
    return await live_quality(
        get_settings(),
        log_dir=log_dir,
        now=now,
        window=window,
        reference=timedelta(seconds=reference_s),
        endpoint=endpoint,
        suite=suite,
        metrics=metrics,
        policy_path=policy,
        sample=sample,
    )


@task(name="respond-and-record", cache_policy=NONE)
def respond_task(
    model: str,
    version: str,
    endpoint: EndpointConfig,
    canary_result: CanaryResult | None,
    traffic: TrafficResult | None,
    live: LiveResult | None,
) -> MonitorResult:
    return respond_and_record(
        get_settings(),
        model=model,
        version=version,
        endpoint=endpoint,
        canary_result=canary_result,
        traffic=traffic,
        live=live,
    )


@flow(name="monitor", log_prints=True)
async def monitor(
    model: str | None = None,
    suite: str | None = None,
    canary_size: int | None = None,
    logs: str | None = None,
    window_s: float = 3600.0,
    since: str | None = None,
    reference_s: float = 86400.0,
    embeddings: bool = True,
    policy: str | None = None,
    live_suite: str | None = None,
    live_metrics: list[str] | None = None,
    live_sample: int = 200,
    run_canary: bool = True,
) -> MonitorResult:
    settings = get_settings()
    model = model or settings.registered_model
    version, endpoint = resolve_production(settings, model)
    suite = canary_suite(settings, model, version, suite)  # --suite, else the suite it was gated on
    # "store": the gateway's traffic log; otherwise a folder of JSONL logs.
    log_dir: Path | str = logs if logs == "store" else Path(logs) if logs else settings.resolved_home() / "logs"
    probe_id = f"{flow_run.id or uuid.uuid4().hex}:canary"
    policy_path = Path(policy) if policy else settings.gate_policy
    canary_result = None
    if run_canary:  # off: production is judged by its own traffic only (live quality, SLOs)
        size = canary_size or settings.canary_size
        canary_result = await canary_task(model, version, endpoint, suite, policy_path, size, probe_id)
    traffic = traffic_task(log_dir, window_s, reference_s, endpoint.name, embeddings, since)
    live = None
    if live_suite:  # production's logged answers scored by the suite's reference-free evaluators (a judge)
        live = await live_task(
            log_dir, window_s, reference_s, endpoint.name, since, live_suite, live_metrics, policy_path, live_sample
        )
    result = respond_task(model, version, endpoint, canary_result, traffic, live)
    status = "BREACH: " + "; ".join(result.reasons) if result.breach else "healthy"
    if not result.breach and result.suspect:
        status = "suspect: " + "; ".join(result.suspect)
    print(f"monitor {model} v{version}: {status}")
    return result
