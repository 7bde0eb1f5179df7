"""The model registry (MLflow versions, aliases, history) and incidents.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.release.actuators import actuate
    from aire.release.incidents import clear, list_incidents, open_for, update_incident
    from aire.release.registry import current, history, promote, register
    from aire.release.rollback import respond

_WHERE = {
    "actuate": "actuators",
    "clear": "incidents",
    "list_incidents": "incidents",
    "open_for": "incidents",
    "update_incident": "incidents",
    "current": "registry",
    "history": "registry",
    "promote": "registry",
    "register": "registry",
    "respond": "rollback",
}
__all__ = [
    "actuate",
    "clear",
    "current",
    "history",
    "list_incidents",
    "open_for",
    "promote",
    "register",
    "respond",
    "update_incident",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.release.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.release' has no attribute {name!r}")
