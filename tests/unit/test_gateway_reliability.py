"""The gateway under upstream faults, a SIGTERM and a restart (loopback only, bounded in count and time).

- Faults (5xx before the first byte, 500, resets and stalls mid-stream, malformed and error chunks,
  hangs): every client request gets a response (a whole stream, a stream ending in an error event, or
  an OpenAI-style error), none is lost, none reaches the upstream more often than its attempts allow,
  and every one is in the traffic log.
- SIGTERM: streams in flight when the gateway is told to stop finish, then it exits 0 with every
  request logged.
- Restart: a gateway started after an alias moved serves the new production from its first request.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from aire.client.config import AireConfig
from aire.gateway.app import Gateway
from aire.gateway.config import GatewayConfig, RouteConfig
from aire.ops.processes import free_port
from aire.store.gateway_log import GatewayLog
from aire.store.store import Store
from aire.testing.fake_openai import FakeOpenAI, Fault, RequestInfo
from tests.conftest import wait_http
from tests.unit.test_gateway import MODEL, logged, move, registered, running, settings_for

FAULTS = [
    Fault("status", status=503),  # retried: the client never sees it
    Fault("status", status=500),  # passed on: an upstream error the gateway may not repeat
    Fault("disconnect", after_tokens=1),
    Fault("malformed", after_tokens=1),
    Fault("error_chunk", status=500),
    Fault("stall", after_tokens=1, hang_s=30),  # cut by the upstream timeout
    Fault("hang", hang_s=30),
]


async def test_every_request_under_injected_faults_gets_an_answer_or_an_openai_error(tmp_path: Path) -> None:
    rng = random.Random(7)
    planned = {i: rng.choice(FAULTS) if rng.random() < 0.5 else None for i in range(120)}

    sent: dict[int, int] = {}  # request number -> times it reached the upstream

    def plan(info: RequestInfo) -> Fault | None:
        # The first attempt of a prompt draws its fault; a retry (prompt_index 1) goes through.
        n = int(info.prompt.split("#")[1].split()[0])
        sent[n] = sent.get(n, 0) + 1
        return planned.get(n) if info.prompt_index == 0 else None

    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, token_delay_s=0.002, faults=plan) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        config = GatewayConfig(routes={MODEL: RouteConfig()}, upstream_timeout_s=1.5, breaker={"threshold": 1000})
        gateway = Gateway(settings, config, AireConfig())
        async with running(gateway) as url, aiohttp.ClientSession() as session:

            async def one(i: int) -> tuple[int, str]:
                body = {"model": MODEL, "prompt": f"#{i} Q: {i % 10}+1=\nA:", "max_tokens": 4, "stream": i % 2 == 0}
                async with session.post(url + "/completions", json=body) as resp:
                    raw = await resp.read()
                    return resp.status, raw.decode()

            results = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(120))), 60)
            rows = await logged(gateway, 120)
    assert len(results) == 120
    outcomes: dict[str, int] = {}
    for status, text in results:
        if status == 200 and text.startswith("data:"):
            ok = text.rstrip().endswith("data: [DONE]")
            errored = '"error"' in text
            assert ok or errored, text[-200:]  # a whole stream, or one that ends with an error event
            kind = "stream" if ok and not errored else "stream+error"
        elif status == 200:
            kind = "body" if json.loads(text)["choices"] else "?"
        else:
            error = json.loads(text)["error"]  # an OpenAI-style error, whatever went wrong
            assert error["message"] and error["type"], text
            kind = f"error {status}"
        outcomes[kind] = outcomes.get(kind, 0) + 1
    print(f"\n120 requests, half with an injected fault: {outcomes}")
    assert len({r.request_id for r in rows}) == 120  # every request logged, once
    # Only a 503 (or a refused connection) before the first byte is retried, once (upstream_attempts 2).
    retried = sum(1 for f in planned.values() if f is not None and f.kind == "status" and f.status == 503)
    assert v1.requests == 120 + retried and set(sent) == set(range(120))
    assert all(sent[n] == (2 if f is not None and f.kind == "status" and f.status == 503 else 1)
               for n, f in planned.items())  # fmt: skip
    assert outcomes.get("error 500", 0) >= 1 and outcomes.get("error 504", 0) >= 1


async def test_sigterm_lets_streams_in_flight_finish_and_writes_the_log(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, token_delay_s=0.4) as v1:  # " 11" streams over ~1.2 s
        move(settings, "production", registered(settings, "v1", v1.base_url))
        proc, url = start_gateway(settings, tmp_path)
        try:
            async with aiohttp.ClientSession() as session:

                async def stream(i: int) -> str:
                    body = {"model": MODEL, "prompt": f"Q: 5+{i % 5 + 6}=\nA:", "max_tokens": 4, "stream": True}
                    async with session.post(url + "/completions", json=body) as resp:
                        return (await resp.read()).decode()

                tasks = [asyncio.create_task(stream(i)) for i in range(10)]
                await asyncio.sleep(0.6)  # every stream has started and none has finished
                os.kill(proc.pid, signal.SIGTERM)
                texts = await asyncio.wait_for(asyncio.gather(*tasks), 30)
            assert await asyncio.to_thread(proc.wait, 30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert all(t.rstrip().endswith("data: [DONE]") for t in texts)
    assert GatewayLog(Store(settings.resolved_store_url)).count("served") == 10


async def test_a_restarted_gateway_takes_its_routes_from_the_registry(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1, FakeOpenAI(latency_s=0) as v2:
        one, two = registered(settings, "v1", v1.base_url), registered(settings, "v2", v2.base_url)
        move(settings, "production", one)
        async with running(Gateway(settings, GatewayConfig(routes={MODEL: RouteConfig()}), AireConfig())) as url:
            assert (await first_version(url)) == f"{MODEL}/{one}"
        move(settings, "production", two)  # while no gateway runs
        async with running(Gateway(settings, GatewayConfig(routes={MODEL: RouteConfig()}), AireConfig())) as url:
            assert (await first_version(url)) == f"{MODEL}/{two}"


async def first_version(url: str) -> str:
    async with aiohttp.ClientSession() as session:
        body: dict[str, Any] = {"model": MODEL, "prompt": "Q: 1+1=\nA:", "max_tokens": 3}
        async with session.post(url + "/completions", json=body) as resp:
            assert resp.status == 200
            return resp.headers["x-aire-version"]


def start_gateway(settings: Any, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``aire gateway`` as its own process (the signal goes to it, not to the test)."""
    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump({"listen": {"port": port}, "routes": {MODEL: {}}}))
    env = {**os.environ, "AIRE_HOME": str(settings.home), "AIRE_CONFIG": str(settings.config)}
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "aire"), "gateway", "--config", str(config)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/v1"
    wait_http(f"{url}/models", 60, proc)
    return proc, url
