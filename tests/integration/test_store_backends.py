"""Two offline flow runs at once, each its own run, writing one store: no row lost (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from aire.store.store import FINISHED, Store
from tests.conftest import AIRE

pytestmark = pytest.mark.integration


def test_two_concurrent_flow_runs_lose_no_row(
    aire_store: str, aire_env: Path, fake_server: str, prefect_api: str
) -> None:
    from mlflow import MlflowClient

    # MLflow migrates a new SQLite tracking store without a lock: two first runs at once race on its
    # tables (`_alembic_tmp_experiments already exists`). That is MLflow's; the store is what is tested.
    MlflowClient(tracking_uri=f"sqlite:///{aire_env / 'mlflow.db'}").search_experiments()
    env = {**os.environ, "PREFECT_API_URL": prefect_api, "AIRE_SHARD_SIZE": "25"}
    # Two sample counts: two resume keys, so two runs (the same command twice would share one run).
    procs = [
        subprocess.Popen(
            [
                AIRE,
                "run",
                "offline",
                "--suite",
                "arith",
                "--base-url",
                fake_server,
                "--model",
                "fake",
                "--limit",
                limit,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        for limit in ("100", "120")
    ]
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out[-2000:]
    store = Store(aire_store)
    runs = store.runs("offline")
    assert len(runs) == 2 and all(r.status == FINISHED for r in runs)
    assert sorted(store.count_results(r.id) for r in runs) == [100, 120]
    assert sorted(len(store.completed_ids(r.id)) for r in runs) == [100, 120]
