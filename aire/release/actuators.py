"""Actuators: what a rollback calls so the serving layer follows the registry.

``dry-run`` (log only), ``webhook:URL`` (POST JSON), ``shell:COMMAND`` (environment ``AIRE_ROLLBACK_*``).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import urllib.request
from typing import Any

from aire.release.incidents import Incident


def actuate(actuator: str, incident: Incident, target: str) -> dict[str, Any]:
    """Tell the serving layer to follow the registry. Never raises: the result is recorded."""
    payload = {
        "incident": incident.id,
        "model": incident.model,
        "from_version": incident.version,
        "to_version": target,
        "summary": incident.summary,
    }
    kind, _, arg = actuator.partition(":")
    try:
        if kind == "dry-run":
            return {"kind": "dry-run", "ok": True, "would": payload}
        if kind == "webhook":
            req = urllib.request.Request(
                arg, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
            )
            with urllib.request.urlopen(req, timeout=10) as resp:
                return {"kind": "webhook", "ok": 200 <= resp.status < 300, "status": resp.status}
        if kind == "shell":
            env = {**os.environ, **{f"AIRE_ROLLBACK_{k.upper()}": str(v) for k, v in payload.items()}}
            proc = subprocess.run(shlex.split(arg), env=env, capture_output=True, text=True, timeout=120)
            return {
                "kind": "shell",
                "ok": proc.returncode == 0,
                "returncode": proc.returncode,
                "output": (proc.stdout + proc.stderr)[-2000:],
            }
    except Exception as exc:  # the rollback in the registry stands; the failed actuation is on record
        return {"kind": kind, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"kind": kind, "ok": False, "error": f"unknown actuator {actuator!r}: use dry-run, webhook:URL or shell:CMD"}
