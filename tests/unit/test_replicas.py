"""Several replicas of one endpoint (aire.client.replicas): attempts go to the least loaded healthy one;
a replica that fails like a sick server cools down and its requests' retries go elsewhere; every
replica is checked before a run; one suite spreads over N fake replicas about evenly."""

from __future__ import annotations

import asyncio

import pytest

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient
from aire.client.replicas import Replicas
from aire.core.errors import EndpointError
from aire.core.types import GenerationParams, Sample
from aire.ops.processes import free_port
from aire.testing.fake_openai import FakeOpenAI, arithmetic_answer

PARAMS = GenerationParams(max_tokens=4, temperature=0)


def samples(n: int) -> list[Sample]:
    return [Sample(id=str(i), prompt=f"Q: {i % 10}+{i // 10 % 10}=\nA:") for i in range(n)]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_the_least_loaded_healthy_replica_is_picked_and_a_sick_one_cools_down() -> None:
    clock = Clock()
    rs = Replicas(["http://a", "http://b", "http://c"], cooldown_s=5.0, clock=clock)
    held = [rs.pick() for _ in range(6)]
    assert sorted(r.base_url for r in held) == ["http://a", "http://a", "http://b", "http://b", "http://c", "http://c"]
    a = next(r for r in held if r.base_url == "http://a")
    rs.release(a, healthy=True)  # a now has the fewest in flight
    assert rs.pick().base_url == "http://a"
    b = next(r for r in held if r.base_url == "http://b")
    rs.release(b, healthy=False)  # b failed: out for 5 s, even though it is now the least loaded
    assert {rs.pick().base_url for _ in range(4)} == {"http://a", "http://c"}
    clock.t += 5.0
    assert rs.pick().base_url == "http://b"  # back after its cooldown
    # All cooling down: the one that failed longest ago, never nothing.
    for r in rs.replicas:
        r.in_flight = 0
    rs.release(rs.replicas[0], healthy=False)
    clock.t += 1
    rs.release(rs.replicas[2], healthy=False)
    rs.release(rs.replicas[1], healthy=False)
    assert rs.pick() is rs.replicas[0]
    with pytest.raises(ValueError):
        Replicas([])


async def test_a_suite_spreads_over_replicas_and_retries_leave_a_dead_one() -> None:
    async with FakeOpenAI(latency_s=0.005) as one, FakeOpenAI(latency_s=0.005) as two:
        ep = EndpointConfig(name="r", base_url=one.base_url, replicas=[two.base_url], model="fake")
        async with EndpointClient(ep, concurrency=8, max_attempts=3, backoff_s=0.01) as client:
            await client.check()
            done = await asyncio.gather(*(client.generate(s, PARAMS) for s in samples(200)))
        assert all(c.error is None for c in done)
        assert one.requests + two.requests == 200 and min(one.requests, two.requests) >= 60
        # A replica that is down: a run still answers everything, through the other one.
        dead = f"http://127.0.0.1:{free_port()}/v1"
        ep = EndpointConfig(name="r", base_url=one.base_url, replicas=[dead], model="fake")
        one.reset()
        async with EndpointClient(ep, concurrency=4, max_attempts=3, backoff_s=0.01) as client:
            done = await asyncio.gather(*(client.generate(s, PARAMS) for s in samples(100)))
            dead_replica = client._transport.replicas.replicas[1]
        assert all(
            c.error is None and c.text == arithmetic_answer(s.prompt)[:4]
            for c, s in zip(done, samples(100), strict=True)
        )
        assert one.requests == 100
        # Only the attempts in flight when it first failed went there; then it cooled down.
        assert 1 <= dead_replica.sent <= 8 and dead_replica.failed == dead_replica.sent
        with pytest.raises(EndpointError) as err:
            await EndpointClient(ep).check()
        assert dead in str(err.value) and "unreachable" in str(err.value)
