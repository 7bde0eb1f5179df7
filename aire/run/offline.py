"""The offline benchmark, as engine steps the Prefect flow strings together.

prepare()      validate everything (suite, evaluators, endpoint) before anything is recorded
run_samples()  request, score and store one shard of samples (what a Prefect task runs)
finalise()     summary, floors, MLflow run; only then is the store's run marked finished

Keeping the steps here (not in the flow) means the engine runs and is tested without Prefect.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

import aire
from aire.client.config import EndpointConfig, load_config
from aire.client.endpoints import EndpointClient, request_fingerprint
from aire.core.errors import ConfigError
from aire.core.progress import reporter
from aire.core.settings import Settings
from aire.core.types import Completion, Estimate, Sample, Summary
from aire.data.suites import EvaluatorRef, Floor, Suite, inspect_suite, load_suite

if TYPE_CHECKING:  # the store (sqlalchemy) and summary (scipy) load in prepare/finalise, not in preflight
    from aire.store.store import Store


class FloorResult(BaseModel):
    floor: str
    value: float | None
    passed: bool


class OfflineResult(BaseModel):
    """What one offline benchmark decided, returned by the flow and printed by the CLI."""

    run_id: str
    mlflow_run_id: str
    tracking_uri: str
    suite: str
    suite_version: str
    endpoint: str
    served_model: str
    n_samples: int
    n_requested: int  # by this invocation; fewer than n_samples when a run was resumed
    execution_s: float  # first request sent -> last row committed, for this invocation
    resumed: bool
    summary: Summary
    floors: list[FloorResult]

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.floors)


@dataclass
class OfflinePlan:
    settings: Settings
    suite: Suite
    endpoint: EndpointConfig
    evaluators: list[Any]  # evaluators.registry.BoundEvaluator, keyed by EvaluatorRef.key
    keys: list[str]
    store: Store
    run_id: str
    pending: list[Sample]
    resumed: bool
    concurrency: int
    params: dict[str, Any] = field(default_factory=dict)

    def shards(self) -> list[list[Sample]]:
        size = self.settings.shard_size
        return [self.pending[i : i + size] for i in range(0, len(self.pending), size)]


def bind_evaluator(ref: EvaluatorRef, where: Path, field_prefix: str) -> Any:
    # Imported here so that `aire.data.suites` never depends on the evaluator library.
    import evaluators

    return evaluators.bind(ref.name, ref.options, where=str(where), field_prefix=field_prefix)


def resolve_endpoint(settings: Settings, name: str | None, base_url: str | None, model: str | None) -> EndpointConfig:
    """A configured endpoint by name, or an ad hoc one from ``--base-url`` and ``--model``."""
    if base_url or model:
        if not (base_url and model):
            raise ConfigError("an ad hoc endpoint needs both --base-url and --model", field="base_url")
        try:
            return EndpointConfig(name=name or "adhoc", base_url=base_url, model=model)
        except ValueError as exc:
            raise ConfigError(str(exc).splitlines()[-1].strip(), field="base_url") from None
    if not name:
        raise ConfigError("give --endpoint NAME or --base-url URL --model NAME", field="endpoint")
    return load_config(settings.config, settings.models_dir).endpoint(name)


def code_version() -> str:
    """aire's version plus the git commit of its checkout, when it is one."""
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    return commit + ("+dirty" if dirty else "") if commit else "unknown"


