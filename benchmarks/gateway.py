"""What ``aire gateway`` adds: the same streaming client straight to the fake server and through the
gateway, side by side in one run, alternating rounds (these machines are noisy), loopback only.

Each arm sends N streamed requests at concurrency 32 (default N = 20,000 per arm, in rounds of 2,500
alternating direct / gateway); per-request latency is first byte sent -> ``[DONE]`` read. Printed:
the added latency at p50 and p99 (gateway minus direct), throughput through the gateway over direct,
and the same with a 100% shadow mirror to a second fake (the client's latency should not change).
Goals (issue 11): added p50 <= 1.5 ms, p99 <= 8 ms, throughput >= 0.85x direct, on the same two cores
as the client and the fake server. Third: the exact cache's hit path (every request a hit) against the
fake answering directly (with ``--latency-ms`` > 0 the hits skip that latency too). Last, where Debian's
``haproxy`` is installed: HAProxy relaying TCP in the gateway's place, the floor of any proxy on these cores.
Each arm's CPU seconds per 1,000 requests are printed per process, with the bound they put on the
throughput ratio when the cores are the bottleneck.

Usage, from the repository root: ``python -m benchmarks.gateway [--n 20000] [--quick]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil
import yaml

from aire.ops.processes import free_port, wait_for
from benchmarks.common import fake_server, settle, start, stop

BIN = Path(sys.executable).parent
MODEL = "aire-model"
PROMPTS = [f"Q: {a}{op}{b}=\nA:" for a in range(10) for b in range(10) for op in "+*"]


async def load(base_url: str, model: str, n: int, concurrency: int) -> tuple[float, list[float]]:
    """(wall seconds, per-request latencies in seconds) of n streamed completions."""
    sem = asyncio.Semaphore(concurrency)
    url = f"{base_url}/completions"
    latencies: list[float] = []

    async def one(session: aiohttp.ClientSession, i: int) -> None:
        body = {"model": model, "prompt": PROMPTS[i % len(PROMPTS)], "max_tokens": 4, "temperature": 0,
                "stop": ["\n"], "stream": True}  # fmt: skip
        async with sem:
            t0 = time.perf_counter()
            async with session.post(url, json=body) as resp:
                assert resp.status == 200, await resp.text()
                async for line in resp.content:
                    if line.startswith(b"data: [DONE]"):
                        break
            latencies.append(time.perf_counter() - t0)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        t0 = time.perf_counter()
        await asyncio.gather(*(one(session, i) for i in range(n)))
        return time.perf_counter() - t0, latencies


def gateway(
    home: Path,
    production: str,
    challenger: str | None,
    mirror: float,
    cache: bool = False,
    profile: str | None = None,
    log: bool = True,
) -> tuple[subprocess.Popen[bytes], str]:
    """A registry with the fakes as versions, and ``aire gateway`` in front of them (its own process)."""
    env = {**os.environ, "AIRE_HOME": str(home), "AIRE_CONFIG": str(home / "aire.yaml")}
    code = (
        "import sys\n"
        "from aire.client.config import EndpointConfig\n"
        "from aire.core.settings import Settings\n"
        "from aire.release.registry import promote, register\n"
        "from aire.store.store import Store\n"
        "s = Settings(); st = Store(s.resolved_store_url)\n"
        "for alias, url in zip(('production', 'challenger'), sys.argv[1:]):\n"
        "    ep = EndpointConfig(name=alias, base_url=url, model='fake', version=alias, weights_digest=alias)\n"
        f"    promote(s, st, model='{MODEL}', alias=alias, version=register(s, '{MODEL}', ep), verdict='PASS')\n"
    )
    subprocess.run([str(BIN / "python"), "-c", code, production, *([challenger] if challenger else [])],
                   env=env, check=True)  # fmt: skip
    port = free_port()
    config = home / "gateway.yaml"
    config.write_text(yaml.safe_dump({"listen": {"port": port}, "routes": {MODEL: {"mirror": mirror}},
                                      "mirror": {"queue": 100_000, "concurrency": 32},
                                      "cache": {"enabled": cache}, "log": {"enabled": log}}))  # fmt: skip
    # --profile: the gateway under cProfile (written when it stops), to see where its CPU goes.
    prefix = [str(BIN / "python"), "-m", "cProfile", "-o", profile] if profile else []
    proc = start([*prefix, str(BIN / "aire"), "gateway", "--config", str(config)], env=env, stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}/v1"
    wait_for(f"{url}/models", 60)
    return proc, url


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1] if len(values) > 1 else values[0]


def cpu_s(procs: dict[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds (user + system) each process and its live children have used so far (socat forks a
    child per connection; the client's pool keeps them open across rounds)."""

    def used(proc: psutil.Process) -> float:
        try:
            return sum(proc.cpu_times()[:2])
        except psutil.NoSuchProcess:  # a child that ended since it was listed
            return 0.0

    return {name: sum(used(c) for c in [p, *p.children(recursive=True)]) for name, p in procs.items()}


