"""The UIs on aire's state: MLflow (runs, metrics, per-sample tables) and Prefect (flow runs).

Both read the same ``.aire/`` home the CLI writes to, so what ``aire run`` recorded is what they show.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aire.core.settings import Settings
from aire.ops import processes
from aire.ops.processes import ProcessInfo

MLFLOW, PREFECT = "ui-mlflow", "ui-prefect"


def _bin(name: str) -> str:
    # The console scripts installed next to this interpreter, whatever PATH says.
    return str(Path(sys.executable).parent / name)


def _group(settings: Settings) -> processes.Group[ProcessInfo]:
    # No prefix: the names themselves ("ui-mlflow", "ui-prefect") are the pid files' names.
    return processes.Group(settings.run_dir, "", ProcessInfo, lock_name="ui")


def _start(
    settings: Settings, name: str, cmd: list[str], env: dict[str, str], port: int, health_path: str, timeout_s: float
) -> ProcessInfo:
    """Start ``cmd`` under ``name`` and wait until it is healthy; a running one is reused, a dead one cleared."""
    group = _group(settings)
    url = f"http://127.0.0.1:{port}"
    with group.lock():
        old = group.records([name]).get(name)
        if old is not None and processes.owned(old) is not None:
            return old
        if old is not None:
            group.discard([old])  # its leader is gone: stop what it left behind
        info = group.start(name, cmd, env=env, url=url)
        try:
            processes.wait_healthy(info, f"{url}{health_path}", timeout_s)
        except BaseException:
            group.discard([info])
            raise
    return info


def start_mlflow_ui(settings: Settings, port: int = 5000) -> ProcessInfo:
    settings.artifact_root.mkdir(parents=True, exist_ok=True)
    cmd = [
        _bin("mlflow"), "server",
        "--backend-store-uri", settings.resolved_tracking_uri,
        "--default-artifact-root", settings.artifact_root.as_uri(),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    # The job runner adds 7 worker processes and 20 s of start-up; the UI does not need it.
    env = processes.child_env({"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    return _start(settings, MLFLOW, cmd, env, port, "/health", timeout_s=120)


def start_prefect_server(settings: Settings, port: int = 4200) -> ProcessInfo:
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    cmd = [_bin("prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    env = processes.child_env({"PREFECT_HOME": str(settings.prefect_home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    return _start(settings, PREFECT, cmd, env, port, "/api/health", timeout_s=180)


def prefect_api_url(info: ProcessInfo) -> str:
    return f"{info.url}/api"


def stop_uis(settings: Settings, only: str | None = None) -> list[str]:
    return _group(settings).stop([only] if only else [MLFLOW, PREFECT])


def ui_status(settings: Settings) -> list[ProcessInfo]:
    records = _group(settings).records([MLFLOW, PREFECT]).values()
    return [info for info in records if processes.owned(info) is not None]
