"""MLflow: one run per flow run, with params, metrics, the per-sample table and the summary.

Everything goes through ``MlflowClient`` with an explicit run id: MLflow's active run is
thread-local, and Prefect tasks may run on other threads. mlflow is imported inside functions
because importing it costs seconds and most commands never record anything.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aire.core.errors import TrackingError
from aire.core.settings import Settings
from aire.core.types import Sample, Summary
from aire.gate import reliability
from aire.tracking import recorder, traces
from aire.tracking.recorder import recorded
from aire.tracking.report import markdown

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from aire.gate.evidence import Comparison
    from aire.gate.policy import Decision
    from aire.store.store import ResultRow

MAX_PARAM_LEN = 6000


_READY: set[str] = set()  # SQLite tracking stores this process has seen created and migrated


def client(settings: Settings) -> MlflowClient:
    from mlflow import MlflowClient

    uri = settings.resolved_tracking_uri
    if not uri.startswith("sqlite:///") or uri in _READY:
        return MlflowClient(tracking_uri=uri)
    # MLflow creates and migrates a new SQLite database on first use without a lock: two aire
    # commands starting together on a fresh home collide ("table _alembic_tmp_experiments already
    # exists"). The first use happens here, one process at a time.
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not db.exists():
            # MLflow's first-time migrations are not transactional on SQLite: a process killed during
            # them leaves a half-migrated database no later command can open ("duplicate column name").
            # It is built under another name and renamed into place once complete.
            building = db.with_name(db.name + ".building")
            building.unlink(missing_ok=True)
            fresh = MlflowClient(tracking_uri=f"sqlite:///{building}")
            fresh.search_experiments(max_results=1)
            fresh.search_registered_models(max_results=1)
            os.replace(building, db)
        mc = MlflowClient(tracking_uri=uri)
        mc.search_experiments(max_results=1)
        mc.search_registered_models(max_results=1)  # the registry's store migrates on its own first use
    _READY.add(uri)
    return mc


def start_recorder(settings: Settings) -> recorder.Recorder | None:
    """Start the recorder process of a command that will record (aire.tracking.recorder): it imports
    mlflow and opens this tracking store while the command goes on."""
    return recorder.start_recorder(lambda: client(settings))


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


class Runs:
    """The MLflow runs one recording starts (a run, or a parent and its nested runs)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.started: list[str] = []
        self._client: MlflowClient | None = None
        self._experiment: str | None = None

    @property
    def experiment_id(self) -> str:
        if self._experiment is None:
            self._experiment = experiment_id(self.settings, self.client)
        return self._experiment

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            self._client = client(self.settings)
        return self._client

    def start(self, run_name: str, tags: dict[str, str]) -> str:
        try:
            if self._experiment is None:
                self._experiment = experiment_id(self.settings, self.client)
            run = self.client.create_run(self._experiment, run_name=run_name, tags=tags)
        except Exception as exc:
            raise TrackingError(
                f"MLflow at {self.settings.resolved_tracking_uri}: {type(exc).__name__}: {exc}"
            ) from exc
        self.started.append(str(run.info.run_id))
        return self.started[-1]


@contextmanager
def recording(settings: Settings) -> Iterator[Runs]:
    """The one run lifecycle: every run started inside ends FINISHED when the block completes, or
    every one FAILED when any step fails (then a TrackingError, exit 3), so a half-written run, or a
    comparison with one arm missing, never looks finished."""
    runs = Runs(settings)
    try:
        yield runs
    except Exception as exc:
        for run_id in runs.started:
            with contextlib.suppress(Exception):  # the original error is what the user needs to see
                runs.client.set_terminated(run_id, "FAILED")
        if isinstance(exc, TrackingError):
            raise
        first = runs.started[0] if runs.started else "(none started)"
        raise TrackingError(f"could not record MLflow run {first}: {type(exc).__name__}: {exc}") from exc
    for run_id in runs.started:
        runs.client.set_terminated(run_id, "FINISHED")


