"""MLflow: one run per flow run, with params, metrics, the per-sample table and the summary.

Everything goes through ``MlflowClient`` with an explicit run id: MLflow's active run is
thread-local, and Prefect tasks may run on other threads. mlflow is imported inside functions
because importing it costs seconds and most commands never record anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aire.errors import TrackingError
from aire.model import Sample, Summary
from aire.report import markdown
from aire.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from aire.store import ResultRow

MAX_PARAM_LEN = 6000


def client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.resolved_tracking_uri)


def experiment_id(settings: Settings, mlflow_client: MlflowClient) -> str:
    """The configured experiment, created with its artifacts under aire's home (not ./mlruns)."""
    from mlflow.exceptions import MlflowException

    name = settings.mlflow_experiment
    exp = mlflow_client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    try:
        return str(mlflow_client.create_experiment(name, artifact_location=settings.artifact_root.as_uri()))
    except MlflowException:
        # Another process created it between our lookup and our create.
        exp = mlflow_client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = str(value)[:MAX_PARAM_LEN]
    return out


def samples_frame(rows: Sequence[ResultRow], samples: dict[str, Sample], score_keys: Sequence[str]) -> Any:
    """The per-sample table a reviewer reads in the MLflow UI (Evaluation / Artifacts tab)."""
    import pandas as pd

    records = []
    for r in rows:
        sample = samples.get(r.sample_id)
        prompt: Any = None
        if sample is not None:
            prompt = sample.prompt if isinstance(sample.prompt, str) else [m.model_dump() for m in sample.prompt]
        scores = r.scores
        records.append(
            {
                "sample_id": r.sample_id,
                **{f"slice.{k}": v for k, v in r.slices.items()},
                "prompt": prompt if isinstance(prompt, str) else str(prompt),
                "reference": None if sample is None else str(sample.reference),
                "output": r.text,
                **{f"score.{k}": scores.get(k, math.nan) for k in score_keys},
                "ttft_ms": None if r.ttft_s is None else r.ttft_s * 1000,
                "tpot_ms": None if r.tpot_s is None else r.tpot_s * 1000,
                "e2e_ms": None if r.e2e_s is None else r.e2e_s * 1000,
                "output_tokens": r.output_tokens,
                "attempts": r.attempts,
                "error": None if r.error_type is None else f"{r.error_type} {r.error_status or ''}: {r.error_message}",
            }
        )
    return pd.DataFrame.from_records(records)


def log_offline_run(
    settings: Settings,
    *,
    run_name: str,
    params: dict[str, Any],
    summary: Summary,
    floors: list[dict[str, Any]],
    rows: Sequence[ResultRow],
    samples: dict[str, Sample],
    score_keys: Sequence[str],
    tags: dict[str, str],
) -> str:
    """Record one finished offline run; returns the MLflow run id.

    If any step fails the run is marked FAILED, so a half-written run never looks finished.
    """
    from mlflow.entities import Metric, Param, RunTag

    try:
        mc = client(settings)
        exp = experiment_id(settings, mc)
        run = mc.create_run(exp, run_name=run_name, tags=tags)
    except Exception as exc:
        raise TrackingError(f"MLflow at {settings.resolved_tracking_uri}: {type(exc).__name__}: {exc}") from exc
    run_id = run.info.run_id
    try:
        now = int(time.time() * 1000)
        flat_params = [Param(k, v) for k, v in flatten(params).items()]
        metrics = [Metric(k, v, now, 0) for k, v in summary.flat().items()]
        for i in range(0, len(flat_params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
            mc.log_batch(run_id, params=flat_params[i : i + 100])
        for i in range(0, len(metrics), 1000):
            mc.log_batch(run_id, metrics=metrics[i : i + 1000])
        passed = all(f["passed"] for f in floors)
        mc.log_batch(run_id, tags=[RunTag("aire.floors", "pass" if passed else "fail")])
        mc.log_table(run_id, data=samples_frame(rows, samples, score_keys), artifact_file="samples.json")
        mc.log_dict(
            run_id, {"summary": summary.model_dump(mode="json"), "floors": floors, "params": params}, "summary.json"
        )
        mc.log_text(run_id, markdown(run_name, flatten(params), summary, floors), "report.md")
        mc.set_terminated(run_id, "FINISHED")
    except Exception as exc:
        mc.set_terminated(run_id, "FAILED")
        raise TrackingError(f"could not record MLflow run {run_id}: {type(exc).__name__}: {exc}") from exc
    return str(run_id)


def ui_command(settings: Settings) -> str:
    return (
        f"mlflow ui --backend-store-uri {settings.resolved_tracking_uri} "
        f"--default-artifact-root {settings.artifact_root.as_uri()} --host 127.0.0.1 --port 5000"
    )
