"""``aire rescore``: a finished offline run's stored completions scored again by a suite's current
evaluators, with no new model request, recorded as a new run linked to the original.

Used when an evaluator changed (a fixed normaliser, a new judge, an added metric): the model's
answers are what they were, so only the scoring is redone. Completions (text, timings, tokens and
errors) are copied as stored; a failed request stays failed. Judged evaluators ask their judges as
in a run, through the store's cache.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from aire.client.config import load_config
from aire.core.errors import InputError
from aire.core.progress import reporter
from aire.core.settings import Settings
from aire.core.types import Completion, CompletionError
from aire.judges import judging
from aire.run.offline import OfflineResult, evaluate_floors
from aire.run.setup import code_version, load_suite_with_evaluators


def completion_of(row: Any) -> Completion:
    """The completion a stored result row records."""
    error = None
    if row.error_type is not None:
        error = CompletionError(type=row.error_type, status=row.error_status, message=row.error_message or "")
    return Completion(
        text=row.text or "",
        finish_reason=row.finish_reason,
        prompt_tokens=row.prompt_tokens,
        output_tokens=row.output_tokens,
        ttft_s=row.ttft_s,
        tpot_s=row.tpot_s,
        e2e_s=row.e2e_s,
        attempts=row.attempts,
        error=error,
        logprobs=[(str(t), float(v)) for t, v in row.logprobs] if row.logprobs else None,
    )


async def rescore(settings: Settings, run_id: str, suite: str | None = None, concurrency: int = 16) -> OfflineResult:
    """Score run ``run_id``'s stored completions with ``suite``'s evaluators (default: the run's own
    suite, as it is now); returns the new run's result, recorded in the store and MLflow."""
    import aire
    from aire.stats.summary import summarise
    from aire.store.store import FAILED, FINISHED, Store
    from aire.store.writer import SampleResult
    from aire.tracking import runs as tracking

    store = Store(settings.resolved_store_url)
    try:
        original = store.get_run(run_id)
        if original is None or original.kind not in ("offline", "rescore"):
            raise InputError(f"no offline run {run_id!r} in the store at {settings.resolved_store_url}", field="run")
        if original.status != FINISHED:
            raise InputError(f"run {run_id} is {original.status}: only a finished run is rescored", field="run")
        loaded, bound = load_suite_with_evaluators(settings, suite or str(original.params.get("suite_path")))
        rows = store.results(run_id)
        samples = {s.id: s for s in loaded.samples}
        missing = [r.sample_id for r in rows if r.sample_id not in samples]
        if missing:
            raise InputError(
                f"{len(missing)} of the run's samples are not in suite {loaded.name} (e.g. {missing[0]!r})",
                field="suite",
            )
        params = {
            **original.params,
            "suite": loaded.name,
            "suite_version": loaded.version,
            "suite_path": str(loaded.path),
            "evaluators": [ref.model_dump(by_alias=True, exclude_none=True) for ref in loaded.spec.evaluators],
            "floors": [str(f) for f in loaded.floors],
            "rescored_from": run_id,
            "rescored_from_mlflow": original.mlflow_run_id,
            "aire_version": aire.__version__,
            "code_version": code_version(),
        }
        new = store.create_run(
            kind="rescore",
            resume_key=f"rescore-{uuid.uuid4().hex[:24]}",  # never resumed: a rescore is cheap to redo
            suite=loaded.name,
            suite_version=loaded.version,
            endpoint=original.endpoint,
            served_model=original.served_model,
            params=params,
            n_samples=len(rows),
        )
        fingerprints = {r.sample_id: r.fingerprint for r in rows}
        sem = asyncio.Semaphore(concurrency)
        progress = reporter()
        progress.start(total=len(rows), description=f"rescoring {run_id[:8]} with {loaded.name}")

        async def one(row: Any, writer: Any) -> None:
            sample, completion = samples[row.sample_id], completion_of(row)
            async with sem:
                scores = {key: await ev.score(sample, completion) for key, ev in bound.items()}
            writer.put(SampleResult(sample=sample, completion=completion, scores=scores))
            progress.advance(failed=completion.error is not None)

        try:
            async with judging(settings, store):
                with store.writer(new.id, lambda s: fingerprints[s.id]) as writer:
                    await asyncio.gather(*(one(r, writer) for r in rows))
        finally:
            progress.stop()
        stored = store.results(new.id)
        aggregations = {key: ev.spec.aggregations for key, ev in bound.items()}
        # The endpoint's price as configured now (an ad hoc endpoint has none).
        configured = load_config(settings.config, settings.models_dir).endpoints.get(original.endpoint)
        price = configured.price if configured is not None else None
        summary = summarise(
            stored, aggregations, loaded.spec.slices, price, loaded.spec.repeats, loaded.spec.calibrated
        )
        floors = evaluate_floors(loaded.floors, summary)
        tags = {"aire.kind": "rescore", "aire.store_run_id": new.id, "aire.rescored_from": run_id}
        if original.mlflow_run_id:
            tags["aire.rescored_from_mlflow"] = original.mlflow_run_id
        try:
            mlflow_run_id = tracking.log_offline_run(
                settings,
                run_name=f"{loaded.name}@{original.endpoint} (rescored)",
                params=params,
                summary=summary,
                floors=[f.model_dump() for f in floors],
                rows=stored,
                samples=samples,
                score_keys=list(bound),
                tags=tags,
            )
        except Exception:
            store.set_status(new.id, FAILED)
            raise
        store.set_status(new.id, FINISHED, mlflow_run_id=mlflow_run_id)
        return OfflineResult(
            run_id=new.id,
            mlflow_run_id=mlflow_run_id,
            tracking_uri=settings.resolved_tracking_uri,
            suite=loaded.name,
            suite_version=loaded.version,
            endpoint=original.endpoint,
            served_model=original.served_model,
            n_samples=len(stored),
            n_requested=0,  # the point: no model was asked
            execution_s=0.0,
            resumed=False,
            summary=summary,
            floors=floors,
        )
    finally:
        store.close()
