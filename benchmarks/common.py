"""What the benchmarks share: a suite of any size made from a real one, and processes they start and stop.

Run the benchmarks as modules from the repository root (``python -m benchmarks.throughput``), as
``make bench`` does, so they can import this one.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def make_suite(folder: Path, n: int, source: Path = REPO / "datasets" / "arith") -> Path:
    """A copy of a suite whose rows repeat until there are n, with unique ids."""
    rows = [json.loads(line) for line in (source / "samples.jsonl").read_text().splitlines() if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "samples.jsonl").open("w") as fh:
        for i in range(n):
            row = dict(rows[i % len(rows)])
            row["id"] = f"{row['id']}-r{i // len(rows)}"
            fh.write(json.dumps(row) + "\n")
    shutil.copy(source / "suite.yaml", folder / "suite.yaml")
    return folder


def fake_server(latency_ms: int, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """A fake OpenAI server process of its own (``extra``: e.g. ``--capacity 8``), healthy; it and its URL."""
    from aire.ops.processes import wait_for

    cmd = [sys.executable, "-m", "aire.testing.fake_openai", "--port", "0", "--latency-ms", str(latency_ms), *extra]
    proc = start(cmd, stdout=subprocess.PIPE)
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    wait_for(url.removesuffix("/v1") + "/health", 20)
    return proc, url


def start(cmd: list[str], env: dict[str, str] | None = None, **kw: object) -> subprocess.Popen[bytes]:
    """A process in its own session, so ``stop`` ends it and its children and nothing else."""
    return subprocess.Popen(cmd, env=env, start_new_session=True, **kw)  # type: ignore[call-overload]


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def settle(max_wait_s: float = 20.0, idle_below: float = 20.0) -> float:
    """Wait until the machine is quiet (system-wide CPU under ``idle_below`` percent over half a second),
    at most ``max_wait_s``; returns the seconds waited.

    A flow run leaves work behind once it returns (the Prefect server ingesting its events and logs,
    MLflow's store): measured, it slowed the *next* round against vLLM by up to 2.5x, on either side.
    Each round therefore starts on a quiet machine; what a round does while it runs is still measured.
    """
    import time

    import psutil

    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait_s:
        if psutil.cpu_percent(interval=0.5) < idle_below:
            break
    return time.perf_counter() - t0
