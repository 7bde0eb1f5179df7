"""The fake OpenAI server itself, spoken to with plain aiohttp: it is what every client test trusts."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

import aiohttp

from aire.testing.fake_openai import FakeOpenAI, Fault, arithmetic_answer, fail_first, wrong_answer


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    async with aiohttp.ClientSession() as s, s.post(url, json=body, headers=headers) as r:
        return r.status, r.headers, await r.read()


def sse(raw: bytes) -> list[Any]:
    """The data payloads of an SSE body, JSON-decoded except the final [DONE]."""
    out: list[Any] = []
    for line in raw.decode().split("\n\n"):
        if line.startswith("data: "):
            data = line[6:]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def test_arithmetic_answer() -> None:
    assert arithmetic_answer("Q: 3+4=\nA:") == " 7"
    assert arithmetic_answer("Q: 9-12=\nA:") == " -3"
    assert arithmetic_answer("Q: 6*7=\nA:") == " 42"
    assert arithmetic_answer("6 x 7 =") == " 42"
    assert arithmetic_answer("Q: 7/2=\nA:") == " 3.5"
    assert arithmetic_answer("Q: 1+1=\nA: 2\nQ: 5*5=\nA:") == " 25"  # few-shot: the last question
    assert arithmetic_answer("hello") == "ok"
    assert wrong_answer(" 7") == " 8" and wrong_answer("ok") == " wrong"


async def test_models_health_and_latency() -> None:
    async with FakeOpenAI(models=["a", "b"], latency_s=0.05) as srv:
        assert srv.base_url.endswith("/v1") and srv.port > 0
        async with aiohttp.ClientSession() as s:
            async with s.get(srv.base_url + "/models") as r:
                assert [m["id"] for m in (await r.json())["data"]] == ["a", "b"]
            async with s.get(srv.url + "/health") as r:
                assert r.status == 200
        t0 = time.perf_counter()
        status, _, raw = await post(srv.base_url + "/completions", {"model": "a", "prompt": "2+2="})
        assert time.perf_counter() - t0 >= 0.05
    body = json.loads(raw)
    assert status == 200 and body["choices"][0]["text"] == " 4" and body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}


async def test_non_streaming_chat() -> None:
    async with FakeOpenAI(latency_s=0) as srv:
        msgs = [{"role": "user", "content": "Q: 2*3=\nA:"}]
        status, _, raw = await post(srv.base_url + "/chat/completions", {"model": "fake", "messages": msgs})
    body = json.loads(raw)
    assert status == 200 and body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": " 6"}


async def test_stream_format_completions() -> None:
    async with FakeOpenAI(latency_s=0) as srv:
        body = {"model": "fake", "prompt": "Q: 3+4=\nA:", "stream": True, "stream_options": {"include_usage": True}}
        status, headers, raw = await post(srv.base_url + "/completions", body)
        _, _, raw_no_usage = await post(srv.base_url + "/completions", {**body, "stream_options": None})
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse(raw)
    assert [e["choices"][0]["text"] for e in events[:3]] == [" ", "7", ""]  # one chunk per token, then finish
    assert [e["choices"][0]["finish_reason"] for e in events[:3]] == [None, None, "stop"]
    assert events[3]["choices"] == [] and events[3]["usage"]["completion_tokens"] == 2
    assert events[4] == "[DONE]" and len(events) == 5
    assert len(sse(raw_no_usage)) == 4  # usage only when asked for


async def test_stream_format_chat() -> None:
    async with FakeOpenAI(latency_s=0) as srv:
        body = {"model": "fake", "messages": [{"role": "user", "content": "Q: 3*4=\nA:"}], "stream": True}
        _, _, raw = await post(srv.base_url + "/chat/completions", body)
    events = sse(raw)
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content", "") for d in deltas) == " 12"
    assert events[-2]["choices"][0]["finish_reason"] == "stop" and events[-1] == "[DONE]"


async def test_token_delay_spaces_chunks() -> None:
    async with FakeOpenAI(latency_s=0.02, token_delay_s=0.02, answer=lambda p: "abcd") as srv:
        arrivals: list[float] = []
        async with aiohttp.ClientSession() as s:
            t0 = time.perf_counter()
            body = {"model": "fake", "prompt": "x", "stream": True}
            async with s.post(srv.base_url + "/completions", json=body) as r:
                async for line in r.content:
                    if line.startswith(b"data: {"):
                        arrivals.append(time.perf_counter() - t0)
    assert arrivals[0] >= 0.02
    assert arrivals[3] - arrivals[0] >= 3 * 0.02 * 0.9


async def test_stop_and_max_tokens() -> None:
    async with FakeOpenAI(latency_s=0, answer=lambda p: "hello world") as srv:
        url = srv.base_url + "/completions"
        _, _, a = await post(url, {"model": "fake", "prompt": "x", "max_tokens": 3})
        _, _, b = await post(url, {"model": "fake", "prompt": "x", "stop": [" "]})
        _, _, c = await post(url, {"model": "fake", "prompt": "x", "stop": "o"})
    assert json.loads(a)["choices"][0] == {"index": 0, "text": "hel", "logprobs": None, "finish_reason": "length"}
    assert json.loads(b)["choices"][0]["text"] == "hello"
    assert json.loads(c)["choices"][0]["text"] == "hell"


async def test_wrong_rate_is_seeded_and_per_prompt() -> None:
    prompts = [f"Q: {i}+{j}=\nA:" for i in range(20) for j in range(20)]

    async def answers(seed: int) -> list[bool]:
        async with FakeOpenAI(latency_s=0, wrong_rate=0.2, seed=seed) as srv, aiohttp.ClientSession() as s:

            async def one(p: str) -> bool:
                body = {"model": "fake", "prompt": p}
                async with s.post(srv.base_url + "/completions", json=body) as r:
                    return (await r.json())["choices"][0]["text"] == arithmetic_answer(p)

            return list(await asyncio.gather(*(one(p) for p in prompts)))

    first, again, other = await answers(1), await answers(1), await answers(2)
    assert first == again  # same seed, same wrong prompts
    assert first != other
    assert 0.12 < 1 - sum(first) / len(first) < 0.28


async def test_stats_counters_and_reset() -> None:
    async with FakeOpenAI(latency_s=0) as srv:
        url = srv.base_url + "/completions"
        for p in ["a", "b", "a"]:
            await post(url, {"model": "fake", "prompt": p})
        assert srv.requests == 3 and srv.by_prompt == {"a": 2, "b": 1}
        async with aiohttp.ClientSession() as s:
            async with s.get(srv.url + "/stats") as r:
                stats = await r.json()
            assert stats["requests"] == 3 and stats["by_prompt"] == {"a": 2, "b": 1}
            assert stats["by_path"] == {"/v1/completions": 3} and stats["in_flight"] == 0
            async with s.post(srv.url + "/reset") as r:
                assert r.status == 200
        assert srv.stats()["requests"] == 0 and srv.by_prompt == {}


async def test_faults_by_index_and_plan() -> None:
    faults = {1: Fault("status", 429, retry_after=2, message="slow down")}
    async with FakeOpenAI(latency_s=0, faults=faults) as srv:
        url = srv.base_url + "/completions"
        codes = [(await post(url, {"model": "fake", "prompt": "x"}))[:2] for _ in range(3)]
        assert srv.faults_injected == 1
    assert [c[0] for c in codes] == [200, 429, 200]
    assert codes[1][1]["Retry-After"] == "2"

    async with FakeOpenAI(latency_s=0, faults=fail_first(2, Fault("status", 503), per_prompt=True)) as srv:
        url = srv.base_url + "/completions"
        got = [(await post(url, {"model": "fake", "prompt": p}))[0] for p in ["a", "b", "a", "a", "b"]]
    assert got == [503, 503, 503, 200, 503]


async def test_bad_requests() -> None:
    async with FakeOpenAI(latency_s=0, api_key="k") as srv:
        url = srv.base_url + "/completions"
        auth = {"Authorization": "Bearer k"}
        assert (await post(url, {"model": "fake", "prompt": "x"}))[0] == 401
        assert (await post(url, {"model": "nope", "prompt": "x"}, auth))[0] == 404
        assert (await post(url, {"model": "fake"}, auth))[0] == 400
        assert (await post(srv.base_url + "/chat/completions", {"model": "fake", "messages": []}, auth))[0] == 400
        assert (await post(url, {"model": "fake", "prompt": "x"}, auth))[0] == 200
        async with aiohttp.ClientSession() as s, s.post(url, data=b"{nope", headers=auth) as r:
            assert r.status == 400
            assert "error" in await r.json()


async def test_cli_serves_and_reports_stats() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "aire.testing.fake_openai",
        "--port",
        "0",
        "--latency-ms",
        "1",
        "--fail-first",
        "1",
        "--fail-status",
        "503",
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode().strip()
        assert line.startswith("http://127.0.0.1:") and line.endswith("/v1")
        codes = [(await post(line + "/completions", {"model": "fake", "prompt": "1+2="}))[0] for _ in range(2)]
        assert codes == [503, 200]
        async with aiohttp.ClientSession() as s, s.get(line.removesuffix("/v1") + "/stats") as r:
            stats = await r.json()
        assert stats["requests"] == 2 and stats["by_prompt"] == {"1+2=": 2} and stats["faults_injected"] == 1
    finally:
        proc.terminate()
        rc = await asyncio.wait_for(proc.wait(), 10)
        assert proc.stderr is not None
        err = (await proc.stderr.read()).decode()
    assert rc == 0, err
    assert "Warning" not in err
