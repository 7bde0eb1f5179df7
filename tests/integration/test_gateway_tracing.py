"""The gateway's OpenTelemetry spans received by a real OTLP receiver users run: an MLflow tracking
server (its ``/v1/traces``), read back through MLflow's API: one trace per request, OpenInference
attributes (span kind, model, token counts, input/output), aire's route and version, and the prompt
as redacted as the traffic log keeps it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aire.client.config import AireConfig
from aire.gateway.app import Gateway
from aire.gateway.config import GatewayConfig, RouteConfig
from aire.ops.processes import free_port
from aire.testing.fake_openai import FakeOpenAI
from tests.conftest import stop_process, wait_http
from tests.unit.test_gateway import MODEL, move, post, registered, running, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    cmd = [
        str(Path(sys.executable).parent / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{home}/mlflow.db",
        "--default-artifact-root", (home / "artifacts").as_uri(), "--host", "127.0.0.1", "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", 120, proc)
        yield url
    finally:
        stop_process(proc)


async def test_each_request_is_a_span_in_mlflow_with_openinference_attributes(
    tmp_path: Path, mlflow_server: str
) -> None:
    from mlflow import MlflowClient

    receiver = MlflowClient(tracking_uri=mlflow_server)
    experiment = receiver.create_experiment("gateway-spans")
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, token_delay_s=0.002) as v1:
        version = registered(settings, "v1", v1.base_url)
        move(settings, "production", version)
        config = GatewayConfig(
            routes={MODEL: RouteConfig()},
            otlp={"endpoint": f"{mlflow_server}/v1/traces", "headers": {"x-mlflow-experiment-id": experiment}},
        )
        gateway = Gateway(settings, config, AireConfig())
        async with running(gateway) as url:
            for i in range(5):
                body = {"model": MODEL, "prompt": f"from bo{i}@example.org Q: {i}+3=\nA:", "stream": i % 2 == 0}
                assert (await post(url, {**body, "max_tokens": 4}))[0] == 200
        # Leaving `running` stopped the gateway: its log written, its spans flushed to the receiver.
    assert gateway.traffic.tracer is not None and gateway.traffic.tracer.exported == 5
    traces = receiver.search_traces(locations=[experiment], max_results=50)
    assert len(traces) == 5
    for trace in traces:
        (span,) = trace.data.spans
        attrs = span.attributes
        assert attrs["openinference.span.kind"] == "LLM" and attrs["llm.model_name"] == "fake"
        assert attrs["aire.version"] == version and attrs["aire.route"] == MODEL
        assert attrs["llm.token_count.completion"] == 2 and attrs["llm.token_count.total"] > 2
        assert "[REDACTED:email]" in attrs["input.value"] and "@example.org" not in attrs["input.value"]
        assert attrs["output.value"].strip().isdigit()
        assert span.end_time_ns > span.start_time_ns
