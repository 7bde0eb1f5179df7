"""MLflow runs and the markdown reports logged with them.

Names are loaded on first use, so importing one stage does not import its neighbours' dependencies."""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aire.tracking.report import metric_rows
    from aire.tracking.runs import client, start_recorder, ui_command

_WHERE = {
    "metric_rows": "report",
    "client": "runs",
    "ui_command": "runs",
    "start_recorder": "runs",
}
__all__ = ["client", "metric_rows", "start_recorder", "ui_command"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(import_module(f"aire.tracking.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'aire.tracking' has no attribute {name!r}")
