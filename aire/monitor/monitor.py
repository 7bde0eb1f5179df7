"""Post-deploy monitoring of the version that holds ``production``: the engine steps of the
``monitor`` flow.

resolve_production()  registry alias -> version -> the endpoint serving it (aire.yaml)
canary()              a rotating subset of the golden suite against production, compared pairwise
                      with the same inputs' scores recorded when that version was evaluated (one-sided
                      non-inferiority and floors: the gate's statistics and policy, judge_canary), at
                      the policy's alpha and at its canary_severe_alpha; its verdicts are kept with its
                      store run, and aire.monitor.escalation turns them into HEALTHY / SUSPECT / ROLLBACK
check_traffic()       the production logs of the current window: Great Expectations validation, then
                      drift vs the reference window (aire.monitor.drift), then SLO burn rates (aire.monitor.slo)
respond()             a breach (a canary FAIL confirmed by the version's previous canary or FAILing at
                      the severe level, or a page-severity SLO burn) opens an incident and rolls
                      production back (aire.release.incidents); a first FAIL is only suspect; everything is
                      recorded in an MLflow run and exported for Prometheus
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from aire.client.config import EndpointConfig, load_config
from aire.core.errors import AireError
from aire.core.settings import Settings
from aire.gate.policy import Decision, Policy, Verdict, decide, load_policy
from aire.monitor.escalation import CanaryState, Escalation, escalate


class MonitorError(AireError):
    """The monitor cannot run: no production alias, no endpoint for it."""


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


# --------------------------------------------------------------------------------------- production
def resolve_production(settings: Settings, model: str) -> tuple[str, EndpointConfig]:
    from mlflow.exceptions import MlflowException

    from aire.release.registry import current
    from aire.tracking.runs import client

    version = current(settings, model, "production")
    if version is None:
        raise MonitorError(f"{model} has no 'production' alias: promote a version first (aire promote)")
    try:
        tags = client(settings).get_model_version(model, version).tags
    except MlflowException as exc:
        raise MonitorError(f"cannot read v{version} of {model}: {exc}") from None
    name = tags.get("endpoint")
    if not name:
        raise MonitorError(f"v{version} of {model} has no 'endpoint' tag: register it with aire gate")
    return version, load_config(settings.config, settings.models_dir).endpoint(name)


# ------------------------------------------------------------------------------------------- canary
def find_baseline(store: Any, suite: str, endpoint: EndpointConfig) -> Any:
    """The newest finished run of ``suite`` whose served weights are this endpoint's (by digest, else
    by served model and URL): the scores the version had when it was evaluated."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from aire.store.store import FINISHED, RunRow

    digest = endpoint.resolved_digest()
    with Session(store.engine) as session:
        runs = session.scalars(
            select(RunRow)
            .where(RunRow.suite == suite, RunRow.status == FINISHED, RunRow.kind != "canary")
            .order_by(RunRow.finished_at.desc())
        ).all()
    for run in runs:
        p = run.params
        if digest and p.get("weights_digest") == digest:
            return run
        if not digest and (p.get("served_model"), p.get("base_url")) == (endpoint.model, endpoint.base_url):
            return run
    return None


def _canary_policy(policy: Policy, n: int) -> Policy:
    """The gate policy's quality rules (latency is the SLOs' job here), with n_min no larger than the canary."""
    rules = [r for r in policy.rules if not r.metric.startswith("latency/")]
    return policy.model_copy(update={"rules": rules, "n_min": min(policy.n_min, n)})


@dataclass(frozen=True)
class CanaryJudgement:
    comparison: Any  # aire.evidence.Comparison at the policy's alpha
    decision: Decision  # at the policy's alpha (FAIL read at its family-wise fail_alpha)
    severe: Decision  # the same evidence at canary_severe_alpha


def _compare(data: Any, policy: Policy) -> Any:
    """compare() at the policy's alpha, the FAIL side's intervals at its family-wise ``fail_alpha``."""
    from aire.gate.evidence import compare

    return compare(data, alpha=policy.alpha, fail_alpha=policy.fail_alpha, supplementary=False, latency=False)


def judge_canary(policy: Policy, data: Any, size: int) -> CanaryJudgement:
    """The canary's decision, pure: the gate's statistics on the quality rules (``_canary_policy``),
    at the policy's alpha and again at its ``canary_severe_alpha``. ``data``: aire.evidence.PairedData
    (counts included); ``size``: inputs requested."""
    normal = _canary_policy(policy, size)
    severe = normal.model_copy(update={"alpha": policy.canary_severe_alpha})
    comparison = _compare(data, normal)
    decision = decide(normal, comparison.evidence(set()), data.counts)
    strict = decide(severe, _compare(data, severe).evidence(set()), data.counts)
    return CanaryJudgement(comparison=comparison, decision=decision, severe=strict)


