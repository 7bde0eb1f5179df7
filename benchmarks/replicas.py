"""One endpoint on one replica and on two: aire's client against fake replicas of fixed capacity, side by
side in one run, alternating rounds, loopback only.

Each fake replica is its own process that serves at most ``--capacity`` requests at once for
``--latency-ms`` each and queues the rest (a vLLM replica with max_num_seqs slots): one replica's
throughput is capacity / latency. The client keeps ``--concurrency`` requests in flight per replica,
so two replicas can carry twice the load. Goal (issue 12): two replicas >= 1.8x one replica.

Usage, from the repository root: ``python -m benchmarks.replicas [--n 4000] [--rounds 4]``.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

from aire.client.config import EndpointConfig
from aire.client.endpoints import EndpointClient
from aire.core.types import GenerationParams, Sample
from benchmarks.common import fake_server, stop

BIN = Path(sys.executable).parent
PARAMS = GenerationParams(max_tokens=4, temperature=0)


async def throughput(endpoint: EndpointConfig, n: int, concurrency: int) -> tuple[float, int]:
    """(requests per second, failed requests) of n completions through one client."""
    samples = [Sample(id=str(i), prompt=f"Q: {i % 10}+{i // 10 % 10}=\nA:") for i in range(n)]
    async with EndpointClient(endpoint, concurrency=concurrency) as client:
        t0 = time.perf_counter()
        done = await asyncio.gather(*(client.generate(s, PARAMS) for s in samples))
        wall = time.perf_counter() - t0
    return n / wall, sum(c.error is not None for c in done)


async def compare(urls: list[str], n: int, rounds: int, concurrency: int) -> dict[str, float]:
    arms = {
        "one": EndpointConfig(name="one", base_url=urls[0], model="fake"),
        "two": EndpointConfig(name="two", base_url=urls[0], replicas=urls[1:], model="fake"),
    }
    rates: dict[str, list[float]] = {"one": [], "two": []}
    failed = 0
    await throughput(arms["two"], 200, concurrency)  # warm-up: connections, first-call costs
    for r in range(rounds):
        for arm in ("one", "two") if r % 2 == 0 else ("two", "one"):
            rate, bad = await throughput(arms[arm], n // rounds, concurrency)
            rates[arm].append(rate)
            failed += bad
    one, two = (sorted(rates[a])[len(rates[a]) // 2] for a in ("one", "two"))
    return {"one": one, "two": two, "ratio": two / one, "failed": failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=4000, help="requests per arm")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--capacity", type=int, default=8, help="requests each replica serves at once")
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=16, help="aire's requests in flight per replica")
    args = parser.parse_args()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        urls = []
        for _ in range(2):
            proc, url = fake_server(args.latency_ms, "--capacity", str(args.capacity))
            procs.append(proc)
            urls.append(url)
        m = asyncio.run(compare(urls, args.n, args.rounds, args.concurrency))
    finally:
        for proc in procs:
            stop(proc)
    ideal = args.capacity / (args.latency_ms / 1000)
    print(f"\n{args.n} requests per arm in {args.rounds} alternating rounds; replicas of capacity {args.capacity} "
          f"at {args.latency_ms} ms (at most {ideal:.0f} req/s each); "
          f"concurrency {args.concurrency} per replica")  # fmt: skip
    print(f"  one replica : {m['one']:.0f} req/s (median round)")
    print(f"  two replicas: {m['two']:.0f} req/s")
    print(f"  two / one   : {m['ratio']:.2f} (goal >= 1.8); failed requests {m['failed']:.0f}")


if __name__ == "__main__":
    main()
