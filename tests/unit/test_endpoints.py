"""EndpointClient against the in-process fake OpenAI server: timings, routes, retries, every error path."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from aire.client.config import EndpointConfig
from aire.client.endpoints import CHAT_PATH, COMPLETIONS_PATH, EndpointClient, payload, request_fingerprint
from aire.core.errors import EndpointError
from aire.core.settings import Settings
from aire.core.types import ChatMessage, Completion, GenerationParams, Sample
from aire.ops.processes import free_port
from aire.testing.fake_openai import FakeOpenAI, Fault, RequestInfo, fail_first

Q = Sample(id="q1", prompt="Q: 3+4=\nA:")
CHAT = Sample(
    id="c1", prompt=[ChatMessage(role="system", content="Be brief."), ChatMessage(role="user", content="Q: 3*4=\nA:")]
)
P = GenerationParams()


def endpoint(base_url: str, model: str = "fake", **kw: Any) -> EndpointConfig:
    return EndpointConfig(name="champion", base_url=base_url, model=model, **kw)


def client(ep: EndpointConfig, **kw: Any) -> EndpointClient:
    # Tiny backoff so retry tests take milliseconds; the policy itself is what is under test.
    kw.setdefault("backoff_s", 0.005)
    kw.setdefault("max_backoff_s", 0.02)
    return EndpointClient(ep, **kw)


async def one(
    sample: Sample = Q, params: GenerationParams = P, *, client_kw: dict[str, Any] | None = None, **server_kw: Any
) -> tuple[Completion, FakeOpenAI]:
    """Start a fake server with ``server_kw``, send one request, return the completion and the server."""
    server_kw.setdefault("latency_s", 0)
    async with FakeOpenAI(**server_kw) as s, client(endpoint(s.base_url), **(client_kw or {})) as c:
        return await c.generate(sample, params), s


@pytest.fixture
async def srv() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(latency_s=0.005) as s:
        yield s


# ------------------------------------------------------------------------------------------ happy path
async def test_stream_timings_and_usage() -> None:
    out, _ = await one(latency_s=0.05, token_delay_s=0.01, answer=lambda p: "abcdef")
    assert out.ok and out.text == "abcdef" and out.finish_reason == "stop"
    assert out.attempts == 1
    assert out.prompt_tokens == len("Q: 3+4=\nA:") and out.output_tokens == 6
    assert out.ttft_s is not None and 0.05 <= out.ttft_s < 0.5
    assert out.tpot_s is not None and 0.008 <= out.tpot_s < 0.05  # 5 gaps of ~10 ms
    assert out.e2e_s is not None and out.e2e_s >= out.ttft_s + 5 * 0.008


async def test_completion_route_default_arithmetic_answer(srv: FakeOpenAI) -> None:
    async with client(endpoint(srv.base_url)) as c:
        out = await c.generate(Q, P)
    assert out.ok and out.text == " 7" and out.output_tokens == 2
    assert out.tpot_s is not None and out.tpot_s >= 0
    assert srv.by_path == {"/v1/completions": 1}


async def test_chat_route(srv: FakeOpenAI) -> None:
    async with client(endpoint(srv.base_url)) as c:
        out = await c.generate(CHAT, P)
    assert out.ok and out.text == " 12" and out.finish_reason == "stop"
    assert out.prompt_tokens == len("Be brief.") + len("Q: 3*4=\nA:")
    assert srv.by_path == {"/v1/chat/completions": 1}


async def test_request_body_carries_params_and_model() -> None:
    bodies: list[dict[str, Any]] = []

    def spy(info: RequestInfo) -> None:
        bodies.append(info.body)

    params = GenerationParams(temperature=0.5, max_tokens=1, top_p=0.9, stop=["\n"], seed=7)
    async with FakeOpenAI(latency_s=0, faults=spy) as s, client(endpoint(s.base_url)) as c:
        out = await c.generate(Q, params)
    assert out.ok and out.text == " " and out.finish_reason == "length"
    body = bodies[0]
    assert body["model"] == "fake" and body["prompt"] == Q.prompt
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["max_tokens"], body["top_p"]) == (0.5, 1, 0.9)
    assert body["stop"] == ["\n"] and body["seed"] == 7


async def test_usage_missing_falls_back_to_counting_chunks() -> None:
    async with FakeOpenAI(latency_s=0, send_usage=False) as s, client(endpoint(s.base_url)) as c:
        out = await c.generate(Q, P)
    assert out.ok and out.text == " 7"
    assert out.output_tokens == 2 and out.prompt_tokens is None


async def test_server_ignoring_stream_still_answers() -> None:
    async with FakeOpenAI(latency_s=0.01, honor_stream=False) as s, client(endpoint(s.base_url)) as c:
        out = await c.generate(CHAT, P)
    assert out.ok and out.text == " 12" and out.output_tokens == 3
    assert out.ttft_s == out.e2e_s and out.tpot_s is None


async def test_generate_requires_open_client(srv: FakeOpenAI) -> None:
    with pytest.raises(RuntimeError, match="async with"):
        await client(endpoint(srv.base_url)).generate(Q, P)


# --------------------------------------------------------------------------------------------- retries
async def test_5xx_then_success_counts_attempts() -> None:
    out, s = await one(faults=fail_first(2, Fault("status", 503)))
    assert out.ok and out.text == " 7" and out.attempts == 3
    assert s.requests == 3


async def test_429_honours_retry_after() -> None:
    fault = Fault("status", 429, retry_after=0.3)
    async with FakeOpenAI(latency_s=0, faults=fail_first(1, fault)) as s, client(endpoint(s.base_url)) as c:
        t0 = time.perf_counter()
        out = await c.generate(Q, P)
        elapsed = time.perf_counter() - t0
    assert out.ok and out.attempts == 2
    assert elapsed >= 0.3  # the backoff alone would have waited ~5 ms


async def test_retry_after_is_capped() -> None:
    fault = Fault("status", 503, retry_after=30)
    t0 = time.perf_counter()
    out, _ = await one(faults=fail_first(1, fault), client_kw=dict(max_retry_after_s=0.05))
    assert out.ok and out.attempts == 2 and time.perf_counter() - t0 < 2


async def test_exhausted_retries_record_the_error() -> None:
    out, s = await one(faults=fail_first(99, Fault("status", 500, message="boom")), client_kw=dict(max_attempts=3))
    assert not out.ok and out.attempts == 3 and s.requests == 3
    assert out.error is not None and out.error.type == "http" and out.error.status == 500
    assert "boom" in out.error.message
    assert out.text == "" and out.ttft_s is None and out.e2e_s is None


@pytest.mark.parametrize("status", [400, 401, 403, 422])
async def test_other_4xx_not_retried(status: int) -> None:
    out, s = await one(faults=fail_first(99, Fault("status", status)))
    assert out.error is not None and out.error.type == "http" and out.error.status == status
    assert out.attempts == 1 and s.requests == 1


async def test_unknown_model_is_a_final_404(srv: FakeOpenAI) -> None:
    async with client(endpoint(srv.base_url, model="nope")) as c:
        out = await c.generate(Q, P)
    assert out.error is not None and out.error.status == 404 and "nope" in out.error.message
    assert srv.requests == 1


async def test_timeout_before_headers() -> None:
    async with FakeOpenAI(latency_s=0, faults=fail_first(99, Fault("hang"))) as s:
        async with client(endpoint(s.base_url), timeout_s=0.15, max_attempts=2) as c:
            out = await c.generate(Q, P)
        await asyncio.sleep(0.05)  # let the server notice the disconnects
        assert s.in_flight == 0  # hung handlers were cancelled, not left behind
    assert out.error is not None and out.error.type == "timeout" and out.error.status is None
    assert out.attempts == 2 and s.requests == 2


async def test_stall_mid_stream_times_out_then_recovers() -> None:
    out, _ = await one(token_delay_s=0.001, faults=fail_first(1, Fault("stall")), client_kw=dict(timeout_s=0.15))
    assert out.ok and out.text == " 7" and out.attempts == 2
    assert out.e2e_s is not None and out.e2e_s < 0.15  # timings of the successful attempt only


async def test_connection_refused() -> None:
    port = free_port()
    async with client(endpoint(f"http://127.0.0.1:{port}/v1"), max_attempts=3) as c:
        out = await c.generate(Q, P)
    assert out.error is not None and out.error.type == "connection"
    assert "connection refused" in out.error.message and str(port) in out.error.message
    assert out.attempts == 3


async def test_mid_stream_disconnect_is_retried() -> None:
    out, _ = await one(faults=fail_first(1, Fault("disconnect")))
    assert out.ok and out.text == " 7" and out.attempts == 2  # no text from the broken attempt


async def test_persistent_disconnect_records_connection_error() -> None:
    out, _ = await one(faults=fail_first(99, Fault("disconnect")), client_kw=dict(max_attempts=2))
    assert out.error is not None and out.error.type == "connection" and out.attempts == 2


@pytest.mark.parametrize("kind", ["malformed", "no_choices"])
async def test_malformed_chunk_is_a_retried_protocol_error(kind: str) -> None:
    out, s = await one(faults=fail_first(99, Fault(kind)), client_kw=dict(max_attempts=2))  # type: ignore[arg-type]
    assert out.error is not None and out.error.type == "protocol" and "malformed" in out.error.message
    assert out.attempts == 2 and s.requests == 2


async def test_malformed_chunk_once_then_success() -> None:
    out, _ = await one(CHAT, faults=fail_first(1, Fault("malformed")))
    assert out.ok and out.text == " 12" and out.attempts == 2


async def test_error_chunk_recorded_and_retried_by_status() -> None:
    final = Fault("error_chunk", status=400, message="prompt too long")
    async with FakeOpenAI(latency_s=0, faults=fail_first(99, final)) as s, client(endpoint(s.base_url)) as c:
        out = await c.generate(Q, P)
    assert out.error is not None and out.error.type == "http" and out.error.status == 400
    assert "prompt too long" in out.error.message and out.attempts == 1

    transient = Fault("error_chunk", status=503)
    async with FakeOpenAI(latency_s=0, faults=fail_first(1, transient)) as s, client(endpoint(s.base_url)) as c:
        out = await c.generate(Q, P)
    assert out.ok and out.attempts == 2


# ----------------------------------------------------------------------------------------- concurrency
async def test_concurrency_is_bounded() -> None:
    async with FakeOpenAI(latency_s=0.02) as s, client(endpoint(s.base_url), concurrency=4) as c:
        outs = await asyncio.gather(*(c.generate(Sample(id=str(i), prompt=f"{i}+1="), P) for i in range(40)))
    assert all(o.ok for o in outs)
    assert [o.text for o in outs[:3]] == [" 1", " 2", " 3"]
    assert s.max_in_flight == 4  # never more, and the bound is actually used


async def test_retrying_requests_do_not_exceed_the_bound() -> None:
    plan = fail_first(1, Fault("status", 503), per_prompt=True)
    async with FakeOpenAI(latency_s=0.01, faults=plan) as s, client(endpoint(s.base_url), concurrency=3) as c:
        outs = await asyncio.gather(*(c.generate(Sample(id=str(i), prompt=f"{i}*2="), P) for i in range(15)))
    assert all(o.ok and o.attempts == 2 for o in outs)
    assert s.requests == 30 and s.max_in_flight <= 3


# --------------------------------------------------------------------------------------------- secrets
async def test_api_key_sent_as_header_and_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-very-secret-0123456789"
    monkeypatch.setenv("AIRE_TEST_KEY", key)
    echo = Fault("status", 400, message=f"bad request (Authorization: Bearer {key})")
    async with FakeOpenAI(latency_s=0, api_key=key, faults=fail_first(1, echo)) as s:
        ep = endpoint(s.base_url, api_key_env="AIRE_TEST_KEY")
        async with client(ep) as c:
            failed = await c.generate(Q, P)
            ok = await c.generate(Q, P)
            await c.check()
            assert key not in repr(c) and key not in str(c)
        assert s.last_authorization == f"Bearer {key}"
    assert ok.ok and ok.text == " 7"
    assert failed.error is not None and failed.error.status == 400
    assert key not in failed.error.message and "***" in failed.error.message
    assert key not in repr(failed) and key not in failed.model_dump_json()


async def test_wrong_key_is_a_final_401_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRE_TEST_KEY", "sk-wrong-key-42")
    async with FakeOpenAI(latency_s=0, api_key="sk-right") as s:
        ep = endpoint(s.base_url, api_key_env="AIRE_TEST_KEY")
        async with client(ep) as c:
            out = await c.generate(Q, P)
            with pytest.raises(EndpointError) as info:
                await c.check()
    assert out.error is not None and out.error.status == 401 and out.attempts == 1
    assert "sk-wrong-key-42" not in out.error.message
    assert "$AIRE_TEST_KEY" in str(info.value) and "sk-wrong-key-42" not in str(info.value)


async def test_no_key_no_authorization_header(srv: FakeOpenAI) -> None:
    async with client(endpoint(srv.base_url, api_key_env="AIRE_UNSET_VARIABLE_X")) as c:
        assert (await c.generate(Q, P)).ok
    assert srv.last_authorization is None


# ---------------------------------------------------------------------------------------------- check
async def test_check_ok_with_and_without_open_session(srv: FakeOpenAI) -> None:
    await client(endpoint(srv.base_url)).check()
    async with client(endpoint(srv.base_url)) as c:
        await c.check()
    assert srv.models_requests == 2


async def test_check_names_the_served_models() -> None:
    async with FakeOpenAI(models=["a", "b"]) as s:
        with pytest.raises(EndpointError) as info:
            await client(endpoint(s.base_url, model="x")).check()
    assert str(info.value) == f"endpoint 'champion' at {s.base_url} does not serve model 'x' (serves: a, b)"


async def test_check_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(EndpointError) as info:
        await client(endpoint(url)).check()
    assert str(info.value) == f"endpoint 'champion' at {url} is unreachable: connection refused"
    assert "\n" not in str(info.value)


async def test_check_times_out_quickly() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)  # accepts, never answers

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        t0 = time.perf_counter()
        with pytest.raises(EndpointError, match=r"is unreachable: no answer within 0.2 s"):
            await client(endpoint(f"http://127.0.0.1:{port}/v1"), check_timeout_s=0.2).check()
        assert time.perf_counter() - t0 < 2
    finally:
        server.close()


# ------------------------------------------------------------------------------------- from settings
async def test_from_settings_takes_timeout_attempts_and_concurrency(srv: FakeOpenAI) -> None:
    settings = Settings(concurrency=5, request_timeout_s=7.5, max_attempts=2)
    ep = endpoint(srv.base_url)
    c = EndpointClient.from_settings(settings, ep)
    assert (c.endpoint, c.concurrency, c.timeout_s, c.max_attempts) == (ep, 5, 7.5, 2)
    own = EndpointClient.from_settings(settings, ep, concurrency=3, timeout_s=1.0)
    assert (own.concurrency, own.timeout_s, own.max_attempts) == (3, 1.0, 2)
    async with own:
        assert (await own.generate(Q, P)).text == " 7"
        await own.check()


# ----------------------------------------------------------------------------------------- fingerprint
def test_payload_shapes() -> None:
    path, body = payload(Q, P)
    assert path == COMPLETIONS_PATH
    assert body == {"max_tokens": 64, "temperature": 0.0, "top_p": 1.0, "prompt": "Q: 3+4=\nA:"}
    path, body = payload(CHAT, GenerationParams(stop=["\n"], seed=3))
    assert path == CHAT_PATH
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q: 3*4=\nA:"}]
    assert body["stop"] == ["\n"] and body["seed"] == 3


def test_fingerprint_is_stable_and_discriminating(monkeypatch: pytest.MonkeyPatch) -> None:
    ep = endpoint("http://127.0.0.1:8101/v1", model="champion")
    fp = request_fingerprint(ep, Q, P)
    # Pinned: changing the canonical form invalidates every stored run's resume cache.
    canonical = (
        '{"base_url":"http://127.0.0.1:8101/v1","body":{"max_tokens":64,"prompt":"Q: 3+4=\\nA:",'
        '"temperature":0.0,"top_p":1.0},"model":"champion","path":"/completions"}'
    )
    assert fp == hashlib.sha256(canonical.encode()).hexdigest()
    assert fp == "7b05c3d6a334eeb30fa5d52dea6aa3c6658dde02f09f0eb47879647b455bfa03"
    assert request_fingerprint(ep, Sample(id="other-id", prompt=Q.prompt), P) == fp  # ids are not sent
    # No secret and no bookkeeping goes in.
    monkeypatch.setenv("AIRE_TEST_KEY", "sk-1")
    with_key = EndpointConfig(
        name="other", base_url=ep.base_url + "/", model="champion", api_key_env="AIRE_TEST_KEY", version="9"
    )
    assert request_fingerprint(with_key, Q, P) == fp
    others = {
        request_fingerprint(ep, Sample(id="q1", prompt="Q: 3+5=\nA:"), P),
        request_fingerprint(ep, Q, GenerationParams(temperature=0.1)),
        request_fingerprint(ep, Q, GenerationParams(seed=0)),
        request_fingerprint(endpoint("http://127.0.0.1:8102/v1", model="champion"), Q, P),
        request_fingerprint(endpoint("http://127.0.0.1:8101/v1", model="challenger"), Q, P),
        request_fingerprint(ep, Sample(id="q1", prompt=[ChatMessage(role="user", content=Q.prompt)]), P),
    }
    assert fp not in others and len(others) == 6


def test_canonical_json_is_byte_for_byte_what_json_writes() -> None:
    # Stored request fingerprints must not change with the faster encoder: random prompts (control
    # characters, astral and non-ASCII text, lone surrogates), chat messages and generation values.
    import json
    import random

    from aire.client.endpoints import canonical_json

    rng = random.Random(7)
    alphabet = [chr(c) for c in [*range(0, 0x80), 0xA0, 0xE9, 0x2028, 0x2029, 0x4E2D, 0x1F600, 0xD800]]
    floats = [0.0, 1.0, 0.7, 1e-05, 2.5e-7, 1e16, 0.30000000000000004, -0.0, 5e-324]
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        body: dict = {"max_tokens": rng.randint(1, 2**40), "temperature": rng.choice(floats), "top_p": rng.random()}
        if rng.random() < 0.5:
            body["prompt"] = text
        else:
            body["messages"] = [{"role": "user", "content": text}, {"role": "system", "content": text[::-1]}]
        if rng.random() < 0.3:
            body["stop"] = [text[:3], "\n"]
        doc = {"base_url": "http://127.0.0.1:1/v1", "model": "m", "path": "/completions", "body": body}
        expected = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
        assert canonical_json(doc) == expected, doc
