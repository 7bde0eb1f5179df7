"""`aire gateway` in front of real vLLM replicas, as a user runs it: a background process routed by the
registry. An offline run through the gateway scores the production version; moving ``production``
(a bad promotion, then the rollback) moves the traffic with no restart; the mirror copies every
request to ``challenger``, and `aire gate --mirrored` FAILs the worse challenger from those pairs
alone; `aire gateway --stop` drains, and every request is in the store's traffic log."""

from __future__ import annotations

import json
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from aire.cli.app import main
from aire.client.config import EndpointConfig
from aire.core.settings import get_settings
from aire.release.registry import promote, register
from aire.store.gateway_log import GatewayLog
from aire.store.store import Store
from tests.conftest import MODELS_DIR, free_port, mlflow_runs, write_config

pytestmark = pytest.mark.integration
MODEL = "aire-model"


def version_served(url: str) -> str:
    req = urllib.request.Request(
        f"{url}/completions",
        data=json.dumps({"model": MODEL, "prompt": "Q: 2+2=\nA:", "max_tokens": 3, "temperature": 0}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.headers["x-aire-version"]


def wait_for_version(url: str, label: str, timeout_s: float = 20.0) -> float:
    """Seconds until the gateway serves ``label``."""
    t0 = time.monotonic()
    while (served := version_served(url)) != label:
        assert time.monotonic() - t0 < timeout_s, f"still serving {served}, not {label}"
        time.sleep(0.1)
    return time.monotonic() - t0


def accuracy_of_newest_run(home: Path) -> float:
    (run,) = sorted(mlflow_runs(home), key=lambda r: r.info.start_time)[-1:]
    return float(run.data.metrics["exact_match/mean"])


def test_the_gateway_routes_by_alias_mirrors_and_a_rollback_moves_real_traffic(
    aire_env: Path, tmp_path: Path, vllm_endpoints: dict[str, dict[str, object]], prefect_api: str
) -> None:
    write_config(tmp_path / "aire.yaml", vllm_endpoints)
    settings = get_settings()
    versions = {}
    for name in ("champion", "challenger-worse"):
        body = vllm_endpoints[name]
        ep = EndpointConfig(name=name, base_url=str(body["base_url"]), model=name, version="test")
        manifest = json.loads((MODELS_DIR / name / "aire-model.json").read_text())
        ep = ep.model_copy(update={"weights_digest": manifest["weights_sha256"]})
        versions[name] = register(settings, MODEL, ep)
    store = Store(settings.resolved_store_url)
    promote(settings, store, model=MODEL, alias="production", version=versions["champion"], verdict="PASS")
    promote(settings, store, model=MODEL, alias="challenger", version=versions["challenger-worse"], verdict="PASS")

    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"listen": {"port": port}, "refresh_s": 0.5, "routes": {MODEL: {"mirror": 1.0}}}))
    url = f"http://127.0.0.1:{port}/v1"
    since = datetime.now(UTC)
    assert main(["gateway", "--background", "--config", str(config)]) == 0
    try:
        assert version_served(url) == f"{MODEL}/{versions['champion']}"
        # A suite run through the gateway, as any OpenAI client would call it.
        through = ["run", "offline", "--suite", "arith", "--base-url", url, "--model", MODEL, "--fresh"]
        assert main(through) == 0
        assert accuracy_of_newest_run(aire_env) == 1.0

        # A bad promotion reaches users: the next run through the same URL scores the worse model.
        promote(settings, store, model=MODEL, alias="production", version=versions["challenger-worse"],
                verdict=None, force=True, reason="test: a bad release")  # fmt: skip
        switch_s = wait_for_version(url, f"{MODEL}/{versions['challenger-worse']}")
        assert main(through) == 1
        degraded = accuracy_of_newest_run(aire_env)
        assert 0.75 <= degraded <= 0.85

        # The rollback moves real traffic back.
        promote(settings, store, model=MODEL, alias="production", version=versions["champion"],
                verdict=None, force=True, reason="test: rollback")  # fmt: skip
        wait_for_version(url, f"{MODEL}/{versions['champion']}")
        assert main(through) == 0
        print(f"\nalias move -> gateway route in {switch_s:.2f} s; accuracy 1.0 -> {degraded:.3f} -> 1.0")
    finally:
        assert main(["gateway", "--stop"]) == 0

    # Every request the gateway answered is in the traffic log, written before it exited.
    sink = GatewayLog(store)
    served = list(sink.window(since))
    assert len(served) >= 600 and all(r.status == 200 for r in served)
    assert {r.version for r in served} == {versions["champion"], versions["challenger-worse"]}
    assert all(r.ttft_ms is not None and r.completion_tokens for r in served if r.stream)
    mirrored = sink.count("mirrored")
    assert mirrored >= 200

    # The mirrored pairs alone (champion served, challenger-worse mirrored): the traffic gate FAILs it.
    code = main(["gate", "--mirrored", "--since", since.isoformat(), "--policy", "gates/traffic.yaml", "--fresh"])
    assert code == 1
