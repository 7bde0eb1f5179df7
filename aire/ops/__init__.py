"""Processes aire starts (pid files), the vLLM launcher, the UIs.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.ops.processes import free_port, http_get, wait_for

_WHERE = {
    "free_port": "processes",
    "http_get": "processes",
    "wait_for": "processes",
}
__all__ = ["free_port", "http_get", "wait_for"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.ops.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.ops' has no attribute {name!r}")
