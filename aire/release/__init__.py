"""The model registry (MLflow versions, aliases, history) and incidents.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.release.incidents import RollbackError, actuate, clear, list_incidents, open_for, respond, update_incident
    from aire.release.registry import ConcurrentPromotion, PromotionRefused, current, history, promote, register

_WHERE = {
    "RollbackError": "incidents",
    "actuate": "incidents",
    "clear": "incidents",
    "list_incidents": "incidents",
    "open_for": "incidents",
    "respond": "incidents",
    "update_incident": "incidents",
    "ConcurrentPromotion": "registry",
    "PromotionRefused": "registry",
    "current": "registry",
    "history": "registry",
    "promote": "registry",
    "register": "registry",
}
__all__ = [
    "ConcurrentPromotion",
    "PromotionRefused",
    "RollbackError",
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
