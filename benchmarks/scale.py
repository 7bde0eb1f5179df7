"""Memory and throughput of ``aire run offline`` at 10,000 and 100,000 samples, against the fake server,
side by side with a raw aiohttp client on the same prompts, loopback only.

Each size runs the whole command in its own process (its own Prefect temporary server unless
PREFECT_API_URL is set) while this script samples its resident memory (the process and its children)
every 0.1 s; peak RSS at 100k over peak RSS at 10k is the flat-memory figure (issue 12's goal: <= 1.2),
aire's requests per second over the raw client's the throughput figure (goal: >= 0.95 at both sizes).
MLflow traces are off (``AIRE_TRACE_SAMPLES=0``): a trace per sample is a separate, measured cost.

Usage, from the repository root: ``python -m benchmarks.scale [--sizes 10000 100000] [--latency-ms 50]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from benchmarks.common import fake_server, make_suite, start, stop
from benchmarks.throughput import prompts_of, raw_client

BIN = Path(sys.executable).parent


def peak_rss_of(proc: subprocess.Popen[bytes], stop_event: threading.Event, peak: list[int]) -> None:
    """Sample the process tree's RSS until it exits; the largest sum goes to peak[0]."""
    root = psutil.Process(proc.pid)
    while not stop_event.is_set() and proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            rss = sum(p.memory_info().rss for p in tree if p.is_running())
        except psutil.NoSuchProcess:
            break
        peak[0] = max(peak[0], rss)
        time.sleep(0.1)


def run_aire(suite: Path, url: str, home: Path, concurrency: int) -> tuple[float, float, int]:
    """(wall seconds, request-phase seconds as the command reports them, peak RSS bytes) of one
    ``aire run offline`` command."""
    env = {**os.environ, "AIRE_HOME": str(home), "AIRE_TRACE_SAMPLES": "0", "AIRE_CONCURRENCY": str(concurrency)}
    cmd = [str(BIN / "aire"), "run", "offline", "--suite", str(suite), "--base-url", url, "--model", "fake"]
    t0 = time.perf_counter()
    proc = start(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    done, peak = threading.Event(), [0]
    sampler = threading.Thread(target=peak_rss_of, args=(proc, done, peak), daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    sampler.join()
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"aire run offline exited {proc.returncode}: {err.decode()[-500:]}")
    # "Requested 10000 samples in 21.3 s (469.5/s)."
    m = re.search(rb"Requested \d+ samples in ([\d.]+) s", out)
    if m is None:
        raise RuntimeError(f"no request-phase time in the command's output: {out.decode()[-300:]}")
    return wall, float(m.group(1)), peak[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--latency-ms", type=int, default=50, help="fake server latency")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    proc, url = fake_server(args.latency_ms)
    results: dict[int, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in args.sizes:
                suite = make_suite(Path(tmp) / f"suite-{n}", n)
                raw_s = asyncio.run(raw_client(url, "fake", prompts_of(suite), args.concurrency))
                wall, phase, peak = run_aire(suite, url, Path(tmp) / f"home-{n}", args.concurrency)
                results[n] = {"raw_rps": n / raw_s, "aire_rps": n / phase, "wall_s": wall, "peak_mib": peak / 2**20}
    finally:
        stop(proc)
    print(f"\naire run offline's request phase vs a raw aiohttp client, concurrency {args.concurrency}, fake at "
          f"{args.latency_ms} ms, traces off")  # fmt: skip
    for n, m in results.items():
        ratio = m["aire_rps"] / m["raw_rps"]
        print(f"  {n:>7} samples: aire {m['aire_rps']:.0f} req/s, raw {m['raw_rps']:.0f} req/s ({ratio:.2f}x, "
              f"goal >= 0.95); whole command {m['wall_s']:.1f} s; peak RSS {m['peak_mib']:.0f} MiB")  # fmt: skip
    if len(results) >= 2:
        small, large = min(results), max(results)
        growth = results[large]["peak_mib"] / results[small]["peak_mib"]
        print(f"  peak RSS at {large} / at {small}: {growth:.2f} (goal <= 1.2)")


if __name__ == "__main__":
    main()
