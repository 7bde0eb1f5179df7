"""The offline-benchmark flow for real: Prefect (server and ephemeral), MLflow (SQLite), the store.

The model behind the endpoint is the fake OpenAI server here (it answers arith correctly); the
same path against real vLLM is in test_offline_vllm.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from aire.cli.app import main
from aire.core.settings import get_settings
from aire.store.store import FINISHED, Store
from tests.conftest import (
    AIRE,
    REPO,
    SQLITE_ONLY,
    fake_process,
    mlflow_client,
    mlflow_runs,
    run_ids,
    server_stats,
    stop_process,
)

# Each test runs on both store backends (SQLite, PostgreSQL): aire_store in tests/conftest.py.
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("aire_store")]


def test_offline_flow_records_everything(
    aire_env: Path, fake_server: str, prefect_api: str, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    monkeypatch.setenv("AIRE_SHARD_SIZE", "64")
    get_settings.cache_clear()
    code = main(["run", "offline", "--suite", "arith", "--base-url", fake_server, "--model", "fake"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "exact_match/mean" in out and "PASS  exact_match/mean >= 0.9" in out and "aire ui" in out

    (run,) = mlflow_runs(aire_env)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["exact_match/mean"] == 1.0
    assert run.data.metrics["exact_match/mean/op:mul"] == 1.0
    assert run.data.metrics["latency/ttft_ms/p50"] >= 10.0  # the fake server's configured latency
    params = run.data.params
    assert params["suite"] == "arith" and len(params["suite_version"]) == 64
    assert params["served_model"] == "fake" and params["generation.max_tokens"] == "4"
    assert params["aire_version"] and params["code_version"]
    assert run.data.tags["aire.floors"] == "pass"

    client = mlflow_client(aire_env)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"samples.json", "summary.json", "report.md"} <= artifacts
    table = client.load_table(run.info.experiment_id, "samples.json", run_ids=[run.info.run_id])
    assert len(table) == 200 and set(table["score.exact_match"]) == {1.0}
    assert {"prompt", "reference", "output", "ttft_ms", "tpot_ms", "e2e_ms", "output_tokens"} <= set(table.columns)

    store = Store(get_settings().resolved_store_url)
    store_run = store.get_run(run.data.tags["aire.store_run_id"])
    assert store_run.status == FINISHED and store_run.mlflow_run_id == run.info.run_id
    assert store.count_results(store_run.id) == 200

    # The flow ran against the Prefect server with one task per shard (200 samples / 64 = 4 shards).
    body = json.dumps({"flows": {"name": {"any_": ["offline-benchmark"]}}}).encode()
    headers = {"Content-Type": "application/json"}
    req = urllib.request.Request(f"{prefect_api}/task_runs/filter", data=body, headers=headers)
    with urllib.request.urlopen(req) as resp:
        task_names = [t["name"] for t in json.load(resp)]
    assert sum(n.startswith("evaluate-shard") for n in task_names) >= 4


def test_floor_failure_exits_1(
    aire_env: Path, fake_server: str, prefect_api: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    suite = tmp_path / "strict"
    suite.mkdir()
    (suite / "samples.jsonl").write_bytes((REPO / "datasets/arith/samples.jsonl").read_bytes())
    spec = (REPO / "datasets/arith/suite.yaml").read_text()
    (suite / "suite.yaml").write_text(spec.replace("- exact_match/mean >= 0.9", "- latency/ttft_ms/p50 <= 1"))
    code = main(
        ["run", "offline", "--suite", str(suite), "--base-url", fake_server, "--model", "fake", "--limit", "20"]
    )
    out = capsys.readouterr().out
    assert code == 1 and "FAIL  latency/ttft_ms/p50 <= 1" in out
    (run,) = mlflow_runs(aire_env)
    assert run.info.status == "FINISHED" and run.data.tags["aire.floors"] == "fail"


def test_sigkill_mid_run_then_resume_requests_only_missing_samples(
    aire_env: Path, prefect_api: str, tmp_path: Path
) -> None:
    store = Store(get_settings().resolved_store_url)
    server, base_url = fake_process(latency_ms=100)
    env = {**os.environ, "PREFECT_API_URL": prefect_api}
    cmd = [AIRE, "run", "offline", "--suite", "arith", "--base-url", base_url, "--model", "fake", "--concurrency", "4"]
    try:
        victim = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        committed = 0
        deadline = time.monotonic() + 120
        while committed < 40 and time.monotonic() < deadline:
            time.sleep(0.2)
            runs = run_ids(store)
            committed = store.count_results(runs[0]) if runs else 0
        assert committed >= 40, "the run never got going"
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        time.sleep(0.5)  # let requests the killed client had in flight reach the server's counter

        (run_id,) = run_ids(store)
        done_before = store.completed_ids(run_id)
        requests_before = server_stats(base_url)["requests"]
        assert 40 <= len(done_before) < 200
        assert store.get_run(run_id).status != FINISHED
        assert mlflow_runs(aire_env) == []  # nothing half-written was recorded as a result

        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "Resumed an interrupted run" in proc.stdout

        stats = server_stats(base_url)
        # The resumed run asked only for the samples that had no committed row.
        assert stats["requests"] - requests_before == 200 - len(done_before)
        by_prompt = stats["by_prompt"]
        for sample_id in done_before:
            op, a, b = sample_id.split("-")
            prompt = f"Q: {a}{'+' if op == 'add' else '*'}{b}=\nA:"
            assert by_prompt[prompt] == 1, f"{sample_id} was requested again"
        rows = store.results(run_id)
        assert len(rows) == 200 and len({r.sample_id for r in rows}) == 200
        assert store.get_run(run_id).status == FINISHED
        (run,) = mlflow_runs(aire_env)
        assert run.info.status == "FINISHED" and run.data.metrics["exact_match/mean"] == 1.0
    finally:
        stop_process(server)


@SQLITE_ONLY  # about how Prefect is started; the flow's store on PostgreSQL is the other tests' job
def test_ephemeral_prefect_when_no_server_is_configured(aire_env: Path, fake_server: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PREFECT_API_URL", "PREFECT_HOME")}
    proc = subprocess.run(
        [AIRE, "run", "offline", "--suite", "arith", "--base-url", fake_server, "--model", "fake", "--limit", "10"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "MLflow run:" in proc.stdout
    # Prefect's temporary server kept its database under aire's home, not in ~/.prefect.
    assert (aire_env / "prefect" / "prefect.db").exists()
    (run,) = mlflow_runs(aire_env)
    assert run.data.metrics["exact_match/mean"] == 1.0
