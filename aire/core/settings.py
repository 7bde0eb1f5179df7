"""The one settings object of aire. Every field can be set with an ``AIRE_`` environment variable.

Nothing reads the environment at import time: call ``get_settings()`` where a value is needed.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Telemetry of every component is off unless the user turned it on in their environment.
# Hub access is off too: aire never downloads weights or datasets at run time.
QUIET_ENV: dict[str, str] = {
    "DO_NOT_TRACK": "true",  # mlflow only honours the string "true"
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "VLLM_NO_USAGE_STATS": "1",
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "GIT_PYTHON_REFRESH": "quiet",
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AIRE_", extra="ignore")

    home: Path = Field(Path(".aire"), description="Folder for all local state.")
    config: Path = Field(Path("aire.yaml"), description="Endpoints and local serving config.")
    datasets_dir: Path = Field(Path("datasets"), description="Where suites are looked up by name.")
    store_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite in home.")
    mlflow_tracking_uri: str | None = Field(None, description="Default: SQLite in home.")
    mlflow_experiment: str = "aire"
    registered_model: str = Field("aire-model", description="MLflow registered model the gate registers versions in.")
    actuator: str = Field("dry-run", description="Rollback actuator: dry-run, webhook:URL or shell:COMMAND.")
    pushgateway: str | None = Field(None, description="Prometheus pushgateway the monitor pushes SLIs to.")
    gate_policy: Path = Field(Path("gates/default.yaml"), description="Default policy of `aire gate`.")
    gateway_config: Path = Field(Path("gateway.yaml"), description="`aire gateway`'s routes, log and mirror.")
    gateway_uvloop: bool = Field(True, description="Run the gateway on uvloop (false: asyncio's own loop).")
    concurrency: int = Field(16, ge=1, le=1024)
    request_timeout_s: float = Field(60.0, gt=0)
    max_attempts: int = Field(4, ge=1, description="Attempts per request, first one included.")
    shard_size: int = Field(256, ge=1, description="Samples per Prefect task.")
    cpu_cores: str | None = Field(
        None,
        description="CPU cores the request phase runs on, e.g. '1' or '2-3': on a CPU host, the cores a local "
        "vLLM server is not bound to (its serve.cpu_cores).",
        pattern=r"^\d+(-\d+)?(,\d+(-\d+)?)*$",
    )
    # A 10-point regression against the gate's 0.03 margin is ~2 standard errors at 100 inputs: rolled
    # back within 2 canaries only about a third of the time; at 300, >= 90% of the time
    # (tests/unit/test_canary_escalation.py). A smaller suite caps it.
    canary_size: int = Field(300, ge=1, description="Inputs per scheduled canary (rotating through the suite).")
    trace_samples: int | None = Field(
        None, ge=0, description="Samples of a run logged as MLflow traces (unset: all; 0: none)."
    )
    models: Path | None = Field(None, description="Built local models; default <home>/models.")
    vllm_venv: Path | None = Field(None, description="vLLM's own virtual environment; default <home>/venvs/vllm.")

    def resolved_home(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{self.resolved_home() / 'aire.db'}"

    @property
    def resolved_tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.resolved_home() / 'mlflow.db'}"

    @property
    def artifact_root(self) -> Path:
        return self.resolved_home() / "mlartifacts"

    @property
    def models_dir(self) -> Path:
        return (self.models or self.resolved_home() / "models").expanduser().resolve()

    @property
    def vllm_venv_dir(self) -> Path:
        return (self.vllm_venv or self.resolved_home() / "venvs" / "vllm").expanduser().resolve()

    @property
    def run_dir(self) -> Path:
        """Pid files and logs of processes aire started."""
        return self.resolved_home() / "run"

    @property
    def prefect_home(self) -> Path:
        return self.resolved_home() / "prefect"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def quiet_environment(settings: Settings | None = None) -> None:
    """Turn telemetry off and keep Prefect's state under aire's home.

    Must run before prefect, mlflow or datasets are imported: they read these at import.
    Values the user already set win.
    """
    settings = settings or get_settings()
    settings.prefect_home.mkdir(parents=True, exist_ok=True)
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_HOME", str(settings.prefect_home))
    # The temporary Prefect server needs 15-22 s on a fresh database; its default limit is 20 s.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
