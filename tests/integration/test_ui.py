"""`aire ui` starts the MLflow UI and the Prefect server on aire's state and stops exactly them."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import psutil
import pytest

from aire.cli.app import main
from aire.core.settings import get_settings
from tests.conftest import free_port

pytestmark = pytest.mark.integration


def test_ui_start_status_stop(aire_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mlflow_port, prefect_port = free_port(), free_port()
    argv = ["ui", "--mlflow-port", str(mlflow_port), "--prefect-port", str(prefect_port)]
    try:
        assert main(argv) == 0
        out = capsys.readouterr().out
        assert f"http://127.0.0.1:{mlflow_port}" in out and "aire ui --stop" in out
        assert f"PREFECT_API_URL=http://127.0.0.1:{prefect_port}/api" in out

        # Both serve aire's own state: the MLflow UI answers for the 'aire' tracking store.
        body = json.dumps({"max_results": 10}).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{mlflow_port}/api/2.0/mlflow/experiments/search",
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 200
        assert (aire_env / "mlflow.db").exists() and (aire_env / "prefect").is_dir()
        pids = [json.loads(p.read_text())["pid"] for p in (get_settings().run_dir).glob("ui-*.json")]
        assert len(pids) == 2
        family = [psutil.Process(pid) for pid in pids]
        family += [c for p in family for c in p.children(recursive=True)]

        # A second start reuses the running processes instead of starting more.
        assert main(argv) == 0
        assert sorted(json.loads(p.read_text())["pid"] for p in get_settings().run_dir.glob("ui-*.json")) == sorted(
            pids
        )
    finally:
        assert main(["ui", "--stop"]) == 0
    assert "stopped: ui-mlflow, ui-prefect" in capsys.readouterr().out
    _, alive = psutil.wait_procs(family, timeout=10)
    assert alive == []
    assert main(["ui", "--stop"]) == 0
    assert "no aire UI was running" in capsys.readouterr().out
