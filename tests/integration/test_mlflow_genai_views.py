"""MLflow's GenAI views of an aire run, as a new user opens them: the MLflow server on aire's tracking
store, the run's traces and assessments and its dataset through MLflow's REST API, and the run's
traces page rendered by headless Chromium (its DOM must show trace rows; a screenshot is kept), and
the same page comparing it row by row with a second run."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from aire.core.settings import get_settings
from aire.run import finalise, prepare, run_shard, sending
from aire.testing.fake_openai import FakeOpenAI
from tests.conftest import free_port, stop_process, wait_http

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--virtual-time-budget=15000",
    "--window-size=1400,900",
]


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=20) as resp:
        return json.load(resp)  # type: ignore[no-any-return]


async def _run(wrong_rate: float = 0.3, seed: int = 4) -> Any:
    async with FakeOpenAI(latency_s=0, wrong_rate=wrong_rate, seed=seed) as fake:
        plan = await prepare(get_settings(), suite="arith", base_url=fake.base_url, model="fake", limit=20)
        async with sending(plan):
            for i in range(len(plan.shards())):
                await run_shard(plan.id, i)
        return finalise(plan.id)


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make test installs it as root)")
def test_mlflow_shows_an_offline_runs_traces_assessments_and_dataset(aire_env: Path, tmp_path: Path) -> None:
    result = asyncio.run(_run())
    other = asyncio.run(_run(wrong_rate=0.6, seed=9))  # a second version of the model, same 20 inputs
    settings = get_settings()
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            settings.resolved_tracking_uri,
            "--default-artifact-root",
            settings.artifact_root.as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", 60, server)
        run = _get(f"{base}/api/2.0/mlflow/runs/get?run_id={result.mlflow_run_id}")["run"]
        exp = run["info"]["experiment_id"]
        (ds,) = run["inputs"]["dataset_inputs"]
        assert ds["dataset"]["name"] == "arith" and result.suite_version.startswith(ds["dataset"]["digest"])

        def traces_of(run_id: str) -> list[dict[str, Any]]:
            return _post(
                f"{base}/api/3.0/mlflow/traces/search",
                {
                    "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": exp}}],
                    "filter": f"metadata.`mlflow.sourceRun` = '{run_id}'",
                    "max_results": 100,
                },
            )["traces"]

        found = traces_of(result.mlflow_run_id)
        assert len(found) == 20
        for info in found:
            names = {a["assessment_name"] for a in info["assessments"]}
            assert {"exact_match", "expected_response"} <= names
            assert info["trace_metadata"]["mlflow.sourceRun"] == result.mlflow_run_id
            assert info["request_preview"].startswith("Q: ")

        # The run's traces page, rendered: the DOM lists the traces (their request text) and a score.
        url = f"{base}/#/experiments/{exp}/runs/{result.mlflow_run_id}/traces"
        profile = Path(tempfile.mkdtemp(dir=tmp_path))
        dom = _chromium(["--dump-dom", url], profile).stdout
        assert "exact_match" in dom, dom[-2000:]
        assert dom.count("Q: ") >= 5
        shot = tmp_path / "mlflow-traces.png"
        _chromium([f"--screenshot={shot}", url], profile)
        assert shot.stat().st_size > 20_000  # a blank page compresses to a few kB

        # Row by row against the other run: the evaluation view pairs the two runs' traces of one input
        # (the same mlflow.eval.requestId), so both runs' trace ids are on the page.
        compare = f"{url}?compareToRunUuid={other.mlflow_run_id}"
        dom = _chromium(["--dump-dom", compare], Path(tempfile.mkdtemp(dir=tmp_path))).stdout
        for run_id in (result.mlflow_run_id, other.mlflow_run_id):
            shown = [t["trace_id"] for t in traces_of(run_id) if t["trace_id"] in dom]
            assert len(shown) >= 5, (run_id, len(shown))
        _chromium([f"--screenshot={tmp_path / 'mlflow-compare.png'}", compare], profile)
    finally:
        stop_process(server)