def _resume_key(suite: Suite, endpoint: EndpointConfig, sample_ids: list[str]) -> str:
    identity = {
        "kind": "offline",
        "suite_version": suite.version,
        "endpoint": {k: v for k, v in endpoint.identity().items() if k != "endpoint"},
        "generation": suite.spec.generation.model_dump(),
        "evaluators": [ref.model_dump() for ref in suite.spec.evaluators],
        "samples": sample_ids,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def load_suite_with_evaluators(
    settings: Settings, suite: str, limit: int | None = None
) -> tuple[Suite, dict[str, Any]]:
    """The suite's samples, and its evaluators bound (options validated) by metric key."""
    bound: dict[str, Any] = {}

    def bind(ref: EvaluatorRef, spec_path: Path, field_prefix: str) -> None:
        bound[ref.key] = bind_evaluator(ref, spec_path, field_prefix)

    loaded = load_suite(
        suite,
        settings.datasets_dir,
        limit=limit,
        cache_root=settings.resolved_home() / "cache" / "datasets",
        validate_evaluator=bind,
    )
    return loaded, bound


async def check_endpoints(settings: Settings, *endpoints: EndpointConfig) -> None:
    """Fail fast, in one line, when an endpoint is down or does not serve its model."""
    for ep in endpoints:
        async with EndpointClient(ep, timeout_s=min(settings.request_timeout_s, 10.0)) as client:
            await client.check()


async def preflight(
    settings: Settings,
    *,
    suite: str,
    endpoint: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
) -> None:
    """The checks of ``prepare`` that need neither Prefect nor the data libraries.

    The CLI runs them before it starts a flow, so a typo costs a second, not a Prefect start-up.
    """
    ep = resolve_endpoint(settings, endpoint, base_url, model)
    inspect_suite(
        suite,
        settings.datasets_dir,
        validate_evaluator=lambda ref, path, prefix: bind_evaluator(ref, path, prefix),
    )
    await check_endpoints(settings, ep)


async def prepare(
    settings: Settings,
    *,
    suite: str,
    endpoint: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
    limit: int | None = None,
    concurrency: int | None = None,
    fresh: bool = False,
) -> OfflinePlan:
    """Validate inputs, check the endpoint, and find or create the run in the store.

    Every user error surfaces here, before a single row is written.
    """
    ep = resolve_endpoint(settings, endpoint, base_url, model)
    loaded, bound = load_suite_with_evaluators(settings, suite, limit)
    await check_endpoints(settings, ep)

    from aire.store.store import Store

    store = Store(settings.resolved_store_url)
    ids = [s.id for s in loaded.samples]
    key = _resume_key(loaded, ep, ids)
    existing = None if fresh else store.find_resumable(key)
    identity = ep.identity()
    params = {
        "suite": loaded.name,
        "suite_version": loaded.version,
        "suite_path": str(loaded.path),
        "n_samples": len(ids),
        **{k: v for k, v in identity.items() if v is not None},
        "generation": loaded.spec.generation.model_dump(),
        "evaluators": [ref.model_dump(by_alias=True, exclude_none=True) for ref in loaded.spec.evaluators],
        "floors": [str(f) for f in loaded.floors],
        "aire_version": aire.__version__,
        "code_version": code_version(),
    }
    if existing is not None:
        run_id, resumed = existing.id, True
    else:
        run = store.create_run(
            kind="offline",
            resume_key=key,
            suite=loaded.name,
            suite_version=loaded.version,
            endpoint=ep.name,
            served_model=ep.model,
            params=params,
            n_samples=len(ids),
        )
        run_id, resumed = run.id, False
    done = store.completed_ids(run_id) if resumed else set()
    return OfflinePlan(
        settings=settings,
        suite=loaded,
        endpoint=ep,
        evaluators=list(bound.values()),
        keys=list(bound.keys()),
        store=store,
        run_id=run_id,
        pending=[s for s in loaded.samples if s.id not in done],
        resumed=resumed,
        concurrency=concurrency or settings.concurrency,
        params=params,
    )


async def score(plan: OfflinePlan, sample: Sample, completion: Completion) -> dict[str, Any]:
    return {key: await ev.score(sample, completion) for key, ev in zip(plan.keys, plan.evaluators, strict=True)}


async def run_samples(plan: OfflinePlan, client: EndpointClient, writer: Any, samples: list[Sample]) -> int:
    """Request, score and hand to the writer every sample of one shard; returns how many failed.

    The client bounds concurrency across all shards, so shards can all be awaited at once.
    """
    from aire.store.store import SampleResult

    params = plan.suite.spec.generation
    progress = reporter()
    failed = 0

    async def one(sample: Sample) -> None:
        nonlocal failed
        completion = await client.generate(sample, params)
        scores = await score(plan, sample, completion)
        writer.put(SampleResult(sample=sample, completion=completion, scores=scores))
        failed += not completion.ok
        progress.advance(failed=not completion.ok)

    await asyncio.gather(*(one(s) for s in samples))
    return failed


def fingerprinter(plan: OfflinePlan) -> Callable[[Sample], str]:
    """The request identity the store records next to each row."""
    params = plan.suite.spec.generation
    return lambda sample: request_fingerprint(plan.endpoint, sample, params)


def evaluate_floors(floors: list[Floor], summary: Summary) -> list[FloorResult]:
    """A floor on a metric that is missing or NaN fails: no evidence is not a pass."""
    results = []
    for floor in floors:
        est: Estimate | None = summary.metrics.get(floor.metric) or summary.latency.get(floor.metric)
        value = est.value if est is not None and not math.isnan(est.value) else None
        results.append(FloorResult(floor=str(floor), value=value, passed=value is not None and floor.holds(value)))
    return results


def finalise(plan: OfflinePlan, *, n_requested: int, execution_s: float) -> OfflineResult:
    """Summarise the stored rows, record the MLflow run, then mark the store's run finished."""
    from aire.stats.summary import summarise
    from aire.store.store import FAILED, FINISHED
    from aire.tracking import runs as tracking

    rows = plan.store.results(plan.run_id)
    aggregations = {key: ev.spec.aggregations for key, ev in zip(plan.keys, plan.evaluators, strict=True)}
    summary = summarise(rows, aggregations, plan.suite.spec.slices)
    floors = evaluate_floors(plan.suite.floors, summary)
    try:
        mlflow_run_id = tracking.log_offline_run(
            plan.settings,
            run_name=f"{plan.suite.name}@{plan.endpoint.name}",
            params=plan.params,
            summary=summary,
            floors=[f.model_dump() for f in floors],
            rows=rows,
            samples={s.id: s for s in plan.suite.samples},
            score_keys=plan.keys,
            tags={"aire.kind": "offline", "aire.store_run_id": plan.run_id},
        )
    except Exception:
        plan.store.set_status(plan.run_id, FAILED)
        raise
    plan.store.set_status(plan.run_id, FINISHED, mlflow_run_id=mlflow_run_id)
    return OfflineResult(
        run_id=plan.run_id,
        mlflow_run_id=mlflow_run_id,
        tracking_uri=plan.settings.resolved_tracking_uri,
        suite=plan.suite.name,
        suite_version=plan.suite.version,
        endpoint=plan.endpoint.name,
        served_model=plan.endpoint.model,
        n_samples=len(rows),
        n_requested=n_requested,
        execution_s=execution_s,
        resumed=plan.resumed,
        summary=summary,
        floors=floors,
    )
