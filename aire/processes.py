"""Background processes aire starts for the user (vLLM servers, MLflow UI, Prefect server).

Each one gets a pid file under ``<home>/run/<name>.json`` recording its pid and start time, so
``stop`` ends exactly the process aire started (and its children), never a recycled pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
from pydantic import BaseModel

from aire.errors import ServingError


class ProcessInfo(BaseModel):
    name: str
    pid: int
    create_time: float
    cmdline: list[str]
    url: str | None = None
    log: str
    started_at: float

    def __str__(self) -> str:
        where = f" at {self.url}" if self.url else ""
        return f"{self.name}: pid {self.pid}{where} (log {self.log})"


def pid_file(run_dir: Path, name: str) -> Path:
    return run_dir / f"{name}.json"


def _alive(info: ProcessInfo) -> psutil.Process | None:
    """The recorded process if it is still the one we started (same pid and start time)."""
    try:
        proc = psutil.Process(info.pid)
        if abs(proc.create_time() - info.create_time) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except psutil.Error:
        return None


def read(run_dir: Path, name: str) -> ProcessInfo | None:
    """The live process recorded under ``name``; a stale pid file is removed."""
    path = pid_file(run_dir, name)
    if not path.is_file():
        return None
    try:
        info = ProcessInfo.model_validate_json(path.read_text())
    except ValueError:
        path.unlink(missing_ok=True)
        return None
    if _alive(info) is None:
        path.unlink(missing_ok=True)
        return None
    return info


def running(run_dir: Path, prefix: str = "") -> list[ProcessInfo]:
    if not run_dir.is_dir():
        return []
    names = sorted(p.stem for p in run_dir.glob(f"{prefix}*.json"))
    return [info for name in names if (info := read(run_dir, name)) is not None]


def start(
    run_dir: Path,
    name: str,
    cmd: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    url: str | None = None,
    cwd: Path | None = None,
) -> ProcessInfo:
    """Start ``cmd`` in its own session (so its children can be found and stopped), log to a file."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / f"{name}.log"
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=fh,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    info = ProcessInfo(
        name=name,
        pid=proc.pid,
        create_time=psutil.Process(proc.pid).create_time(),
        cmdline=list(cmd),
        url=url,
        log=str(log),
        started_at=time.time(),
    )
    pid_file(run_dir, name).write_text(info.model_dump_json())
    return info


def last_log_line(info: ProcessInfo) -> str:
    try:
        lines = [line for line in Path(info.log).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1].strip()[:300] if lines else ""


def wait_healthy(info: ProcessInfo, health_url: str, timeout_s: float) -> None:
    """Poll ``health_url`` until it answers 200; fail fast if the process dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _alive(info) is None:
            raise ServingError(f"{info.name} exited during start-up; see {info.log}: {last_log_line(info)}")
        try:
            with urllib.request.urlopen(health_url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise ServingError(f"{info.name} not healthy at {health_url} after {timeout_s:.0f} s; see {info.log}")


def stop(run_dir: Path, name: str, timeout_s: float = 20.0) -> bool:
    """SIGTERM the recorded process, wait for it and every descendant, SIGKILL stragglers.

    Returns False when nothing aire started was running under that name.
    """
    info = read(run_dir, name)
    if info is None:
        return False
    proc = _alive(info)
    if proc is not None:
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            family = [proc]
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(family, timeout=timeout_s)
        for straggler in alive:
            with contextlib.suppress(psutil.Error):
                straggler.kill()
        psutil.wait_procs(alive, timeout=5)
    pid_file(run_dir, name).unlink(missing_ok=True)
    return True


def child_env(extra: Mapping[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}

