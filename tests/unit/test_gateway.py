"""`aire gateway` against fake upstreams and a real MLflow registry (SQLite): routing by the
``production`` alias and its moves, streams passed through, OpenAI-style errors, retries before the
first byte, the traffic log (redacted) and the shadow mirror. The real-vLLM path is in
tests/integration/test_gateway_vllm.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from aire.client.config import AireConfig, EndpointConfig
from aire.core.errors import ConfigError
from aire.core.settings import Settings
from aire.gateway.app import Gateway
from aire.gateway.config import GatewayConfig, RouteConfig, load_gateway_config
from aire.release.incidents import open_incident
from aire.release.registry import promote, register
from aire.store.gateway_log import GatewayLog
from aire.store.store import Store
from aire.testing.fake_openai import FakeOpenAI, Fault
from tests.conftest import REPO

MODEL = "aire-model"


def settings_for(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", config=tmp_path / "aire.yaml")


def registered(settings: Settings, name: str, url: str) -> str:
    ep = EndpointConfig(name=name, base_url=url, model="fake", version=name, weights_digest=f"sha256:{name}")
    return register(settings, MODEL, ep)


def move(settings: Settings, alias: str, version: str) -> None:
    store = Store(settings.resolved_store_url)
    promote(settings, store, model=MODEL, alias=alias, version=version, verdict="PASS")


@asynccontextmanager
async def running(gateway: Gateway) -> AsyncIterator[str]:
    """The gateway's app on a free loopback port; yields its /v1 base URL."""
    runner = web.AppRunner(gateway.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


def gateway_for(settings: Settings, cache: dict[str, Any] | None = None, **route: Any) -> Gateway:
    config = GatewayConfig(refresh_s=0.1, routes={MODEL: RouteConfig(**route)}, cache=cache or {})
    return Gateway(settings, config, AireConfig(), rand=iter_rand())


def iter_rand() -> Any:
    import random

    rng = random.Random(0)
    return rng.random


async def post(url: str, body: dict[str, Any] | bytes, path: str = "/completions") -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as session:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        async with session.post(url + path, data=data, headers={"Content-Type": "application/json"}) as resp:
            return resp.status, dict(resp.headers), await resp.read()


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.decode().splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


async def logged(gateway: Gateway, n: int, kind: str = "served", timeout_s: float = 10.0) -> list[Any]:
    """The traffic log's rows of ``kind`` once there are ``n`` (the writer runs in the background)."""
    sink = GatewayLog(gateway.store)
    deadline = asyncio.get_running_loop().time() + timeout_s
    while sink.count(kind) < n and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
    from datetime import UTC, datetime

    return list(sink.window(datetime(2000, 1, 1, tzinfo=UTC), kind=kind))


# ------------------------------------------------------------------------------------------- routing
async def test_requests_follow_the_production_alias_and_its_moves(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1, FakeOpenAI(latency_s=0, wrong_rate=1.0) as v2:
        one, two = registered(settings, "v1", v1.base_url), registered(settings, "v2", v2.base_url)
        move(settings, "production", one)
        gateway = gateway_for(settings)
        async with running(gateway) as url:
            status, headers, raw = await post(url, {"model": MODEL, "prompt": "Q: 3+4=\nA:", "max_tokens": 4})
            assert status == 200 and headers["x-aire-version"] == f"{MODEL}/{one}"
            assert json.loads(raw)["choices"][0]["text"].strip() == "7"
            assert v1.requests == 1 and v2.requests == 0
            assert v1.last_body["model"] == "fake"  # the upstream's served name, not the route's
            move(settings, "production", two)  # a promotion (or a rollback): no restart
            for _ in range(100):
                status, headers, raw = await post(url, {"model": MODEL, "prompt": "Q: 3+4=\nA:"})
                if headers["x-aire-version"] == f"{MODEL}/{two}":
                    break
                await asyncio.sleep(0.05)
            assert headers["x-aire-version"] == f"{MODEL}/{two}" and v2.requests >= 1
            models = json.loads((await get(url + "/models"))[1])
            assert models["data"][0]["id"] == MODEL and models["data"][0]["aire"]["production"] == f"{MODEL}/{two}"


async def get(url: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return resp.status, await resp.read()


async def test_a_version_with_an_open_incident_gets_no_traffic(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1, FakeOpenAI(latency_s=0) as v2:
        one, two = registered(settings, "v1", v1.base_url), registered(settings, "v2", v2.base_url)
        move(settings, "production", one)
        move(settings, "production", two)
        store = Store(settings.resolved_store_url)
        open_incident(store, model=MODEL, version=two, severity="page", summary="canary failed", evidence={})
        gateway = gateway_for(settings)
        async with running(gateway) as url:
            status, headers, _ = await post(url, {"model": MODEL, "prompt": "Q: 1+1=\nA:"})
        assert status == 200 and headers["x-aire-version"] == f"{MODEL}/{one}"
        assert v2.requests == 0
        assert "open incident" in (gateway.routes.routes[MODEL].note or "")


async def test_the_canary_share_goes_to_the_challenger(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1, FakeOpenAI(latency_s=0) as v2:
        one, two = registered(settings, "v1", v1.base_url), registered(settings, "v2", v2.base_url)
        move(settings, "production", one)
        move(settings, "challenger", two)
        gateway = gateway_for(settings, canary=0.25)
        async with running(gateway) as url:
            for i in range(200):
                await post(url, {"model": MODEL, "prompt": f"Q: {i % 10}+1=\nA:"})
    # Seeded draws: 200 at p = 0.25 lie in [30, 70] with probability > 0.9999.
    assert 30 <= v2.requests <= 70 and v1.requests + v2.requests == 200


# ------------------------------------------------------------------------------------------ streaming
async def test_a_stream_is_passed_through_and_the_usage_chunk_only_when_asked(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, token_delay_s=0.01) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        gateway = gateway_for(settings)
        async with running(gateway) as url:
            body = {"model": MODEL, "prompt": "Q: 6*7=\nA:", "stream": True, "max_tokens": 8}
            status, headers, raw = await post(url, body)
            assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
            chunks = events(raw)
            assert "".join(c["choices"][0]["text"] for c in chunks).strip() == "42"
            assert all(c["choices"] for c in chunks)  # the usage chunk the gateway asked for is withheld
            assert raw.rstrip().endswith(b"data: [DONE]")
            assert v1.last_body["stream_options"] == {"include_usage": True}
            asked = await post(url, {**body, "stream_options": {"include_usage": True}})
            assert any(not c["choices"] and c["usage"] for c in events(asked[2]))
            chat = {"model": MODEL, "messages": [{"role": "user", "content": "Q: 2+2=\nA:"}], "stream": True}
            status, _, raw = await post(url, chat, "/chat/completions")
            assert status == 200
            assert "".join(c["choices"][0]["delta"].get("content") or "" for c in events(raw)).strip() == "4"
            rows = await logged(gateway, 3)
    first = rows[0]
    assert first.response.strip() == "42" and first.stream and first.api == "completions"
    assert first.completion_tokens == 3 and first.prompt_tokens is not None  # from the usage chunk
    assert first.ttft_ms is not None and first.ttft_ms > 0 and first.e2e_ms >= first.ttft_ms
    assert first.params == {"max_tokens": 8} and first.version and first.status == 200
    assert rows[2].api == "chat" and json.loads(rows[2].prompt)[0]["content"] == "Q: 2+2=\nA:"


# ------------------------------------------------------------------------------------ errors, retries
BAD_REQUESTS: list[tuple[Any, int, str | None]] = [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    ({"prompt": "x"}, 400, "model"),
    ({"model": MODEL}, 400, "prompt"),
    ({"model": MODEL, "prompt": "x", "max_tokens": 0}, 400, "max_tokens"),
    ({"model": MODEL, "prompt": "x", "temperature": "hot"}, 400, "temperature"),
    ({"model": "other", "prompt": "x"}, 404, "model"),
]


async def test_bad_requests_get_openai_style_errors_naming_the_field(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        async with running(gateway_for(settings)) as url:
            for body, status, param in BAD_REQUESTS:
                got, _, raw = await post(url, body)
                error = json.loads(raw)["error"]
                assert (got, error["param"]) == (status, param), body
                assert error["message"] and error["type"]
        assert v1.requests == 0


async def test_a_bad_chat_message_names_its_index_and_field(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        async with running(gateway_for(settings)) as url:
            body = {"model": MODEL, "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]}
            status, _, raw = await post(url, body, "/chat/completions")
    assert status == 400 and json.loads(raw)["error"]["param"] == "messages[1].role"


async def test_no_production_version_is_a_503_and_a_dead_upstream_a_502(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    gateway = gateway_for(settings)
    async with running(gateway) as url:
        status, _, raw = await post(url, {"model": MODEL, "prompt": "x"})
        assert status == 503 and json.loads(raw)["error"]["code"] == "no_route"
    move(settings, "production", registered(settings, "dead", "http://127.0.0.1:9/v1"))
    gateway = gateway_for(settings)
    async with running(gateway) as url:
        status, _, raw = await post(url, {"model": MODEL, "prompt": "x"})
    assert status == 502 and json.loads(raw)["error"]["type"] == "upstream_error"
    assert "unreachable" in json.loads(raw)["error"]["message"]


async def test_a_503_before_any_byte_is_retried_and_the_client_never_sees_it(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, faults={0: Fault("status", status=503)}) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        async with running(gateway_for(settings)) as url:
            status, _, raw = await post(url, {"model": MODEL, "prompt": "Q: 1+2=\nA:"})
        assert status == 200 and json.loads(raw)["choices"][0]["text"].strip() == "3"
        assert v1.requests == 2  # the failed attempt and its one retry (upstream_attempts = 2)


# ---------------------------------------------------------------------------------- log and mirror
async def test_the_log_is_redacted_and_the_mirror_pairs_by_request_id(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0) as v1, FakeOpenAI(latency_s=0.01, wrong_rate=1.0) as v2:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        move(settings, "challenger", registered(settings, "v2", v2.base_url))
        gateway = gateway_for(settings, mirror=1.0)
        async with running(gateway) as url:
            for i in range(10):
                body = {"model": MODEL, "prompt": f"mail ann{i}@example.org Q: {i}+1=\nA:", "temperature": 0}
                status, _, _ = await post(url, body)
                assert status == 200
            served = await logged(gateway, 10)
            mirrored = await logged(gateway, 10, kind="mirrored")
    assert v2.requests == 10
    assert all("@example.org" not in r.prompt and "[REDACTED:email]" in r.prompt for r in served + mirrored)
    by_id = {r.request_id: r for r in served}
    assert {r.request_id for r in mirrored} == set(by_id)
    for m in mirrored:
        s = by_id[m.request_id]
        assert m.version != s.version and m.stream and m.ttft_ms is not None
        assert m.response != s.response  # the challenger answers wrong on purpose
    pairs = GatewayLog(gateway.store).mirrored_pairs(served[0].at)
    assert len(pairs) == 10
    metrics = gateway.metrics.render().decode()
    assert f'aire_gateway_requests_total{{route="{MODEL}",status="200",version="1"}} 10.0' in metrics
    assert "aire_gateway_mirror_sent_total 10.0" in metrics and "aire_gateway_mirror_dropped_total 0.0" in metrics
    assert 'aire_gateway_ttft_seconds_count{route="aire-model",version="1"} 10.0' in metrics


# ---------------------------------------------------------------------------------------- the config
def test_a_bad_gateway_config_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("listen: {port: 8080}\nroutes:\n  aire-model:\n    canary: 1.5\n")
    with pytest.raises(ConfigError) as info:
        load_gateway_config(path, MODEL)
    message = str(info.value)
    assert "gateway.yaml:4 " in message and "routes.aire-model.canary" in message
    path.write_text("listen: {port: 8080}\nrouts: {}\n")
    with pytest.raises(ConfigError, match="routs"):
        load_gateway_config(path, MODEL)
    assert load_gateway_config(tmp_path / "missing.yaml", MODEL).routes == {MODEL: RouteConfig()}


# ------------------------------------------------------------------------------ gate on mirrored pairs
async def mirrored_gate(settings: Settings, tmp_path: Path, since: Any) -> Any:
    from aire.run import finalise_shadow, prepare_shadow, send_in_looks, sending_pairs

    # gates/traffic.yaml without its relative latency rule: two fakes on a loaded CI box differ in
    # scheduling noise, which is not what this test is about (the real-vLLM test uses the whole policy).
    policy = yaml.safe_load((REPO / "gates" / "traffic.yaml").read_text())
    policy["rules"] = [r for r in policy["rules"] if r["kind"] != "latency_relative"]
    (tmp_path / "policy.yaml").write_text(yaml.safe_dump(policy))
    plan = await prepare_shadow(
        settings, policy=tmp_path / "policy.yaml", mirrored_since=since, out_dir=tmp_path / "out"
    )
    assert plan.pending() == []  # nothing to send: both arms' answers are the gateway's log
    async with sending_pairs(plan):
        n_requested, looks = await send_in_looks(plan.id, warmup=0)
    assert n_requested == 0
    return await finalise_shadow(plan.id, n_requested=n_requested, looks=looks)


async def mirrored_traffic(settings: Settings, v1: FakeOpenAI, v2: FakeOpenAI, n: int = 150) -> None:
    """v1 production, v2 challenger, n arith prompts through a gateway mirroring all of them, logged."""
    move(settings, "production", registered(settings, "v1", v1.base_url))
    move(settings, "challenger", registered(settings, "v2", v2.base_url))
    gateway = gateway_for(settings, mirror=1.0)
    async with running(gateway) as url:
        prompts = [f"Q: {a}{op}{b}=\nA:" for a in range(10) for b in range(10) for op in "+*"][:n]
        for chunk in range(0, len(prompts), 25):
            await asyncio.gather(
                *(post(url, {"model": MODEL, "prompt": p, "temperature": 0}) for p in prompts[chunk : chunk + 25])
            )
        await logged(gateway, n, kind="mirrored")


@pytest.mark.parametrize(("wrong_rate", "verdict"), [(0.0, "PASS"), (0.3, "FAIL")])
async def test_the_gate_judges_mirrored_pairs_without_sending_a_request(
    tmp_path: Path, wrong_rate: float, verdict: str
) -> None:
    from datetime import UTC, datetime, timedelta

    settings = settings_for(tmp_path)
    since = datetime.now(UTC) - timedelta(seconds=1)
    # 20 ms each: the latency rules compare like with like, not scheduling noise around zero.
    async with FakeOpenAI(latency_s=0.02) as v1, FakeOpenAI(latency_s=0.02, wrong_rate=wrong_rate, seed=1) as v2:
        await mirrored_traffic(settings, v1, v2)
        sent = (v1.requests, v2.requests)
        result = await mirrored_gate(settings, tmp_path, since)
        assert (v1.requests, v2.requests) == sent  # the gate sent nothing
    assert result.verdict.value == verdict, result.reasons
    assert result.n_pairs == 150 and result.n_requested == 0


async def test_the_monitor_reads_its_window_from_the_gateway_log(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from aire.monitor.traffic import check_traffic

    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0, token_delay_s=0.001) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        gateway = gateway_for(settings)
        async with running(gateway) as url:
            for i in range(30):
                stream = i % 2 == 0
                await post(url, {"model": MODEL, "prompt": f"Q: {i % 10}+2=\nA:", "stream": stream, "max_tokens": 4})
            await logged(gateway, 30)
    result = check_traffic(
        "store",
        now=datetime.now(UTC) + timedelta(seconds=1),
        window=timedelta(hours=1),
        reference=timedelta(days=1),
        embeddings=False,
        store_url=settings.resolved_store_url,
    )
    assert result is not None and result.n_current == 30 and result.n_reference == 0
    assert result.bad_fraction == 0.0 and result.error_ratio == 0.0, result.markdown
    assert result.latency_ms["ttft_ms/p50"] > 0 and result.latency_ms["e2e_ms/p99"] >= result.latency_ms["ttft_ms/p50"]


def test_the_compose_gateway_service_is_wired_to_files_that_exist_and_a_valid_config() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    gateway = compose["services"]["gateway"]
    assert gateway["profiles"] == ["gateway"] and gateway["command"][0] == "gateway"
    for volume in gateway["volumes"]:
        host = volume.split(":")[0]
        assert host == "aire-state" or (REPO / host).exists(), volume
    config_path = gateway["command"][gateway["command"].index("--config") + 1].removeprefix("/app/")
    config = load_gateway_config(REPO / config_path, MODEL)
    assert (
        config.listen.host == "0.0.0.0" and f"127.0.0.1:{config.listen.port}:{config.listen.port}" in gateway["ports"]
    )
    assert "8080" in " ".join(gateway["healthcheck"]["test"]) and set(gateway["depends_on"]) <= set(compose["services"])


# ------------------------------------------------------------------------------------------ the cache
async def test_the_exact_cache_answers_repeats_per_version_streamed_or_not(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    async with FakeOpenAI(latency_s=0.01) as v1, FakeOpenAI(latency_s=0.01, wrong_rate=1.0) as v2:
        one, two = registered(settings, "v1", v1.base_url), registered(settings, "v2", v2.base_url)
        move(settings, "production", one)
        gateway = gateway_for(settings, cache={"enabled": True})
        async with running(gateway) as url:
            body = {"model": MODEL, "prompt": "Q: 3+4=\nA:", "max_tokens": 4, "temperature": 0}
            first = await post(url, {**body, "stream": True})
            await asyncio.sleep(0.2)  # the store runs after the answer
            again = await post(url, body)  # not streamed this time: the same answer
            assert v1.requests == 1 and again[1]["x-aire-cache"] == "exact" and "x-aire-cache" not in first[1]
            assert json.loads(again[2])["choices"][0]["text"] == "".join(
                c["choices"][0]["text"] for c in events(first[2])
            )
            replay = await post(url, {**body, "stream": True, "stream_options": {"include_usage": True}})
            chunks = events(replay[2])
            assert replay[1]["x-aire-cache"] == "exact" and chunks[0]["choices"][0]["text"].strip() == "7"
            assert chunks[-1]["usage"]["completion_tokens"] == 2 and replay[2].rstrip().endswith(b"[DONE]")
            assert (await post(url, {**body, "temperature": 0.7}))[1].get("x-aire-cache") is None  # sampled
            assert v1.requests == 2
            move(settings, "production", two)  # a new version never gets the old one's answers
            for _ in range(100):
                _, headers, raw = await post(url, body)
                if headers["x-aire-version"] == f"{MODEL}/{two}":
                    break
                await asyncio.sleep(0.05)
            assert "x-aire-cache" not in headers and json.loads(raw)["choices"][0]["text"].strip() != "7"
            rows = await logged(gateway, 5)
    assert [r.cache for r in rows[:3]] == [None, "exact", "exact"]
    stats = gateway.cache.stats  # type: ignore[union-attr]
    # Two hits above, and one per request of the loop that still reached v1 before the route moved.
    assert stats.exact_hits >= 2 and stats.saved_tokens > 0
    assert f"aire_gateway_cache_exact_hits_total {stats.exact_hits:.1f}" in gateway.metrics.render().decode()


# ------------------------------------------------------------------------------------ circuit breaker
async def test_an_open_breaker_fails_over_to_the_last_good_version_and_opens_one_incident(tmp_path: Path) -> None:
    from aire.release.incidents import list_incidents

    settings = settings_for(tmp_path)
    always_500 = lambda info: Fault("status", status=500)  # noqa: E731
    async with FakeOpenAI(latency_s=0) as v1, FakeOpenAI(latency_s=0, faults=always_500) as v2:
        one, two = registered(settings, "v1", v1.base_url), registered(settings, "v2", v2.base_url)
        move(settings, "production", one)
        move(settings, "production", two)  # a bad release: every request fails
        config = GatewayConfig(refresh_s=60, routes={MODEL: RouteConfig()}, breaker={"threshold": 3, "open_s": 60})
        gateway = Gateway(settings, config, AireConfig())
        async with running(gateway) as url:
            got = [await post(url, {"model": MODEL, "prompt": f"Q: {i}+1=\nA:"}) for i in range(10)]
            metrics = gateway.metrics.render().decode()
    statuses = [status for status, _, _ in got]
    # Three failures open the breaker; from then on every request is answered by v1.
    assert statuses[:3] == [500, 500, 500] and statuses[3:] == [200] * 7
    assert {h["x-aire-version"] for _, h, _ in got[3:]} == {f"{MODEL}/{one}"}
    assert v2.requests == 3 and v1.requests == 7
    (incident,) = list_incidents(Store(settings.resolved_store_url), MODEL, include_cleared=False)
    assert incident.version == two and "circuit breaker" in incident.summary
    assert "aire_gateway_breakers_open 1.0" in metrics and "aire_gateway_incidents_opened_total 1.0" in metrics
    # The route itself left v2 (the incident), not only the breaker: a new gateway starts on v1.
    assert gateway.routes.routes[MODEL].production.label == f"{MODEL}/{one}"  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------ keys and limits
async def test_keys_are_checked_by_hash_limited_in_requests_and_tokens_and_never_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aire.cli.app import main
    from aire.core.settings import get_settings
    from aire.store.api_keys import ApiKeys

    settings = settings_for(tmp_path)
    monkeypatch.setenv("AIRE_HOME", str(settings.home))
    get_settings.cache_clear()
    assert main(["keys", "create", "team-a", "--rpm", "3"]) == 0
    key_a = capsys.readouterr().out.strip()
    keys = ApiKeys(Store(settings.resolved_store_url))
    team_b = keys.create("team-b", tokens_per_minute=60)
    (row_a, _) = keys.all()
    assert key_a.startswith(f"aire-{row_a.id}-") and key_a.split("-", 2)[2] not in row_a.digest + row_a.salt
    async with FakeOpenAI(latency_s=0) as v1:
        move(settings, "production", registered(settings, "v1", v1.base_url))
        config = GatewayConfig(refresh_s=0.1, routes={MODEL: RouteConfig()}, keys={"required": True})
        gateway = Gateway(settings, config, AireConfig())
        async with running(gateway) as url, aiohttp.ClientSession() as session:

            async def call(key: str | None, max_tokens: int = 4) -> tuple[int, dict[str, str], dict[str, Any]]:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                body = {"model": MODEL, "prompt": "Q: 1+1=\nA:", "max_tokens": max_tokens}
                async with session.post(url + "/completions", json=body, headers=headers) as resp:
                    return resp.status, dict(resp.headers), await resp.json()

            assert (await call(None))[0] == 401 and (await call("aire-nope-nope"))[0] == 401
            assert (await call(key_a[:-1] + "x"))[2]["error"]["code"] == "invalid_api_key"
            assert [(await call(key_a))[0] for _ in range(4)] == [200, 200, 200, 429]  # 3 requests a minute
            status, headers, err = await call(key_a)
            assert (
                status == 429
                and 1 <= int(headers["Retry-After"]) <= 60
                and err["error"]["type"] == "rate_limit_exceeded"
            )
            # Tokens: charged at prompt/4 + max_tokens before (3 + 40 = 43), corrected to the usage after
            # (the fake: 11 prompt + 2 output = 13 tokens). The second call fits only because the first
            # was corrected (13 + 43 <= 60, where 43 + 43 is not); the third does not (26 + 43 > 60).
            assert (await call(team_b.key, max_tokens=70))[0] == 429  # the estimate alone is over 60: refunded
            assert [(await call(team_b.key, max_tokens=40))[0] for _ in range(3)] == [200, 200, 429]
            assert main(["keys", "revoke", team_b.row.id]) == 0
            await asyncio.sleep(0.5)
            assert (await call(team_b.key))[0] == 401
            rows = await logged(gateway, 4)
    assert {r.key_id for r in rows} <= {row_a.id, team_b.row.id}
    dump = "\n".join(str(vars(r)) for r in rows)
    assert key_a not in dump and team_b.key not in dump
    get_settings.cache_clear()