async def canary(
    settings: Settings,
    *,
    model: str,
    version: str,
    endpoint: EndpointConfig,
    suite: str,
    policy_path: Path,
    size: int,
    probe_id: str | None = None,
) -> CanaryResult | None:
    """None when no baseline exists for this version (nothing to compare with: reported, no breach).

    ``probe_id`` names this probe (the flow passes its flow run's id): a retried task finds the run an
    earlier attempt left unfinished, keeps its subset and requests only the samples not yet stored.
    Without it a canary is a point-in-time probe, never resumed.
    """
    from aire.client.endpoints import EndpointClient, request_fingerprint
    from aire.gate.evidence import PairedData
    from aire.gate.policy import Counts
    from aire.run.offline import check_endpoints, load_suite_with_evaluators
    from aire.store.store import FINISHED, SampleResult, Store

    policy, _ = load_policy(policy_path)
    loaded, evaluators = load_suite_with_evaluators(settings, suite)
    store = Store(settings.resolved_store_url)
    identity = {"model": model, "version": str(version), **endpoint.identity()}
    resume_key = _resume_key(probe_id) if probe_id else uuid.uuid4().hex
    run = _probe_run(store, resume_key) if probe_id else None
    base_run = find_baseline(store, loaded.name, endpoint) if run is None else store.get_run(run.params["baseline_run"])
    if base_run is None:
        return None
    baseline = {r.sample_id: r for r in store.results(base_run.id) if r.error_type is None}
    by_id = {s.id: s for s in loaded.samples}
    ids = sorted(i for i in baseline if i in by_id)
    if not ids:
        return None
    if run is None:
        # Rotate through the suite, one subset per finished canary of this version, so production is
        # probed on all of it over time (an unfinished or crashed canary does not shift the rotation).
        size = min(size, len(ids))
        offset = (_count_version_canaries(store, loaded.name, identity) * size) % len(ids)
        chosen = [ids[(offset + i) % len(ids)] for i in range(size)]
    else:
        offset, chosen = int(run.params["offset"]), [i for i in run.params["sample_ids"] if i in by_id]
    await check_endpoints(settings, endpoint)
    resumed = run is not None
    if run is None:
        run = store.create_run(
            kind="canary",
            resume_key=resume_key,
            suite=loaded.name,
            suite_version=loaded.version,
            endpoint=endpoint.name,
            served_model=endpoint.model,
            params={**identity, "offset": offset, "baseline_run": base_run.id, "sample_ids": chosen},
            n_samples=len(chosen),
        )
    todo = [sid for sid in chosen if sid not in store.completed_ids(run.id)]
    if todo:
        async with EndpointClient(
            endpoint,
            concurrency=settings.concurrency,
            timeout_s=settings.request_timeout_s,
            max_attempts=settings.max_attempts,
        ) as client:
            # Each row is committed as it finishes: a retry after a crash requests only the rest.
            with store.writer(run.id, lambda s: request_fingerprint(endpoint, s, loaded.spec.generation)) as writer:

                async def one(sid: str) -> None:
                    sample = by_id[sid]
                    completion = await client.generate(sample, loaded.spec.generation)
                    scores = {k: await ev.score(sample, completion) for k, ev in evaluators.items()}
                    writer.put(SampleResult(sample=sample, completion=completion, scores=scores))

                tasks = [asyncio.ensure_future(one(s)) for s in todo]
                try:
                    await asyncio.gather(*tasks)
                except BaseException:
                    # Stop the rest before the writer closes; what was stored stays for the retry.
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    raise

    rows = {r.sample_id: r for r in store.results(run.id) if r.error_type is None}
    paired = [sid for sid in chosen if sid in rows]
    quality = {
        f"{k}/mean": (
            np.array([baseline[sid].scores.get(k, math.nan) for sid in paired]),
            np.array([rows[sid].scores.get(k, math.nan) for sid in paired]),
            ev.spec.higher_is_better,
        )
        for k, ev in evaluators.items()
    }
    counts = Counts(n_pairs=len(paired), n_errors=len(chosen) - len(paired))
    judged = judge_canary(policy, PairedData(ids=paired, quality=quality, counts=counts), len(chosen))
    # The run of FAILs this canary may extend: this version's newest canaries since it last took
    # production (only the newest confirmations - 1 can matter).
    since = _production_since(store, model, str(version))
    earlier = _recent_version_canaries(
        store, loaded.name, identity, exclude=run.id, limit=max(0, policy.canary_confirmations - 1)
    )
    previous = [r.params.get("verdict") for r in earlier if since is None or _utc(r.created_at) >= since]
    escalation = escalate(
        judged.decision.verdict,
        judged.severe.verdict,
        [v if v in Verdict.__members__ else None for v in previous],
        confirmations=policy.canary_confirmations,
    )
    # The verdicts go with the run, for the next canaries of this version to read; then it counts.
    _set_params(
        store,
        run.id,
        {
            **run.params,
            "verdict": judged.decision.verdict.value,
            "severe_verdict": judged.severe.verdict.value,
            "escalation": escalation.state.value,
            "consecutive_fails": escalation.fails,
        },
    )
    if run.status != FINISHED:
        store.set_status(run.id, FINISHED)
    metrics = judged.comparison.metrics
    return CanaryResult(
        suite=loaded.name,
        n=len(paired),
        verdict=judged.decision.verdict,
        reasons=judged.decision.reasons,
        accuracy={k: m.evidence.challenger.value for k, m in metrics.items() if m.evidence.challenger},
        baseline={k: m.evidence.champion.value for k, m in metrics.items() if m.evidence.champion},
        delta={
            k: (m.evidence.delta.value, m.evidence.delta.ci_low, m.evidence.delta.ci_high)
            for k, m in metrics.items()
            if m.evidence.delta
        },
        baseline_run=base_run.id,
        offset=offset,
        severe_verdict=judged.severe.verdict,
        severe_alpha=policy.canary_severe_alpha,
        escalation=escalation,
        run_id=run.id,
        resumed=resumed,
    )


