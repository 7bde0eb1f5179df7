"""docker-compose.yml checked without a Docker engine (CI has none): it validates against the Compose
Specification's JSON schema (as vendored by check-jsonschema), and every service's image is pinned,
every bind mount and config file it names exists, every named volume is declared, every dependency is
a service, GPU services reserve a GPU and have a health check, ports bind to loopback, and every AIRE_
variable it sets is a real setting. ``.env.example`` names every setting exactly once. Where Docker's
compose plugin is present, ``docker compose config`` must accept the file too."""

from __future__ import annotations

import importlib.resources
import json
import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml

from aire.core.settings import Settings
from tests.conftest import REPO

COMPOSE = REPO / "docker-compose.yml"
SETTINGS = {f"AIRE_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # anchors and << merge keys resolved, as compose does


def test_the_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    import jsonschema

    schema_file = importlib.resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors[:5])
    # The schema catches a typo'd key (it forbids unknown ones): a broken copy must fail.
    broken = json.loads(json.dumps(compose))
    broken["services"]["mlflow"]["portz"] = ["5000:5000"]
    assert any("portz" in e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(broken))


def test_every_service_is_pinned_mounted_wired_and_bound_to_loopback(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        if "image" in svc:
            assert re.fullmatch(r"[\w./-]+:v?\d[\w.-]*", svc["image"]), f"{name}: image not pinned to a version"
        else:
            assert (REPO / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file(), name
        for mount in svc.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in declared, f"{name}: named volume {source} is not declared"
        for dep in svc.get("depends_on", []):
            assert dep in services, f"{name}: depends on unknown service {dep}"
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is not bound to loopback"
        for key in svc.get("environment", {}):
            if key.startswith("AIRE_") and key != "AIRE_REPO_DIR":  # the worker's checkout, not a setting
                assert key in SETTINGS, f"{name}: {key} is not an aire setting"
        command = " ".join(map(str, svc.get("command", [])))
        for path in re.findall(r"/app/(infra/[\w./-]+)", command):
            assert (REPO / path).is_file(), f"{name}: {path} does not exist"
        if name.startswith("vllm-"):
            devices = svc["deploy"]["resources"]["reservations"]["devices"]
            assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}], name
            assert "/health" in " ".join(svc["healthcheck"]["test"]), name
            model = svc["command"][svc["command"].index("--model") + 1]
            assert model.startswith("/models/"), name
    assert services["gateway"]["healthcheck"]["test"], "the gateway has a health check"
    assert {"prefect-data", "mlflow-data", "aire-state"} <= declared


def test_env_example_names_every_setting_once() -> None:
    text = (REPO / ".env.example").read_text()
    named = re.findall(r"^#? ?(AIRE_[A-Z0-9_]+)=", text, re.M)
    assert sorted(named) == sorted(SETTINGS), set(named) ^ SETTINGS
    for line in text.splitlines():  # each with its default, as the settings object has it
        if m := re.match(r"^# (AIRE_[A-Z0-9_]+)=(.*)$", line):
            field = Settings.model_fields[m[1].removeprefix("AIRE_").lower()]
            default = "" if field.default is None else str(field.default)
            assert m[2].lower() == default.lower(), line


def has_compose() -> bool:
    """Docker's compose plugin (v2) is here: a docker CLI alone, as on this box, has none."""
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0


@pytest.mark.skipif(not has_compose(), reason="no Docker compose plugin here (CI has none)")
def test_docker_compose_config_accepts_the_file() -> None:
    done = subprocess.run(["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"], capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
