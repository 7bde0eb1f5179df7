"""``aire gateway --background``: the gateway as a recorded process (pid file and log under the run
folder, like ``aire serve``'s vLLM servers), started, checked healthy, and stopped by its pid."""

from __future__ import annotations

import sys
from pathlib import Path

from aire.core.settings import Settings
from aire.ops import processes
from aire.ops.processes import ProcessInfo

NAME = "gateway"


def _group(settings: Settings) -> processes.Group[ProcessInfo]:
    return processes.Group(settings.run_dir, "", ProcessInfo, lock_name="gateway")


def start_gateway(settings: Settings, host: str, port: int, config: Path, timeout_s: float = 60.0) -> ProcessInfo:
    """Start ``aire gateway`` in the background and wait for /health to answer (any status: a gateway
    with no route yet answers 503 and is up); a running one is reused."""
    group = _group(settings)
    url = f"http://{host}:{port}"
    cmd = [str(Path(sys.executable).parent / "aire"), "gateway", "--host", host, "--port", str(port),
           "--config", str(config)]  # fmt: skip
    with group.lock():
        old = group.records([NAME]).get(NAME)
        if old is not None and processes.owned(old) is not None:
            return old
        if old is not None:
            group.discard([old])
        info = group.start(NAME, cmd, env=processes.child_env({}), url=url)
        try:
            processes.wait_healthy(info, f"{url}/v1/models", timeout_s, "the gateway")
        except BaseException:
            group.discard([info])
            raise
    return info


def stop_gateway(settings: Settings) -> list[str]:
    return _group(settings).stop([NAME])


def gateway_status(settings: Settings) -> ProcessInfo | None:
    info = _group(settings).records([NAME]).get(NAME)
    return info if info is not None and processes.owned(info) is not None else None
