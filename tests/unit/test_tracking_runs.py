"""The one MLflow run lifecycle (aire.tracking.runs.recording), against a real MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest

from aire.core.errors import TrackingError
from aire.core.settings import Settings
from aire.tracking.runs import recording


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", mlflow_experiment="test-recording")


def _status(settings: Settings, run_id: str) -> str:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.resolved_tracking_uri).get_run(run_id).info.status


def test_every_run_started_finishes_together(settings: Settings) -> None:
    with recording(settings) as runs:
        parent = runs.start("parent", {"aire.kind": "shadow"})
        child = runs.start("child", {"mlflow.parentRunId": parent})
        runs.client.log_text(child, "hello", "note.txt")
        assert _status(settings, parent) == "RUNNING"  # not finished before the block is
    assert _status(settings, parent) == "FINISHED" and _status(settings, child) == "FINISHED"


def test_a_failed_step_marks_every_run_failed_and_says_which(settings: Settings) -> None:
    with pytest.raises(TrackingError) as err, recording(settings) as runs:
        parent = runs.start("parent", {})
        child = runs.start("child", {"mlflow.parentRunId": parent})
        raise ValueError("disk full")
    assert _status(settings, parent) == "FAILED" and _status(settings, child) == "FAILED"
    assert f"could not record MLflow run {parent}: ValueError: disk full" in str(err.value)


def test_a_tracking_store_that_cannot_be_used_is_a_tracking_error(tmp_path: Path) -> None:
    # A scheme MLflow has no store for fails at once (an unreachable server would be retried for minutes).
    bad = Settings(home=tmp_path, mlflow_tracking_uri="nope://tracking")
    with pytest.raises(TrackingError, match="MLflow at nope://tracking"), recording(bad) as runs:
        runs.start("x", {})


def _first_use(home: str) -> str:
    from aire.tracking.runs import recording

    with recording(Settings(home=Path(home), mlflow_experiment="race")) as runs:
        return runs.start("r", {})


def test_two_processes_starting_together_on_a_new_tracking_store_both_record(tmp_path: Path) -> None:
    """MLflow migrates a new SQLite database on first use without a lock; aire takes one."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(2) as pool:
        run_ids = pool.map(_first_use, [str(tmp_path / "home")] * 2)
    settings = Settings(home=tmp_path / "home")
    assert len(set(run_ids)) == 2 and all(_status(settings, r) == "FINISHED" for r in run_ids)


def test_a_tracking_store_whose_creation_died_half_way_leaves_nothing_half_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from aire.tracking import runs

    settings = Settings(home=tmp_path / "home")
    db = Path(settings.resolved_tracking_uri.removeprefix("sqlite:///"))

    class Killed(Exception):
        pass

    def killed(*args: object, **kwargs: object) -> None:
        raise Killed("killed during the registry's migrations")

    # Death during the first migrations: no database under the real name, so no later command finds
    # a half-migrated one (MLflow's SQLite migrations are not transactional).
    with monkeypatch.context() as m:
        m.setattr(mlflow.MlflowClient, "search_registered_models", killed)
        with pytest.raises(Killed):
            runs.client(settings)
    assert not db.exists() and db.with_name(db.name + ".building").exists()
    # The next command builds it afresh, the leftover replaced.
    mc = runs.client(settings)
    assert db.exists() and not db.with_name(db.name + ".building").exists()
    assert mc.search_experiments(max_results=1) is not None
