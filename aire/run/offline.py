"""The offline benchmark, as engine steps the Prefect flow strings together.

prepare()      validate everything (suite, evaluators, endpoint) before anything is recorded
sending()      open the run's client and writer (and the progress bar) for its shards
run_shard()    request, score and store one shard of samples (what a Prefect task runs, by run id and index)
finalise()     summary, floors, MLflow run; only then is the store's run marked finished

Keeping the steps here (not in the flow) means the engine runs and is tested without Prefect.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

import aire
from aire.client.config import EndpointConfig
from aire.core.progress import reporter
from aire.core.repeats import generation_for
from aire.core.settings import Settings
from aire.core.types import Estimate, Sample, Summary
from aire.data.suites import Floor, Suite, inspect_suite
from aire.run import active
from aire.run.executor import Target, open_target, run_all, run_sample
from aire.run.setup import bind_evaluator, check_endpoints, code_version, load_suite_with_evaluators, resolve_endpoint

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
    # This process's CPU seconds in that window (all threads): what the client takes from a server
    # sharing the machine. 0.0 in results recorded before it was measured.
    execution_cpu_s: float = 0.0
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
    evaluators: dict[str, Any]  # metric key -> evaluators.BoundEvaluator
    store: Store
    run_id: str
    pending: list[Sample]
    resumed: bool
    concurrency: int
    params: dict[str, Any] = field(default_factory=dict)
    target: Target | None = None  # open while the shards are sent (``sending``)
    execution_s: float = 0.0  # first request sent -> last row committed, measured by ``sending``
    execution_cpu_s: float = 0.0  # this process's CPU seconds in that window

    @property
    def id(self) -> str:
        return self.run_id

    def shards(self) -> list[list[Sample]]:
        size = self.settings.shard_size
        return [self.pending[i : i + size] for i in range(0, len(self.pending), size)]


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
        validate_evaluator=lambda ref, path, prefix: bind_evaluator(ref, path, prefix, settings),
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
    plan = OfflinePlan(
        settings=settings,
        suite=loaded,
        endpoint=ep,
        evaluators=bound,
        store=store,
        run_id=run_id,
        pending=[s for s in loaded.samples if s.id not in done],
        resumed=resumed,
        concurrency=concurrency or settings.concurrency,
        params=params,
    )
    active.keep(plan.id, plan)
    return plan


@asynccontextmanager
async def sending(plan: OfflinePlan) -> AsyncIterator[None]:
    """The run's client and writer, open while its shards run; every row is committed on exit."""
    progress = reporter()
    n = len(plan.suite.samples)
    progress.start(total=n, completed=n - len(plan.pending), description=f"{plan.suite.name} @ {plan.endpoint.name}")
    started, cpu = time.perf_counter(), time.process_time()
    generation = plan.suite.spec.generation
    try:
        async with open_target(
            plan.settings,
            plan.store,
            plan.run_id,
            plan.endpoint,
            partial(generation_for, generation),
            plan.evaluators,
            concurrency=plan.concurrency,
        ) as plan.target:
            yield
    finally:
        plan.target = None
        plan.execution_s = time.perf_counter() - started
        plan.execution_cpu_s = time.process_time() - cpu
        progress.stop()


async def run_shard(plan_id: str, index: int) -> int:
    """Shard ``index`` of a prepared plan that is ``sending``; returns how many samples failed.

    Samples already stored (by an earlier attempt of this task) are not requested again.
    """
    plan = active.get(plan_id, OfflinePlan)
    done = plan.store.completed_ids(plan.run_id)
    return await run_samples(plan, [s for s in plan.shards()[index] if s.id not in done])


async def run_samples(plan: OfflinePlan, samples: list[Sample]) -> int:
    """Request, score and store ``samples`` through the plan's open target; returns how many failed.

    The client bounds concurrency across all shards, so shards can all be awaited at once.
    """
    target = plan.target
    if target is None:
        raise RuntimeError(f"run {plan.run_id} is not sending: open it with `async with sending(plan)`")
    progress = reporter()

    async def one(sample: Sample) -> bool:
        completion = await run_sample(target, sample)
        progress.advance(failed=not completion.ok)
        return completion.ok

    return sum(not ok for ok in await run_all(one(s) for s in samples))


def evaluate_floors(floors: list[Floor], summary: Summary) -> list[FloorResult]:
    """A floor on a metric that is missing or NaN fails: no evidence is not a pass."""
    results = []
    for floor in floors:
        est: Estimate | None = summary.metrics.get(floor.metric) or summary.latency.get(floor.metric)
        value = est.value if est is not None and not math.isnan(est.value) else None
        results.append(FloorResult(floor=str(floor), value=value, passed=value is not None and floor.holds(value)))
    return results


def finalise(plan_id: str) -> OfflineResult:
    """Summarise the stored rows, record the MLflow run, then mark the store's run finished."""
    from aire.stats.summary import summarise
    from aire.store.store import FAILED, FINISHED
    from aire.tracking import runs as tracking

    plan = active.get(plan_id, OfflinePlan)
    rows = plan.store.results(plan.run_id)
    aggregations = {key: ev.spec.aggregations for key, ev in plan.evaluators.items()}
    spec = plan.suite.spec
    summary = summarise(rows, aggregations, spec.slices, plan.endpoint.price, spec.repeats, spec.calibrated)
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
            score_keys=list(plan.evaluators),
            tags={"aire.kind": "offline", "aire.store_run_id": plan.run_id},
        )
    except Exception:
        plan.store.set_status(plan.run_id, FAILED)
        raise
    plan.store.set_status(plan.run_id, FINISHED, mlflow_run_id=mlflow_run_id)
    active.drop(plan_id)
    return OfflineResult(
        run_id=plan.run_id,
        mlflow_run_id=mlflow_run_id,
        tracking_uri=plan.settings.resolved_tracking_uri,
        suite=plan.suite.name,
        suite_version=plan.suite.version,
        endpoint=plan.endpoint.name,
        served_model=plan.endpoint.model,
        n_samples=len(rows),
        n_requested=len(plan.pending),
        execution_s=plan.execution_s,
        execution_cpu_s=plan.execution_cpu_s,
        resumed=plan.resumed,
        summary=summary,
        floors=floors,
    )