def _log_params_metrics(mc: MlflowClient, run_id: str, params: dict[str, Any], metrics: dict[str, float]) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    flat_params = [Param(k, v) for k, v in flatten(params).items()]
    flat_metrics = [Metric(k, v, now, 0) for k, v in metrics.items() if math.isfinite(v)]
    for i in range(0, len(flat_params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
        mc.log_batch(run_id, params=flat_params[i : i + 100])
    for i in range(0, len(flat_metrics), 1000):
        mc.log_batch(run_id, metrics=flat_metrics[i : i + 1000])


def _log_results(
    mc: MlflowClient,
    run_id: str,
    *,
    experiment: str,
    run_name: str,
    params: dict[str, Any],
    summary: Summary,
    floors: list[dict[str, Any]],
    rows: Sequence[ResultRow],
    samples: dict[str, Sample],
    score_keys: Sequence[str],
    trace_samples: int | None,
) -> None:
    """Params, metrics, per-sample table, summary.json and report.md of one endpoint's results, a trace
    per sample (up to ``trace_samples``, None: all) and the suite as the run's dataset
    (aire.tracking.traces: MLflow's GenAI views)."""
    _log_params_metrics(mc, run_id, params, summary.flat())

    # The traces are the slow part (~0.5-0.9 s per 1,000 samples): written after this job has answered,
    # while the command finishes, when a recorder process records (aire.tracking.recorder.defer).
    def write_traces() -> None:
        traces.log_traces(
            mc,
            experiment,
            run_id,
            rows=rows,
            samples=samples,
            score_keys=score_keys,
            params=params,
            limit=trace_samples,
        )

    recorder.defer(write_traces, f"writing the MLflow traces of run {run_id}")
    suite = params.get("suite")
    version = params.get("suite_version") or params.get("source_version")
    if suite and version:
        traces.log_dataset(
            mc, run_id, name=str(suite), version=str(version), samples=samples, source=params.get("suite_path")
        )
    mc.log_table(run_id, data=samples_frame(rows, samples, score_keys), artifact_file="samples.json")
    mc.log_dict(
        run_id, {"summary": summary.model_dump(mode="json"), "floors": floors, "params": params}, "summary.json"
    )
    mc.log_text(run_id, markdown(run_name, flatten(params), summary, floors), "report.md")
    curves = reliability.curves_of({"run": summary})
    if curves:
        with tempfile.TemporaryDirectory() as tmp:
            mc.log_artifact(run_id, str(reliability.plot(curves, Path(tmp) / reliability.PNG)))


@recorded  # in the recorder process when the command started one (aire.tracking.recorder)
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

    If any step fails the run is marked FAILED (``recording``).
    """
    from mlflow.entities import RunTag

    with recording(settings) as runs:
        run_id = runs.start(run_name, tags)
        _log_results(
            runs.client,
            run_id,
            experiment=runs.experiment_id,
            run_name=run_name,
            params=params,
            summary=summary,
            floors=floors,
            rows=rows,
            samples=samples,
            score_keys=score_keys,
            trace_samples=settings.trace_samples,
        )
        passed = all(f["passed"] for f in floors)
        runs.client.log_batch(run_id, tags=[RunTag("aire.floors", "pass" if passed else "fail")])
    return run_id


@dataclass
class ArmRecord:
    """One arm of a comparison, recorded as a nested run under the comparison's run."""

    run_name: str
    params: dict[str, Any]
    summary: Summary
    rows: Sequence[ResultRow]
    store_run_id: str


def pairs_frame(arms: dict[str, ArmRecord], samples: dict[str, Sample], score_keys: Sequence[str]) -> Any:
    """Both arms side by side, one row per input: what a reviewer scrolls through in the UI."""
    import pandas as pd

    frames = []
    for arm, record in arms.items():
        f = samples_frame(record.rows, samples, score_keys).set_index("sample_id")
        keep = ["output", *[f"score.{k}" for k in score_keys], "ttft_ms", "e2e_ms", "error"]
        frames.append(f[keep].add_prefix(f"{arm}."))
        if arm == next(iter(arms)):
            frames.insert(0, f[[c for c in ("prompt", "reference") if c in f]])
    return pd.concat(frames, axis=1).reset_index()


def log_comparison(
    settings: Settings,
    *,
    run_name: str,
    params: dict[str, Any],
    decision: Decision,
    comparison: Comparison,
    arms: dict[str, ArmRecord],
    samples: dict[str, Sample],
    score_keys: Sequence[str],
    files: Sequence[Path],
    decision_body: Callable[[str], dict[str, Any]],
) -> str:
    """A parent run for the comparison (decision, deltas, report, plot) with a nested run per arm.

    Every run is marked FAILED if any step fails (``recording``).
    """
    from mlflow.entities import RunTag

    tags = {"aire.kind": "shadow", "aire.verdict": decision.verdict.value}
    with recording(settings) as runs:
        mc, parent = runs.client, runs.start(run_name, tags)
        for arm, record in arms.items():
            child = runs.start(
                record.run_name,
                {"mlflow.parentRunId": parent, "aire.kind": f"shadow-{arm}", "aire.store_run_id": record.store_run_id},
            )
            _log_results(
                mc,
                child,
                experiment=runs.experiment_id,
                run_name=record.run_name,
                params=record.params,
                summary=record.summary,
                floors=[],
                rows=record.rows,
                samples=samples,
                score_keys=score_keys,
                trace_samples=settings.trace_samples,
            )
        metrics: dict[str, float] = {"n_pairs": float(comparison.counts.n_pairs)}
        for name, m in comparison.metrics.items():
            for side in ("champion", "challenger", "delta"):
                est = getattr(m.evidence, side)
                if est is not None:
                    metrics[f"{side}/{name}"] = est.value
        _log_params_metrics(mc, parent, params, metrics)
        mc.log_table(parent, data=pairs_frame(arms, samples, score_keys), artifact_file="pairs.json")
        for path in files:
            mc.log_artifact(parent, str(path))
        mc.log_dict(parent, decision_body(parent), "decision.json")
        mc.log_batch(parent, tags=[RunTag("aire.reasons", "; ".join(decision.reasons)[:5000])])
    return parent


def ui_command(settings: Settings) -> str:
    return (
        f"mlflow ui --backend-store-uri {settings.resolved_tracking_uri} "
        f"--default-artifact-root {settings.artifact_root.as_uri()} --host 127.0.0.1 --port 5000"
    )
