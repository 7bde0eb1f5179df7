"""The gateway's /metrics scraped by a real Prometheus with the shipped scrape job, and every Grafana
query of the dashboard's Gateway row answered with data from it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from aire.client.config import AireConfig
from aire.gateway.app import Gateway
from aire.gateway.config import GatewayConfig, RouteConfig
from aire.testing.fake_openai import FakeOpenAI
from tests.conftest import stop_process
from tests.integration.test_prometheus import concrete, dashboard_queries, metric_names, shipped_job, start_prometheus
from tests.unit.test_gateway import MODEL, move, post, registered, running, settings_for
from tests.unit.test_promtool import ensure_prometheus

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def prometheus_bin() -> str:
    return ensure_prometheus()[0]


async def test_every_gateway_panel_of_the_dashboard_has_data(tmp_path: Path, prometheus_bin: str) -> None:
    queries = [q for q in dashboard_queries() if any(n.startswith("aire_gateway_") for n in metric_names(q))]
    assert len(queries) >= 7
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, token_delay_s=0.001) as v1:
        version = registered(settings, "v1", v1.base_url)
        move(settings, "production", version)
        config = GatewayConfig(routes={MODEL: RouteConfig()}, cache={"enabled": True})
        async with running(Gateway(settings, config, AireConfig())) as url:
            target = url.removeprefix("http://").removesuffix("/v1")
            prom = await asyncio.to_thread(
                start_prometheus, prometheus_bin, tmp_path, [shipped_job("aire-gateway", [target])]
            )
            try:
                for i in range(60):  # traffic while Prometheus scrapes: rates need two samples apart
                    body = {"model": MODEL, "prompt": f"Q: {i % 7}+1=\nA:", "stream": i % 2 == 0, "temperature": 0}
                    assert (await post(url, body))[0] == 200
                    await asyncio.sleep(0.05)
                await asyncio.to_thread(prom.wait_scraped, "aire-gateway", 1)
                await asyncio.sleep(2)
                empty = [q for q in queries if not await asyncio.to_thread(prom.query, concrete(q))]
                served = await asyncio.to_thread(prom.query, "aire_gateway_requests_total")
            finally:
                stop_process(prom.proc)
    assert not empty, f"gateway panels without data: {empty}"
    assert {s["metric"]["version"] for s in served} == {version}
