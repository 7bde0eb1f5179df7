"""The UIs on aire's state: MLflow (runs, metrics, per-sample tables) and Prefect (flow runs).

Both read the same ``.aire/`` home the CLI writes to, so what ``aire run`` recorded is what they show.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aire import processes
from aire.processes import ProcessInfo
from aire.settings import Settings

MLFLOW, PREFECT = "ui-mlflow", "ui-prefect"


def _bin(name: str) -> str:
    # The console scripts installed next to this interpreter, whatever PATH says.
    return str(Path(sys.executable).parent / name)


def start_mlflow_ui(settings: Settings, port: int = 5000) -> ProcessInfo:
    existing = processes.read(settings.run_dir, MLFLOW)
    if existing is not None:
        return existing
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    cmd = [
        _bin("mlflow"), "server",
        "--backend-store-uri", settings.resolved_tracking_uri,
        "--default-artifact-root", settings.artifact_root.as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The job runner adds 7 worker processes and 20 s of start-up; the UI does not need it.
    env = processes.child_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    info = processes.start(settings.run_dir, MLFLOW, cmd, env=env, url=f"http://127.0.0.1:{port}")
    processes.wait_healthy(info, f"http://127.0.0.1:{port}/health", timeout_s=120)
    return info


def start_prefect_server(settings: Settings, port: int = 4200) -> ProcessInfo:
    existing = processes.read(settings.run_dir, PREFECT)
    if existing is not None:
        return existing
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    cmd = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = processes.child_env(
        {"PREFECT_HOME": str(settings.prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    )
    info = processes.start(settings.run_dir, PREFECT, cmd, env=env, url=f"http://127.0.0.1:{port}")
    processes.wait_healthy(info, f"http://127.0.0.1:{port}/api/health", timeout_s=180)
    return info


def prefect_api_url(info: ProcessInfo) -> str:
    return f"{info.url}/api"


def stop_uis(settings: Settings, only: str | None = None) -> list[str]:
    names = (only,) if only else (MLFLOW, PREFECT)
    return [name for name in names if processes.stop(settings.run_dir, name)]


def ui_status(settings: Settings) -> list[ProcessInfo]:
    return [info for name in (MLFLOW, PREFECT) if (info := processes.read(settings.run_dir, name)) is not None]
