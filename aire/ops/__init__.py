"""Processes aire starts (pid files), the vLLM environment, models and launcher, the UIs.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.ops.models import MODEL_NAMES, build_models
    from aire.ops.processes import free_port, http_get, wait_for
    from aire.ops.vllm import ServerInfo, server_status, start_servers, stop_servers
    from aire.ops.vllm_env import ensure_vllm_env

_WHERE = {
    "MODEL_NAMES": "models",
    "build_models": "models",
    "free_port": "processes",
    "http_get": "processes",
    "wait_for": "processes",
    "ServerInfo": "vllm",
    "server_status": "vllm",
    "start_servers": "vllm",
    "stop_servers": "vllm",
    "ensure_vllm_env": "vllm_env",
}
__all__ = [
    "MODEL_NAMES",
    "ServerInfo",
    "build_models",
    "ensure_vllm_env",
    "free_port",
    "http_get",
    "server_status",
    "start_servers",
    "stop_servers",
    "wait_for",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.ops.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.ops' has no attribute {name!r}")
