"""aire.yaml: endpoints, local serving, and errors that name the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from aire.client.config import load_config
from aire.core.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_repo_config_loads_with_default_model_paths(tmp_path: Path) -> None:
    config = load_config(REPO / "aire.yaml", tmp_path / "models")
    champion = config.endpoint("champion")
    assert champion.base_url == "http://127.0.0.1:8101/v1"
    assert champion.serve is not None and champion.serve.model_path == tmp_path / "models" / "champion"
    assert {"champion", "challenger-worse", "challenger-same"} <= set(config.endpoints)


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert load_config(tmp_path / "nope.yaml", tmp_path).endpoints == {}


def test_unknown_endpoint_suggests() -> None:
    config = load_config(REPO / "aire.yaml", Path("/tmp"))
    with pytest.raises(ConfigError, match="did you mean: champion"):
        config.endpoint("champio")


def test_bad_url_names_field(tmp_path: Path) -> None:
    path = tmp_path / "aire.yaml"
    path.write_text("endpoints:\n  a:\n    base_url: ftp://x\n    model: m\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, tmp_path)
    assert "aire.yaml" in str(info.value) and "endpoints.a.base_url" in str(info.value)


def test_unknown_endpoint_key(tmp_path: Path) -> None:
    path = tmp_path / "aire.yaml"
    path.write_text("endpoints:\n  a:\n    base_url: http://x/v1\n    modle: m\n")
    with pytest.raises(ConfigError, match=r"endpoints\.a"):
        load_config(path, tmp_path)


def test_malformed_yaml_line(tmp_path: Path) -> None:
    path = tmp_path / "aire.yaml"
    path.write_text("endpoints:\n  a: [\n")
    with pytest.raises(ConfigError, match=r"aire.yaml:\d+: malformed YAML"):
        load_config(path, tmp_path)


def test_api_key_read_from_env_and_never_in_identity(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "aire.yaml"
    path.write_text("endpoints:\n  a:\n    base_url: http://x/v1\n    model: m\n    api_key_env: MY_KEY\n")
    monkeypatch.setenv("MY_KEY", "sk-secret-123")
    ep = load_config(path, tmp_path).endpoint("a")
    assert ep.api_key() == "sk-secret-123"
    assert "sk-secret-123" not in str(ep.identity())


def test_compose_endpoints_file_is_valid(tmp_path: Path) -> None:
    config = load_config(REPO / "infra" / "compose-aire.yaml", tmp_path)
    assert config.endpoint("champion").base_url == "http://vllm-champion:8000/v1"
