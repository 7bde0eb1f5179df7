"""Endpoints from aire.yaml and the streaming OpenAI-compatible client.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.client.config import EndpointConfig, LocalServe, load_config
    from aire.client.endpoints import CHAT_PATH, COMPLETIONS_PATH, EndpointClient, payload, request_fingerprint

_WHERE = {
    "EndpointConfig": "config",
    "LocalServe": "config",
    "load_config": "config",
    "CHAT_PATH": "endpoints",
    "COMPLETIONS_PATH": "endpoints",
    "EndpointClient": "endpoints",
    "payload": "endpoints",
    "request_fingerprint": "endpoints",
}
__all__ = [
    "CHAT_PATH",
    "COMPLETIONS_PATH",
    "EndpointClient",
    "EndpointConfig",
    "LocalServe",
    "load_config",
    "payload",
    "request_fingerprint",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.client.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.client' has no attribute {name!r}")
