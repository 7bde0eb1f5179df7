"""infra/k8s/ checked without a cluster: every manifest validates (strictly: no unknown field) against the
Kubernetes schemas kubernetes-validate ships; the vLLM Deployments limit one GPU each and probe /health;
every Secret, ConfigMap and claim a pod names is defined; the Prefect work pool's base job template,
rendered with its defaults by Prefect's own templating (as the worker does), is a valid batch/v1 Job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO

K8S = REPO / "infra" / "k8s"
VERSION = "1.33.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return out


def validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    kubernetes_validate.validate(doc, VERSION, strict=True)


@pytest.mark.parametrize(("name", "doc"), documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_every_manifest_is_a_valid_kubernetes_object(name: str, doc: dict[str, Any]) -> None:
    validate(doc)
    assert doc["metadata"].get("namespace", "aire") == "aire" or doc["kind"] == "Namespace"


def test_a_typo_is_caught() -> None:
    import kubernetes_validate

    bad = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}, "spec": {"portz": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(bad)


def pods() -> list[tuple[str, dict[str, Any]]]:
    return [
        (doc["metadata"]["name"], doc["spec"]["template"]["spec"])
        for _, doc in documents()
        if doc["kind"] in ("Deployment", "StatefulSet")
    ]


def test_pods_name_only_what_exists_and_vllm_gets_a_gpu_and_a_probe() -> None:
    defined = {(doc["kind"], doc["metadata"]["name"]) for _, doc in documents()}
    claims = {name for kind, name in defined if kind == "PersistentVolumeClaim"}
    for name, spec in pods():
        for c in spec["containers"]:
            assert ":" in c["image"] and not c["image"].endswith(":latest"), f"{name}: unpinned image"
            assert c.get("readinessProbe"), f"{name}: no readiness probe"
            assert c["resources"]["limits"].get("memory"), f"{name}: no memory limit"
            for ref in c.get("envFrom", []):
                assert ("Secret", ref["secretRef"]["name"]) in defined, name
            for env in c.get("env", []):
                if "valueFrom" in env:
                    assert ("Secret", env["valueFrom"]["secretKeyRef"]["name"]) in defined, name
        for vol in spec.get("volumes", []):
            if "persistentVolumeClaim" in vol:
                assert vol["persistentVolumeClaim"]["claimName"] in claims, name
            if "configMap" in vol:
                assert ("ConfigMap", vol["configMap"]["name"]) in defined, name
        if name.startswith("vllm-"):
            (c,) = spec["containers"]
            assert (
                c["resources"]["limits"]["nvidia.com/gpu"] == 1 and c["readinessProbe"]["httpGet"]["path"] == "/health"
            )


def test_the_config_map_holds_a_valid_aire_yaml_and_gateway_yaml(tmp_path: Path) -> None:
    from aire.client.config import load_config
    from aire.gateway.config import load_gateway_config

    (cm,) = [doc for _, doc in documents() if doc["kind"] == "ConfigMap"]
    (tmp_path / "aire.yaml").write_text(cm["data"]["aire.yaml"])
    (tmp_path / "gateway.yaml").write_text(cm["data"]["gateway.yaml"])
    endpoints = load_config(tmp_path / "aire.yaml", tmp_path).endpoints
    assert {e.base_url for e in endpoints.values()} == {
        "http://vllm-champion:8000/v1",
        "http://vllm-challenger:8000/v1",
    }
    services = {doc["metadata"]["name"] for _, doc in documents() if doc["kind"] == "Service"}
    assert {"vllm-champion", "vllm-challenger", "gateway", "mlflow", "prefect", "postgres"} <= services
    assert load_gateway_config(tmp_path / "gateway.yaml", "aire-model").listen.port == 8080


def test_the_work_pool_template_renders_to_a_valid_job() -> None:
    from prefect.utilities.templating import apply_values

    template = json.loads((K8S / "work-pool.json").read_text())
    props = template["variables"]["properties"]
    values = {k: v["default"] for k, v in props.items() if "default" in v}
    values |= {"name": "monitor-abc", "command": "prefect flow-run execute"}
    rendered = apply_values(template["job_configuration"], values)
    job = rendered["job_manifest"]
    # The worker turns the command into args and the env mapping into a list, as prefect-kubernetes does.
    (container,) = job["spec"]["template"]["spec"]["containers"]
    container["args"] = container["args"].split()
    container["env"] = [{"name": k, "value": v} for k, v in container["env"].items()]
    validate(job)
    assert container["image"] == "aire:0.1.0" and job["metadata"]["namespace"] == "aire"
    assert {"name": "PREFECT_API_URL", "value": "http://prefect:4200/api"} in container["env"]