def relay(upstream: str, home: Path) -> tuple[subprocess.Popen[bytes], str] | None:
    """HAProxy in TCP mode in the gateway's place (C, event-driven, one thread, no HTTP parsing, the
    client's keep-alive connections held open): the floor of what any proxy process costs on these
    cores. None without Debian's ``haproxy``."""
    binary = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if binary is None:
        return None
    port, target = free_port(), upstream.removeprefix("http://").removesuffix("/v1")
    config = home / "haproxy.cfg"
    config.write_text(
        "global\n  nbthread 1\n  maxconn 1024\n"
        "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 60s\n  timeout server 60s\n"
        f"frontend relay\n  bind 127.0.0.1:{port}\n  default_backend fake\n"
        f"backend fake\n  server fake {target}\n"
    )
    proc = start([binary, "-db", "-f", str(config)], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    wait_for(f"{url.removesuffix('/v1')}/health", 20)
    return proc, url


async def compare(
    direct: str, through: str, n: int, rounds: int, concurrency: int, pids: dict[str, int], model: str = MODEL
) -> dict[str, float]:
    """Both arms in alternating rounds; ``pids``: the processes whose CPU each arm's requests cost
    (the client, this process, is added), so the report can say where the two cores went."""
    walls: dict[str, float] = {"direct": 0.0, "gateway": 0.0}
    lats: dict[str, list[float]] = {"direct": [], "gateway": []}
    procs = {"client": psutil.Process(), **{name: psutil.Process(pid) for name, pid in pids.items()}}
    cpu: dict[str, dict[str, float]] = {"direct": dict.fromkeys(procs, 0.0), "gateway": dict.fromkeys(procs, 0.0)}
    per_round = n // rounds
    await load(direct, "fake", 500, concurrency)  # warm both paths: connection pools, first-call costs
    await load(through, model, 500, concurrency)
    for r in range(rounds):
        order = [("direct", direct, "fake"), ("gateway", through, model)]
        for arm, url, name in order if r % 2 == 0 else order[::-1]:
            settle(10, 30)
            before = cpu_s(procs)
            wall, lat = await load(url, name, per_round, concurrency)
            after = cpu_s(procs)
            walls[arm] += wall
            lats[arm] += lat
            for proc in procs:
                cpu[arm][proc] += after[proc] - before[proc]
    p = {arm: (pct(lats[arm], 50) * 1000, pct(lats[arm], 99) * 1000) for arm in lats}
    per_k = {arm: {name: 1000 * v / len(lats[arm]) for name, v in cpu[arm].items()} for arm in cpu}
    return {
        **{f"cpu_{arm}_{name}": v for arm, d in per_k.items() for name, v in d.items()},
        "direct_p50_ms": p["direct"][0],
        "direct_p99_ms": p["direct"][1],
        "added_p50_ms": p["gateway"][0] - p["direct"][0],
        "added_p99_ms": p["gateway"][1] - p["direct"][1],
        "throughput_ratio": walls["direct"] / walls["gateway"],
        "direct_rps": len(lats["direct"]) / walls["direct"],
        "gateway_rps": len(lats["gateway"]) / walls["gateway"],
    }


def pids(fake_proc: subprocess.Popen[bytes], gw: subprocess.Popen[bytes], shadow=None) -> dict[str, int]:
    out = {"fake": fake_proc.pid, "gateway": gw.pid}
    return out | ({"shadow fake": shadow.pid} if shadow is not None else {})


def report(title: str, m: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"  direct: p50 {m['direct_p50_ms']:.2f} ms, p99 {m['direct_p99_ms']:.2f} ms, {m['direct_rps']:.0f} req/s")
    print(f"  gateway adds p50 {m['added_p50_ms']:+.2f} ms (goal <= 1.5), p99 {m['added_p99_ms']:+.2f} ms (goal <= 8)")
    print(f"  throughput through the gateway / direct: {m['throughput_ratio']:.3f} (goal >= 0.85), "
          f"{m['gateway_rps']:.0f} req/s")  # fmt: skip
    for arm in ("direct", "gateway"):
        parts = {k.removeprefix(f"cpu_{arm}_"): v for k, v in m.items() if k.startswith(f"cpu_{arm}_")}
        total = sum(parts.values())
        print(f"  CPU s per 1,000 requests, {arm}: " + ", ".join(f"{k} {v:.3f}" for k, v in parts.items())
              + f" (all {total:.3f})")  # fmt: skip
    direct_cpu = sum(v for k, v in m.items() if k.startswith("cpu_direct_"))
    gateway_cpu = sum(v for k, v in m.items() if k.startswith("cpu_gateway_"))
    # CPU-bound on shared cores, throughput is at most the inverse of the CPU a request costs.
    print(f"  CPU bound on the ratio (direct CPU / gateway-arm CPU per request): {direct_cpu / gateway_cpu:.3f}")


ARMS = {
    "plain": "gateway (no mirror) vs direct:",
    "mirror": "gateway with a 100% mirror to a second fake vs direct:",
    "cache": "gateway answering from its exact cache (every request a hit) vs direct to the fake:",
    "floor": "the floor: HAProxy relaying TCP (C, no HTTP parsing) in the gateway's place vs direct:",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20_000, help="requests per arm")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency-ms", type=int, default=0, help="the fake server's fixed latency")
    parser.add_argument("--quick", action="store_true", help="2,000 requests per arm")
    parser.add_argument("--arm", action="append", choices=sorted(ARMS), help="only these (repeatable)")
    parser.add_argument("--profile", help="write a cProfile of the plain arm's gateway here")
    parser.add_argument("--no-log", action="store_true", help="the gateway's traffic log off: what it costs")
    args = parser.parse_args()
    n = 2000 if args.quick else args.n
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, dict[str, float]] = {}
    try:
        prod, prod_url = fake_server(args.latency_ms)
        shadow, shadow_url = fake_server(args.latency_ms)
        procs += [prod, shadow]
        # plain, mirror, cache: (challenger, mirror share, cache on). The cache arm sends the same 200
        # prompts at temperature 0 again and again: after the warm-up every request is an exact hit.
        setups = {"plain": (None, 0.0, False), "mirror": (shadow_url, 1.0, False), "cache": (None, 0.0, True)}
        with tempfile.TemporaryDirectory() as tmp:
            for arm in [a for a in ARMS if not args.arm or a in args.arm]:
                if arm == "floor":
                    floor = relay(prod_url, Path(tmp))
                    if floor is None:
                        print("no haproxy: the floor arm is skipped (Debian's haproxy)")
                        continue
                    proxy, url, model = floor[0], floor[1], "fake"
                else:
                    challenger, mirror, cache = setups[arm]
                    profile = args.profile if arm == "plain" else None
                    proxy, url = gateway(
                        Path(tmp) / arm, prod_url, challenger, mirror, cache=cache, profile=profile, log=not args.no_log
                    )
                    model = MODEL
                procs.append(proxy)
                watched = pids(prod, proxy, shadow if arm == "mirror" else None)
                results[arm] = asyncio.run(compare(prod_url, url, n, args.rounds, args.concurrency, watched, model))
                stop(proxy)
        print(f"\n{n} streamed requests per arm, concurrency {args.concurrency}, fake latency {args.latency_ms} ms, "
              f"{args.rounds} alternating rounds; client, fake server(s) and gateway on the same {os.cpu_count()} "
              "cores")  # fmt: skip
        for arm, measured in results.items():
            report(ARMS[arm], measured)
    finally:
        for proc in procs:
            stop(proc)


if __name__ == "__main__":
    main()
