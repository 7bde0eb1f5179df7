"""The store: runs, per-sample rows committed by the writer thread, resume bookkeeping."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from aire.core.types import Completion, CompletionError, Sample, Score
from aire.store.store import FINISHED, SampleResult, Store


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'aire.db'}")


def FP(sample: Sample) -> str:
    return "f" * 64


def new_run(store: Store, key: str = "k") -> str:
    return store.create_run(
        kind="offline",
        resume_key=key,
        suite="s",
        suite_version="v",
        endpoint="e",
        served_model="m",
        params={"a": 1},
        n_samples=3,
    ).id


def result(sample_id: str, *, error: bool = False, value: float = 1.0) -> SampleResult:
    completion = Completion(text="7", ttft_s=0.01, e2e_s=0.02, output_tokens=2)
    if error:
        completion = Completion(error=CompletionError(type="http", status=503, message="busy"), attempts=4)
    return SampleResult(
        sample=Sample(id=sample_id, prompt="Q", reference="7", slices={"op": "add"}),
        completion=completion,
        scores={"em": Score(value=math.nan if error else value, explanation="x" if error else None)},
    )


def test_sqlite_runs_in_wal_mode(store: Store) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"


def test_rows_round_trip_with_nan_as_null(store: Store) -> None:
    run_id = new_run(store)
    with store.writer(run_id, FP) as w:
        w.put(result("a"))
        w.put(result("b", error=True))
    rows = {r.sample_id: r for r in store.results(run_id)}
    assert rows["a"].fingerprint == "f" * 64
    assert rows["a"].scores == {"em": 1.0} and rows["a"].ttft_s == 0.01 and rows["a"].slices == {"op": "add"}
    assert math.isnan(rows["b"].scores["em"]) and rows["b"].scores_json == {"em": None}
    assert rows["b"].error_type == "http" and rows["b"].error_status == 503 and rows["b"].attempts == 4
    # Failed samples are not "completed": a resume requests them again.
    assert store.completed_ids(run_id) == {"a"}


def test_retried_sample_replaces_failed_row(store: Store) -> None:
    run_id = new_run(store)
    with store.writer(run_id, FP) as w:
        w.put(result("a", error=True))
    with store.writer(run_id, FP) as w:
        w.put(result("a", value=0.0))
    rows = store.results(run_id)
    assert len(rows) == 1 and rows[0].error_type is None and rows[0].scores == {"em": 0.0}


def test_resumable_until_finished(store: Store) -> None:
    run_id = new_run(store, key="abc")
    assert store.find_resumable("abc").id == run_id
    assert store.find_resumable("other") is None
    store.set_status(run_id, FINISHED, mlflow_run_id="m1")
    assert store.find_resumable("abc") is None
    run = store.get_run(run_id)
    assert run.status == FINISHED and run.mlflow_run_id == "m1" and run.finished_at is not None


def test_many_rows_are_group_committed(store: Store) -> None:
    run_id = new_run(store)
    with store.writer(run_id, FP) as w:
        for i in range(2000):
            w.put(result(f"s{i}"))
    assert store.count_results(run_id) == 2000
    assert w.written == 2000


def test_writer_error_surfaces(store: Store) -> None:
    # A row for a run that does not exist violates the foreign key: the failure must reach the caller.
    with pytest.raises(RuntimeError, match="result writer failed"), store.writer("no-such-run", FP) as w:
        w.put(result("a"))
