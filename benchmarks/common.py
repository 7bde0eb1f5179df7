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
