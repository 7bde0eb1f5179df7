"""Settings: one object, AIRE_ env prefix, all state under one home, telemetry off by default."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aire.core.settings import QUIET_ENV, Settings, quiet_environment


def test_everything_lives_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRE_HOME", str(tmp_path / "state"))
    s = Settings()
    home = (tmp_path / "state").resolve()
    assert s.resolved_store_url == f"sqlite:///{home / 'aire.db'}"
    assert s.resolved_tracking_uri == f"sqlite:///{home / 'mlflow.db'}"
    for path in (s.artifact_root, s.models_dir, s.vllm_venv_dir, s.run_dir, s.prefect_home):
        assert path.is_relative_to(home)


def test_env_overrides_and_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRE_CONCURRENCY", "7")
    monkeypatch.setenv("AIRE_STORE_URL", "postgresql+psycopg://u@127.0.0.1/aire")
    s = Settings()
    assert s.concurrency == 7 and s.resolved_store_url.startswith("postgresql+psycopg://")
    monkeypatch.setenv("AIRE_CONCURRENCY", "0")
    with pytest.raises(ValueError):
        Settings()


def test_quiet_environment_turns_telemetry_off_but_respects_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in [*QUIET_ENV, "PREFECT_HOME"]:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "0")  # the user's explicit choice wins
    quiet_environment(Settings(home=tmp_path))
    assert os.environ["DO_NOT_TRACK"] == "true"
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false"
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["VLLM_NO_USAGE_STATS"] == "0"
    assert os.environ["PREFECT_HOME"] == str(tmp_path.resolve() / "prefect")
    assert (tmp_path / "prefect").is_dir()
