"""Actuators: what a rollback calls so the serving layer follows the registry.

The setting ``actuator`` is ``KIND`` or ``KIND:ARG``. Builtins: ``dry-run`` (log only),
``webhook:URL`` (POST JSON), ``shell:COMMAND`` (environment ``AIRE_ROLLBACK_*``). An actuator is a
callable ``(arg: str, payload: dict) -> dict`` whose result carries ``ok: bool``; installed plugins
add kinds through the ``aire.actuators`` entry-point group (``pager = "my_plugin:page"``), read only
when a kind is not known yet. The builtins are declared there too, and also registered here so that
an install whose metadata predates that declaration still has them.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shlex
import subprocess
import urllib.request
from collections.abc import Callable
from typing import Any, Final, TypeAlias

from aire.core.errors import did_you_mean
from aire.core.plugins import EntryPointGroup, PluginError, describe
from aire.release.incidents import Incident

__all__ = ["ENTRY_POINT_GROUP", "Actuator", "actuate", "actuators", "dry_run", "shell", "webhook"]

Actuator: TypeAlias = Callable[[str, dict[str, Any]], dict[str, Any]]

ENTRY_POINT_GROUP: Final = "aire.actuators"


def dry_run(arg: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Change nothing; record what would have been sent."""
    return {"ok": True, "would": payload}


def webhook(arg: str, payload: dict[str, Any]) -> dict[str, Any]:
    """POST the payload as JSON to the URL ``arg``; ok on a 2xx answer."""
    req = urllib.request.Request(
        arg, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return {"ok": 200 <= resp.status < 300, "status": resp.status}


def shell(arg: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Run the command ``arg`` (no shell) with the payload as ``AIRE_ROLLBACK_*`` variables; ok on exit 0."""
    env = {**os.environ, **{f"AIRE_ROLLBACK_{k.upper()}": str(v) for k, v in payload.items()}}
    proc = subprocess.run(shlex.split(arg), env=env, capture_output=True, text=True, timeout=120)
    return {"ok": proc.returncode == 0, "returncode": proc.returncode, "output": (proc.stdout + proc.stderr)[-2000:]}


_ACTUATORS: dict[str, Actuator] = {"dry-run": dry_run, "webhook": webhook, "shell": shell}
_PLUGINS = EntryPointGroup(ENTRY_POINT_GROUP)


def actuators() -> dict[str, Actuator]:
    """Every known actuator kind, installed plugins included."""
    _discover()
    return dict(_ACTUATORS)


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
        fn = _lookup(kind)
        if fn is None:
            known = ", ".join(sorted(_ACTUATORS))
            return {
                "kind": kind,
                "ok": False,
                "error": f"unknown actuator kind {kind!r} in {actuator!r}{did_you_mean(kind, _ACTUATORS)}; "
                f"known kinds: {known} (set KIND or KIND:ARG, e.g. webhook:URL, shell:CMD)",
            }
        result = fn(arg, payload)
        if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
            return {"kind": kind, "ok": False, "error": f"actuator {kind!r} returned {result!r}, not a dict with ok"}
    except Exception as exc:  # the rollback in the registry stands; the failed actuation is on record
        return {"kind": kind, "ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"kind": kind, **{k: v for k, v in result.items() if k != "kind"}}


def _lookup(kind: str) -> Actuator | None:
    # Entry points called `kind` first, so a broken plugin of another kind does not mask this one.
    for scope in (kind, None):
        if kind in _ACTUATORS:
            break
        _discover(scope)
    return _ACTUATORS.get(kind)


def _discover(kind: str | None = None) -> None:
    for ep, obj in _PLUGINS.load(kind):
        _register(ep, obj)


def _register(ep: importlib.metadata.EntryPoint, obj: object) -> None:
    if not callable(obj):
        raise PluginError(f"{describe(ep)} is a {type(obj).__name__}, not an actuator (arg, payload) -> dict")
    existing = _ACTUATORS.get(ep.name)
    if existing is not None and existing is not obj:
        # The builtins' own entry points load the very functions above: only another callable clashes.
        raise PluginError(
            f"{describe(ep)}: actuator {ep.name!r} is already registered by {getattr(existing, '__module__', '?')}"
        )
    _ACTUATORS[ep.name] = obj  # type: ignore[assignment]