# The canary's own queries (like find_baseline above). TODO: move them into aire.store.store, which owns
# the queries elsewhere (a ``Store.set_params`` and a finished-runs-by-kind query would do).
def _resume_key(probe_id: str) -> str:
    key = f"canary:{probe_id}"
    return key if len(key) <= 64 else "canary:" + hashlib.sha256(probe_id.encode()).hexdigest()[:57]


def _probe_run(store: Any, resume_key: str) -> Any:
    """The canary run this probe started (a retried task), if any: unfinished, or finished by an attempt
    that failed after it (then nothing is requested again and the same verdict is recomputed)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from aire.store.store import RunRow

    with Session(store.engine) as session:
        run = session.scalars(
            select(RunRow).where(RunRow.resume_key == resume_key).order_by(RunRow.created_at.desc()).limit(1)
        ).first()
    return run if run is not None and run.kind == "canary" and "sample_ids" in run.params else None


def _of_version(suite: str, identity: dict[str, Any]) -> list[Any]:
    """SQL conditions: finished canaries of this version (model, registry version, endpoint and, where
    known, its weights' digest) on the suite."""
    from aire.store.store import FINISHED, RunRow

    where = [
        RunRow.kind == "canary",
        RunRow.suite == suite,
        RunRow.endpoint == identity["endpoint"],
        RunRow.status == FINISHED,
        RunRow.params["model"].as_string() == identity["model"],
        RunRow.params["version"].as_string() == identity["version"],
    ]
    if identity.get("weights_digest"):
        where.append(RunRow.params["weights_digest"].as_string() == identity["weights_digest"])
    return where


def _count_version_canaries(store: Any, suite: str, identity: dict[str, Any]) -> int:
    from sqlalchemy import func, select

    from aire.store.store import RunRow

    with store.engine.connect() as conn:
        query = select(func.count()).select_from(RunRow).where(*_of_version(suite, identity))
        return int(conn.execute(query).scalar_one())


def _recent_version_canaries(
    store: Any, suite: str, identity: dict[str, Any], *, exclude: str | None, limit: int
) -> list[Any]:
    """The newest finished canaries of this version, newest first (at most ``limit``)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from aire.store.store import RunRow

    query = select(RunRow).where(*_of_version(suite, identity))
    if exclude is not None:
        query = query.where(RunRow.id != exclude)
    with Session(store.engine) as session:
        return list(
            session.scalars(query.order_by(RunRow.finished_at.desc(), RunRow.created_at.desc()).limit(limit)).all()
        )


def _production_since(store: Any, model: str, version: str) -> datetime | None:
    """When this version last took ``production`` (alias history): a run of FAILs starts over after a
    rollback and a re-promotion. None when the history has no such move."""
    from aire.release.registry import history

    moves = [m for m in history(store, model) if m.alias == "production" and m.version == version]
    return _utc(moves[-1].at) if moves else None


def _utc(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)  # SQLite returns naive UTC


def _set_params(store: Any, run_id: str, params: dict[str, Any]) -> None:
    from sqlalchemy import update

    from aire.store.store import RunRow

    with store.engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.id == run_id).values(params=params))


# ------------------------------------------------------------------------------------------ traffic
def check_traffic(
    log_dir: Path,
    *,
    now: datetime,
    window: timedelta,
    reference: timedelta,
    endpoint: str | None = None,
    embeddings: bool = True,
    alpha: float = 0.05,
) -> TrafficResult | None:
    """Validate, drift-test and SLO-check the logs; None when there are no log files at all."""
    from aire.data.logs import read_logs
    from aire.monitor.drift import detect_drift
    from aire.monitor.slo import DEFAULT_SLOS, evaluate_slos
    from aire.monitor.validation import valid_rows, validate_logs

    files = sorted(log_dir.glob("*.jsonl")) if log_dir.is_dir() else []
    if not files:
        return None
    current = read_logs(files, since=now - window, until=now)
    ref = read_logs(files, since=now - window - reference, until=now - window)
    report = validate_logs(current)
    cur_ok = valid_rows(current, report)
    ref_ok = valid_rows(ref, validate_logs(ref))
    cur_ok, ref_ok = _for_endpoint(cur_ok, endpoint), _for_endpoint(ref_ok, endpoint)
    drift = detect_drift(ref_ok, cur_ok, alpha=alpha, embeddings=embeddings) if len(ref_ok) and len(cur_ok) else None
    # Burn rates look back up to three days.
    history = read_logs(files, since=now - timedelta(days=3), until=now)
    hist_ok = valid_rows(history, validate_logs(history))
    hist_ok = _for_endpoint(hist_ok, endpoint)
    slo = evaluate_slos(hist_ok, DEFAULT_SLOS, now) if len(hist_ok) else None
    ok = cur_ok[cur_ok["status"] == "ok"] if len(cur_ok) else cur_ok
    latency = {}
    for sli in ("ttft_ms", "tpot_ms", "e2e_ms") if len(ok) else ():
        values = ok[sli].dropna().astype(float)
        for q in (0.5, 0.95, 0.99):
            if len(values):
                latency[f"{sli}/p{round(q * 100)}"] = float(values.quantile(q))
    parts = ["## Traffic validation (Great Expectations)", "", report.markdown()]
    if drift is not None:
        parts += ["## Drift (reference vs current window)", "", drift.markdown()]
    if slo is not None:
        parts += ["## SLO burn rates", "", slo.markdown()]
    return TrafficResult(
        n_current=len(current.frame),
        n_reference=len(ref.frame),
        validation=report.model_dump(mode="json"),
        drift=None if drift is None else drift.model_dump(mode="json"),
        slo=None if slo is None else slo.model_dump(mode="json"),
        drifted=[] if drift is None else [f.feature for f in drift.features if f.drifted],
        slo_firing=[] if slo is None else [f"{a.slo}/{a.severity}" for a in slo.firing],
        markdown="\n".join(parts),
        bad_fraction=report.bad_fraction(),
        error_ratio=float((cur_ok["status"] == "error").mean()) if len(cur_ok) else None,
        latency_ms=latency,
    )


def _for_endpoint(frame: Any, endpoint: str | None) -> Any:
    """The rows of one endpoint (an empty window may have no columns at all)."""
    if endpoint is None or len(frame) == 0 or "endpoint" not in frame:
        return frame
    return frame[frame["endpoint"] == endpoint]


# ------------------------------------------------------------------------------------------ respond
def breaches(canary_result: CanaryResult | None, traffic: TrafficResult | None) -> list[str]:
    """What warrants an incident and a rollback. Drift and bad rows are reported but page nobody on
    their own: a new kind of traffic is not a broken model."""
    out = []
    if canary_result is not None and canary_result.rolls_back:
        out.append(f"canary: {_escalation_text(canary_result)}: " + "; ".join(canary_result.reasons))
    if traffic is not None:
        out += [f"SLO burn: {f}" for f in traffic.slo_firing if f.endswith("/page")]
    return out


def suspicions(canary_result: CanaryResult | None) -> list[str]:
    """A canary FAIL that is not (yet) a breach: one of the consecutive FAILs a rollback needs."""
    if canary_result is None or canary_result.escalation is None:
        return []
    if canary_result.escalation.state is not CanaryState.SUSPECT:
        return []
    return [f"canary: {_escalation_text(canary_result)}: " + "; ".join(canary_result.reasons)]


def _escalation_text(c: CanaryResult) -> str:
    return c.escalation.text() if c.escalation is not None else f"{c.verdict.value}"


def markdown_report(result: MonitorResult, traffic_md: str) -> str:
    lines = [f"# Monitor: {result.model} v{result.version} at {result.endpoint}", ""]
    status, why = ("BREACH", result.reasons) if result.breach else ("suspect", result.suspect)
    if not result.breach and not result.suspect:
        status = "healthy"
    lines.append(f"**{status}**" + (f": {'; '.join(why)}" if why else ""))
    if result.incident_id is not None:
        moved = f", production rolled back to v{result.rolled_back_to}" if result.rolled_back_to else ""
        seen = " (already open: handled by an earlier run)" if result.incident_was_open else ""
        lines.append(f"\nIncident #{result.incident_id}{seen}{moved}.")
    c = result.canary
    lines += ["", "## Canary", ""]
    if c is None:
        lines.append("No baseline recorded for this version on the suite: nothing to compare with.")
    else:
        lines += [
            f"Suite `{c.suite}`, {c.n} inputs from offset {c.offset}, baseline run `{c.baseline_run}`: "
            f"**{c.verdict.value}**",
            "",
        ]
        if c.escalation is not None:
            severe = "" if c.severe_verdict is None else f"{c.severe_verdict.value}"
            level = "" if c.severe_alpha is None else f" (two-sided alpha {c.severe_alpha:g})"
            lines += [
                f"Escalation: **{c.escalation.state.value}**, {c.escalation.text()}; "
                f"at the severe level{level}: {severe}" + ("; resumed after a retry" if c.resumed else ""),
                "",
            ]
        lines += [
            "| metric | baseline | now | delta [95% CI] |",
            "|---|---:|---:|---|",
        ]
        for k, (v, lo, hi) in c.delta.items():
            lines.append(
                f"| `{k}` | {c.baseline.get(k, math.nan):.3f} | {c.accuracy.get(k, math.nan):.3f} "
                f"| {v:+.3f} [{lo:+.3f}, {hi:+.3f}] |"
            )
    lines += ["", traffic_md or "## Traffic\n\nNo production logs found."]
    return "\n".join(lines) + "\n"


def now_utc() -> datetime:
    return datetime.now(UTC)


def respond_and_record(
    settings: Settings,
    *,
    model: str,
    version: str,
    endpoint: EndpointConfig,
    canary_result: CanaryResult | None,
    traffic: TrafficResult | None,
) -> MonitorResult:
    """Open an incident and roll back on a breach; record the run in MLflow and for Prometheus."""
    from aire.core.errors import RollbackError
    from aire.release.incidents import open_for, update_incident
    from aire.release.rollback import respond
    from aire.store.store import Store

    store = Store(settings.resolved_store_url)
    reasons = breaches(canary_result, traffic)
    result = MonitorResult(
        model=model,
        version=version,
        endpoint=endpoint.name,
        canary=canary_result,
        traffic=traffic,
        breach=bool(reasons),
        reasons=reasons,
        suspect=suspicions(canary_result),
    )
    rollback_error: str | None = None
    if reasons:
        evidence = {
            "canary": None if canary_result is None else canary_result.model_dump(mode="json"),
            "slo_firing": [] if traffic is None else traffic.slo_firing,
            "drifted": [] if traffic is None else traffic.drifted,
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
    result.mlflow_run_id = _record(settings, result)
    if result.incident_id is not None and not result.incident_was_open:
        update_incident(store, result.incident_id, mlflow_run_id=result.mlflow_run_id)
    _export(settings, result)
    if rollback_error is not None:
        raise RollbackError(f"{rollback_error} (incident #{result.incident_id}, MLflow run {result.mlflow_run_id})")
    return result


def _record(settings: Settings, result: MonitorResult) -> str:
    from mlflow.entities import Metric, RunTag

    from aire.tracking.runs import _start_run

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
    mc, run_id = _start_run(settings, f"monitor: {result.model} v{result.version}", tags)
    try:
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
        mc.set_terminated(run_id, "FINISHED")
    except Exception:
        mc.set_terminated(run_id, "FAILED")
        raise
    return run_id


def _export(settings: Settings, result: MonitorResult) -> None:
    """SLIs for Prometheus: a textfile under <home>/metrics (served by ``aire metrics``), and the
    pushgateway when one is configured."""
    from aire.monitor.metrics import MonitorMetrics
    from aire.release.incidents import list_incidents
    from aire.store.store import Store

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
